"""Meta's original SAM2 / SAM2.1 checkpoints (`sam2.1_hiera_large.pt`, ...) converted to the
transformers `Sam2VideoModel` layout at load time.

The key mapping follows transformers' own conversion script
(`models/sam2_video/convert_sam2_video_to_hf.py`): the same ordered substring rules,
then the same regex fix-ups for MLP layer indices, the neck convs, the memory encoder and
the mask downsampler, then the two derived tensors (the shared positional embedding copy
and the concatenated point embeddings). Only `torch.load(weights_only=True)` and
safetensors are used, so a checkpoint cannot run code.

The architecture is not stored in the checkpoint. It comes from, in order:
1. a sidecar `<checkpoint>.config.json` (a `Sam2VideoConfig` dict) next to the file;
2. the file name (`sam2.1_hiera_large.pt`, `sam2_hiera_b+.pt`, ...);
3. the tensor shapes (patch-embedding width and block count identify the Hiera size).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from matte_assets.errors import BackendError

# Hiera sizes of the published SAM2 / SAM2.1 checkpoints (from the conversion script).
HIERA_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"hiera": {}, "channels": [768, 384, 192, 96]},
    "small": {
        "hiera": {"blocks_per_stage": [1, 2, 11, 2], "global_attention_blocks": [7, 10, 13]},
        "channels": [768, 384, 192, 96],
    },
    "base_plus": {
        "hiera": {
            "hidden_size": 112,
            "embed_dim_per_stage": [112, 224, 448, 896],
            "num_attention_heads_per_stage": [2, 4, 8, 16],
            "blocks_per_stage": [2, 3, 16, 3],
            "global_attention_blocks": [12, 16, 20],
            "window_positional_embedding_background_size": [14, 14],
        },
        "channels": [896, 448, 224, 112],
    },
    "large": {
        "hiera": {
            "hidden_size": 144,
            "embed_dim_per_stage": [144, 288, 576, 1152],
            "num_attention_heads_per_stage": [2, 4, 8, 16],
            "blocks_per_stage": [2, 6, 36, 4],
            "global_attention_blocks": [23, 33, 43],
            "window_positional_embedding_background_size": [7, 7],
            "window_size_per_stage": [8, 4, 16, 8],
        },
        "channels": [1152, 576, 288, 144],
    },
}

# (patch-embedding width, number of Hiera blocks) -> preset, for files with unhelpful names.
_SHAPE_TO_PRESET = {(96, 12): "tiny", (96, 16): "small", (112, 24): "base_plus", (144, 48): "large"}

_NAME_PATTERNS = [
    (re.compile(r"hiera[_-]?(tiny|t)(?![a-z])", re.I), "tiny"),
    (re.compile(r"hiera[_-]?(small|s)(?![a-z])", re.I), "small"),
    (re.compile(r"hiera[_-]?(base[_-]?plus|b\+|bplus)", re.I), "base_plus"),
    (re.compile(r"hiera[_-]?(large|l)(?![a-z])", re.I), "large"),
]

# Ordered exactly as in transformers' conversion script: later rules see earlier rewrites.
KEYS_TO_MODIFY_MAPPING = {
    "iou_prediction_head.layers.0": "iou_prediction_head.proj_in",
    "iou_prediction_head.layers.1": "iou_prediction_head.layers.0",
    "iou_prediction_head.layers.2": "iou_prediction_head.proj_out",
    "mask_decoder.output_upscaling.0": "mask_decoder.upscale_conv1",
    "mask_decoder.output_upscaling.1": "mask_decoder.upscale_layer_norm",
    "mask_decoder.output_upscaling.3": "mask_decoder.upscale_conv2",
    "mask_downscaling.0": "mask_embed.conv1",
    "mask_downscaling.1": "mask_embed.layer_norm1",
    "mask_downscaling.3": "mask_embed.conv2",
    "mask_downscaling.4": "mask_embed.layer_norm2",
    "mask_downscaling.6": "mask_embed.conv3",
    "dwconv": "depthwise_conv",
    "pwconv": "pointwise_conv",
    "fuser": "memory_fuser",
    "point_embeddings": "point_embed",
    "pe_layer.positional_encoding_gaussian_matrix": "shared_embedding.positional_embedding",
    "obj_ptr_tpos_proj": "temporal_positional_encoding_projection_layer",
    "no_obj_embed_spatial": "occlusion_spatial_embedding_parameter",
    "sam_prompt_encoder": "prompt_encoder",
    "sam_mask_decoder": "mask_decoder",
    "maskmem_tpos_enc": "memory_temporal_positional_encoding",
    "gamma": "scale",
    "image_encoder.neck": "vision_encoder.neck",
    "image_encoder": "vision_encoder.backbone",
    "neck.0": "neck.conv1",
    "neck.1": "neck.layer_norm1",
    "neck.2": "neck.conv2",
    "neck.3": "neck.layer_norm2",
    "pix_feat_proj": "feature_projection",
    "patch_embed.proj": "patch_embed.projection",
    "no_mem_embed": "no_memory_embedding",
    "no_mem_pos_enc": "no_memory_positional_encoding",
    "obj_ptr": "object_pointer",
    ".norm": ".layer_norm",
    "trunk.": "",
    "out_proj": "o_proj",
}

_THREE_LAYER_MLP = {0: "proj_in", 1: "layers.0", 2: "proj_out"}
_RE_HYPER = re.compile(r".*.output_hypernetworks_mlps.(\d+).layers.(\d+).*")
_RE_DEC_MLP = re.compile(r"mask_decoder.transformer.layers.(\d+).mlp.layers.(\d+).*")
_RE_SCORE_HEAD = re.compile(r"mask_decoder.pred_obj_score_head.layers.(\d+).*")
_RE_VISION_MLP = re.compile(r"vision_encoder.backbone.blocks.(\d+).mlp.layers.(\d+).*")
_RE_NECK = re.compile(r"vision_encoder.neck.convs.(\d+).conv")
_RE_MEM_PROJ = re.compile(r"memory_encoder.o_proj.*")
_RE_PTR_PROJ = re.compile(r"object_pointer_proj.layers.(\d+).*")
_RE_DOWNSAMPLER = re.compile(r"memory_encoder.mask_downsampler.encoder.(\d+).*")


def convert_key(key: str) -> str:
    """One original SAM2 parameter name -> its transformers Sam2VideoModel name."""
    for old, new in KEYS_TO_MODIFY_MAPPING.items():
        if old in key:
            key = key.replace(old, new)
    if m := _RE_VISION_MLP.match(key):
        layer = int(m.group(2))
        key = key.replace(f"layers.{layer}", "proj_in" if layer == 0 else "proj_out")
    if m := _RE_DEC_MLP.match(key):
        layer = int(m.group(2))
        key = key.replace(f"mlp.layers.{layer}", "mlp.proj_in" if layer == 0 else "mlp.proj_out")
    if m := _RE_SCORE_HEAD.match(key):
        layer = int(m.group(1))
        key = key.replace(f"layers.{layer}", _THREE_LAYER_MLP[layer])
    if m := _RE_HYPER.match(key):
        layer = int(m.group(2))
        key = key.replace(f"layers.{layer}", _THREE_LAYER_MLP[layer])
    if _RE_NECK.match(key):
        key = key.replace(".conv.", ".")
    if _RE_MEM_PROJ.match(key):
        key = key.replace(".o_proj.", ".projection.")
    if m := _RE_PTR_PROJ.match(key):
        layer = int(m.group(1))
        key = key.replace(f"layers.{layer}", _THREE_LAYER_MLP[layer])
    if m := _RE_DOWNSAMPLER.match(key):
        layer = int(m.group(1))
        if layer == 12:
            key = key.replace(f"encoder.{layer}", "final_conv")
        elif layer % 3 == 0:
            key = key.replace(f"encoder.{layer}", f"layers.{layer // 3}.conv")
        elif layer % 3 == 1:
            key = key.replace(f"encoder.{layer}", f"layers.{layer // 3}.layer_norm")
    return key


def convert_state_dict(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Original SAM2 state dict -> transformers Sam2VideoModel state dict (same tensors)."""
    import torch

    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        new = convert_key(key)
        if new in out:
            raise BackendError(f"SAM2 checkpoint conversion maps two tensors onto {new}")
        out[new] = value
    try:
        out["shared_image_embedding.positional_embedding"] = out[
            "prompt_encoder.shared_embedding.positional_embedding"
        ]
        out["prompt_encoder.point_embed.weight"] = torch.cat(
            [out.pop(f"prompt_encoder.point_embed.{i}.weight") for i in range(4)], dim=0
        )
    except KeyError as exc:
        raise BackendError(f"not a SAM2 checkpoint: the prompt encoder tensor {exc} is missing") from None
    return out


def read_original_state_dict(path: Path) -> dict[str, Any]:
    """Tensors of a `.pt` (Meta's `{"model": state_dict}` or a bare state dict) or a
    `.safetensors` file. weights_only: a checkpoint is data, never code."""
    import torch

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data: Any = load_file(str(path), device="cpu")
        else:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BackendError(f"SAM2 checkpoint {path} cannot be read: {type(exc).__name__}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise BackendError(f"SAM2 checkpoint {path} does not hold a state dict of tensors")
    return data


def detect_preset(path: Path, state_dict: dict[str, Any]) -> str:
    for pattern, preset in _NAME_PATTERNS:
        if pattern.search(Path(path).name):
            return preset
    try:
        width = int(state_dict["image_encoder.trunk.patch_embed.proj.weight"].shape[0])
    except KeyError:
        raise BackendError(f"{path} is not an original SAM2 checkpoint (no image_encoder.trunk)") from None
    blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", k))}
    preset = _SHAPE_TO_PRESET.get((width, len(blocks)))
    if preset is None:
        raise BackendError(
            f"cannot tell which SAM2 size {path} is (patch width {width}, {len(blocks)} blocks): "
            f"name it like sam2.1_hiera_large.pt or put a {Path(path).name}.config.json "
            "(a transformers Sam2VideoConfig) next to it"
        )
    return preset


def preset_config(preset: str, *, sam2_1: bool = True):
    """Sam2VideoConfig of a published size (as built by transformers' conversion script)."""
    from transformers import Sam2HieraDetConfig, Sam2VideoConfig, Sam2VisionConfig

    spec = HIERA_PRESETS[preset]
    vision = Sam2VisionConfig(
        backbone_config=Sam2HieraDetConfig(**spec["hiera"]), backbone_channel_list=list(spec["channels"])
    )
    return Sam2VideoConfig(
        vision_config=vision,
        enable_temporal_pos_encoding_for_object_pointers=sam2_1,
        enable_occlusion_spatial_embedding=sam2_1,
    )


def sidecar_config_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".config.json")


def checkpoint_config(path: Path, state_dict: dict[str, Any]):
    """The architecture of an original checkpoint (see the module docstring)."""
    from transformers import Sam2VideoConfig

    sidecar = sidecar_config_path(path)
    if sidecar.is_file():
        from resources.model_loading import read_json

        return Sam2VideoConfig.from_dict(read_json(sidecar))
    # SAM2.1 added the occlusion embedding and the object-pointer temporal projection.
    sam2_1 = "no_obj_embed_spatial" in state_dict or "obj_ptr_tpos_proj.weight" in state_dict
    return preset_config(detect_preset(path, state_dict), sam2_1=sam2_1)


def load_converted(path: Path) -> tuple[Any, dict[str, Any]]:
    """(Sam2VideoConfig, converted state dict) for an original SAM2 checkpoint file."""
    original = read_original_state_dict(path)
    config = checkpoint_config(path, original)
    return config, convert_state_dict(original)


def build_model(model_cls, config, state_dict: dict[str, Any], path: Path, name: str = "SAM2"):
    """Instantiate `model_cls(config)` and load `state_dict` strictly (extra tensors the
    model does not use are dropped first: the image-only Sam2Model has no memory modules).
    A mismatch names the checkpoint and the first offending tensors."""
    import torch

    with torch.device("cpu"):
        model = model_cls(config)
    expected = model.state_dict()
    state = {k: v for k, v in state_dict.items() if k in expected}
    missing = sorted(set(expected) - set(state))
    wrong = sorted(k for k in state if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or wrong:
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if wrong:
            k = wrong[0]
            detail.append(f"shape mismatch {k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)}")
        raise BackendError(f"{name} checkpoint {path} does not fit {model_cls.__name__}: {'; '.join(detail)}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def image_config_from_video(video_config):
    """Sam2Config (image model) sharing the vision encoder, prompt encoder and mask decoder
    of a Sam2VideoConfig, so one checkpoint serves both segmenter and tracker."""
    from transformers import Sam2Config

    return Sam2Config(
        vision_config=video_config.vision_config.to_dict(),
        prompt_encoder_config=video_config.prompt_encoder_config.to_dict(),
        mask_decoder_config=video_config.mask_decoder_config.to_dict(),
    )
