"""Tiny, randomly initialised model backends for tests (no downloads, no real weights).

Each `write_tiny_*` saves a model the way a user's folder looks (save_pretrained +
tokenizer/processor configs), so tests load it through exactly the path a user's
`models:` folder takes. Sizes are chosen so everything runs in seconds on a laptop CPU:
64-px model inputs, hidden sizes 8-32, one or two layers.

    from tests.model_fixtures import write_tiny_grounding_dino, write_tiny_sam2
    gd = write_tiny_grounding_dino(tmp / "gd")        # models: {grounding_dino: gd}
    sam = write_tiny_sam2(tmp / "sam2")               # models: {sam2: sam}
    show: backends: {detector: grounding_dino, segmenter: sam2, tracker: sam2}

`hf_to_original_sam2` writes a transformers SAM2 state dict back in the key layout of
Meta's original checkpoints (module names of `sam2.modeling.sam2_base.SAM2Base`), written
independently of the converter under test so the round trip checks it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from resources.model_loading import quiet_transformers

SEED = 0
TINY_SIZE = 64  # SAM2 / EdgeTAM input size (multiple of 32)

# GroundingDINO hard-codes bert-base-uncased's ids for [CLS], [SEP], "." and "?" when it
# builds its text attention masks, so the tiny vocabulary keeps them at those ids.
_SPECIAL_IDS = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1012: ".", 1029: "?"}
TINY_WORDS = ["person", "car", "dog", "tree", "red", "blue", "a", "moving", "##s"]


def tiny_vocab(words: list[str] = TINY_WORDS, size: int = 1030) -> list[str]:
    vocab = [_SPECIAL_IDS.get(i, f"[unused{i}]") for i in range(size)]
    return vocab + [w for w in words if w not in vocab]


def tiny_grounding_dino_config(vocab_size: int, num_queries: int = 16):
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    return GroundingDinoConfig(
        backbone_config=SwinConfig(
            image_size=TINY_SIZE,
            patch_size=4,
            embed_dim=8,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            window_size=2,
            out_indices=[2, 3, 4],
        ),
        text_config=BertConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        ),
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,  # GroundingDINO ties its box heads across decoder layers: needs >= 2
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_queries=num_queries,  # at most this many boxes per frame
        max_text_len=32,
        encoder_n_points=2,
        decoder_n_points=2,
    )


def write_tiny_grounding_dino(folder: Path, seed: int = SEED, num_queries: int = 16) -> Path:
    import torch
    from transformers import BertTokenizer, GroundingDinoForObjectDetection

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(vocab_file), do_lower_case=True)
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(seed)
    model = GroundingDinoForObjectDetection(tiny_grounding_dino_config(len(vocab), num_queries)).eval()
    with quiet_transformers():  # no progress bars in test output
        model.save_pretrained(str(folder))
    # The image processor's config, as a hub folder has it, with a tiny resize target.
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "GroundingDinoImageProcessor",
                "size": {"shortest_edge": 48, "longest_edge": 80},
                "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225],
            }
        )
    )
    return folder


def _tiny_heads(hidden: int, size: int) -> dict:
    """Prompt encoder and mask decoder settings shared by the tiny SAM2 and EdgeTAM."""
    return {
        "prompt_encoder_config": {"hidden_size": hidden, "image_size": size, "patch_size": 16, "mask_input_channels": 8},
        "mask_decoder_config": {
            "hidden_size": hidden, "mlp_dim": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "iou_head_hidden_dim": 32,
        },
        "image_size": size,
    }


def tiny_sam2_video_config(size: int = TINY_SIZE, hidden: int = 128):
    from transformers import Sam2HieraDetConfig, Sam2VideoConfig, Sam2VisionConfig

    hiera = Sam2HieraDetConfig(
        hidden_size=8,
        num_attention_heads=1,
        image_size=[size, size],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[8, 16, 32, 64],
        num_attention_heads_per_stage=[1, 1, 1, 1],
        window_size_per_stage=[4, 4, 4, 2],
        global_attention_blocks=[3],  # a global block may not open a pooling stage
        window_positional_embedding_background_size=[2, 2],
    )
    vision = Sam2VisionConfig(
        backbone_config=hiera,
        backbone_channel_list=[64, 32, 16, 8],
        backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [size // 16] * 2],
        fpn_hidden_size=hidden,
    )
    return Sam2VideoConfig(
        vision_config=vision,
        **_tiny_heads(hidden, size),
        memory_attention_hidden_size=hidden,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[size // 16, size // 16],
        memory_encoder_hidden_size=hidden,
        memory_encoder_output_channels=64,  # transformers hard-codes 64 for the memory keys
        mask_downsampler_embed_dim=hidden,
        memory_fuser_num_layers=1,
        memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=64,
    )


def tiny_sam2_video_model(seed: int = SEED):
    import torch
    from transformers import Sam2VideoModel

    torch.manual_seed(seed)
    model = Sam2VideoModel(tiny_sam2_video_config()).eval()
    # Real checkpoints hold one random-Fourier matrix, used by both the prompt encoder and
    # the image-wide positional embedding (the converter copies it); random init draws two.
    with torch.no_grad():
        model.shared_image_embedding.positional_embedding.copy_(
            model.prompt_encoder.shared_embedding.positional_embedding
        )
    return model


def write_tiny_sam2(folder: Path, seed: int = SEED, image_only: bool = False) -> Path:
    """A SAM2 folder like facebook/sam2.1-hiera-*: the video model (which contains the image
    model), serving both `segmenter: sam2` and `tracker: sam2`. `image_only` saves a
    plain Sam2Model (model_type sam2), usable by the segmenter only."""
    import torch
    from transformers import Sam2Model

    from resources.sam2_checkpoint import image_config_from_video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if image_only:
        torch.manual_seed(seed)
        model = Sam2Model(image_config_from_video(tiny_sam2_video_config())).eval()
    else:
        model = tiny_sam2_video_model(seed)
    with quiet_transformers():  # no progress bars in test output
        model.save_pretrained(str(folder))
    return folder


def write_tiny_edgetam(folder: Path, seed: int = SEED) -> Path:
    """Needs timm (and torchvision); callers skip when it is not importable."""
    import torch
    from transformers import (
        EdgeTamVideoConfig,
        EdgeTamVideoModel,
        EdgeTamVisionConfig,
        TimmWrapperConfig,
    )

    size, hidden = TINY_SIZE, 128  # > the 64-wide memory: object pointers are split into it
    vision = EdgeTamVisionConfig(
        backbone_config=TimmWrapperConfig(
            architecture="repvit_m1",
            model_args={"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
        ),
        backbone_channel_list=[384, 192, 96, 48],
        backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [size // 16] * 2],
        fpn_hidden_size=hidden,
    )
    config = EdgeTamVideoConfig(
        vision_config=vision,
        **_tiny_heads(hidden, size),
        memory_attention_hidden_size=hidden,
        memory_attention_num_layers=1,
        memory_attention_mlp_hidden_size=64,
        memory_attention_rope_feat_sizes=[size // 16, size // 16],
        memory_attention_rope_k_sizes=[size // 32, size // 32],
        perceiver_resampler_num_latents=16,
        perceiver_resampler_num_latents_2d=16,
        perceiver_resampler_mlp_intermediate_size=64,  # hidden size stays 64: the memory width
        perceiver_resampler_num_layers=1,
        memory_encoder_hidden_size=hidden,
        memory_encoder_output_channels=64,  # transformers hard-codes 64 for the memory keys
        mask_downsampler_embed_dim=hidden,
        memory_fuser_num_layers=1,
        memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=64,
    )
    torch.manual_seed(seed)
    model = EdgeTamVideoModel(config).eval()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():  # no progress bars in test output
        model.save_pretrained(str(folder))
    return folder


# ---------------------------------------------------------------------------------------
# transformers SAM2 -> Meta's original key layout (the inverse of the converter, written
# from the original module tree: image_encoder.trunk/neck, sam_prompt_encoder,
# sam_mask_decoder, memory_attention, memory_encoder, obj_ptr_proj, ...)

_THREE = {"proj_in": "0", "layers.0": "1", "proj_out": "2"}
_ORIGINAL_RULES: list[tuple[str, str | None]] = [
    (r"no_memory_embedding", "no_mem_embed"),
    (r"no_memory_positional_encoding", "no_mem_pos_enc"),
    (r"memory_temporal_positional_encoding", "maskmem_tpos_enc"),
    (r"no_object_pointer", "no_obj_ptr"),
    (r"occlusion_spatial_embedding_parameter", "no_obj_embed_spatial"),
    (r"shared_image_embedding\.positional_embedding", None),  # a copy of the prompt encoder's
    (r"mask_downsample\.(weight|bias)", r"mask_downsample.\1"),
    (r"temporal_positional_encoding_projection_layer\.(.*)", r"obj_ptr_tpos_proj.\1"),
    (r"object_pointer_proj\.(proj_in|layers\.0|proj_out)\.(.*)", "OBJPTR"),
    (r"vision_encoder\.backbone\.(pos_embed|pos_embed_window)", r"image_encoder.trunk.\1"),
    (r"vision_encoder\.backbone\.patch_embed\.projection\.(.*)", r"image_encoder.trunk.patch_embed.proj.\1"),
    (r"vision_encoder\.backbone\.blocks\.(\d+)\.layer_norm([12])\.(.*)", r"image_encoder.trunk.blocks.\1.norm\2.\3"),
    (r"vision_encoder\.backbone\.blocks\.(\d+)\.attn\.(qkv|proj)\.(.*)", r"image_encoder.trunk.blocks.\1.attn.\2.\3"),
    (r"vision_encoder\.backbone\.blocks\.(\d+)\.mlp\.proj_in\.(.*)", r"image_encoder.trunk.blocks.\1.mlp.layers.0.\2"),
    (r"vision_encoder\.backbone\.blocks\.(\d+)\.mlp\.proj_out\.(.*)", r"image_encoder.trunk.blocks.\1.mlp.layers.1.\2"),
    (r"vision_encoder\.backbone\.blocks\.(\d+)\.proj\.(.*)", r"image_encoder.trunk.blocks.\1.proj.\2"),
    (r"vision_encoder\.neck\.convs\.(\d+)\.(.*)", r"image_encoder.neck.convs.\1.conv.\2"),
    (
        r"prompt_encoder\.shared_embedding\.positional_embedding",
        "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
    ),
    (r"prompt_encoder\.mask_embed\.conv1\.(.*)", r"sam_prompt_encoder.mask_downscaling.0.\1"),
    (r"prompt_encoder\.mask_embed\.layer_norm1\.(.*)", r"sam_prompt_encoder.mask_downscaling.1.\1"),
    (r"prompt_encoder\.mask_embed\.conv2\.(.*)", r"sam_prompt_encoder.mask_downscaling.3.\1"),
    (r"prompt_encoder\.mask_embed\.layer_norm2\.(.*)", r"sam_prompt_encoder.mask_downscaling.4.\1"),
    (r"prompt_encoder\.mask_embed\.conv3\.(.*)", r"sam_prompt_encoder.mask_downscaling.6.\1"),
    (r"prompt_encoder\.point_embed\.weight", "POINTS"),
    (r"prompt_encoder\.(no_mask_embed|not_a_point_embed)\.weight", r"sam_prompt_encoder.\1.weight"),
    (r"mask_decoder\.(iou_token|mask_tokens|obj_score_token)\.weight", r"sam_mask_decoder.\1.weight"),
    (
        r"mask_decoder\.transformer\.(layers\.\d+\.)?(self_attn|cross_attn_token_to_image|cross_attn_image_to_token|final_attn_token_to_image)\.o_proj\.(.*)",
        r"sam_mask_decoder.transformer.\1\2.out_proj.\3",
    ),
    (
        r"mask_decoder\.transformer\.(layers\.\d+\.)?(self_attn|cross_attn_token_to_image|cross_attn_image_to_token|final_attn_token_to_image)\.([qkv]_proj)\.(.*)",
        r"sam_mask_decoder.transformer.\1\2.\3.\4",
    ),
    (r"mask_decoder\.transformer\.layers\.(\d+)\.layer_norm(\d)\.(.*)", r"sam_mask_decoder.transformer.layers.\1.norm\2.\3"),
    (r"mask_decoder\.transformer\.layers\.(\d+)\.mlp\.proj_in\.(.*)", r"sam_mask_decoder.transformer.layers.\1.mlp.layers.0.\2"),
    (r"mask_decoder\.transformer\.layers\.(\d+)\.mlp\.proj_out\.(.*)", r"sam_mask_decoder.transformer.layers.\1.mlp.layers.1.\2"),
    (r"mask_decoder\.transformer\.layer_norm_final_attn\.(.*)", r"sam_mask_decoder.transformer.norm_final_attn.\1"),
    (r"mask_decoder\.upscale_conv1\.(.*)", r"sam_mask_decoder.output_upscaling.0.\1"),
    (r"mask_decoder\.upscale_layer_norm\.(.*)", r"sam_mask_decoder.output_upscaling.1.\1"),
    (r"mask_decoder\.upscale_conv2\.(.*)", r"sam_mask_decoder.output_upscaling.3.\1"),
    (r"mask_decoder\.(conv_s0|conv_s1)\.(.*)", r"sam_mask_decoder.\1.\2"),
    (r"mask_decoder\.(output_hypernetworks_mlps\.\d+|iou_prediction_head|pred_obj_score_head)\.(proj_in|layers\.0|proj_out)\.(.*)", "MLP3"),
    (r"memory_attention\.layers\.(\d+)\.(self_attn|cross_attn_image)\.o_proj\.(.*)", r"memory_attention.layers.\1.\2.out_proj.\3"),
    (r"memory_attention\.layers\.(\d+)\.(self_attn|cross_attn_image)\.([qkv]_proj)\.(.*)", r"memory_attention.layers.\1.\2.\3.\4"),
    (r"memory_attention\.layers\.(\d+)\.(linear[12])\.(.*)", r"memory_attention.layers.\1.\2.\3"),
    (r"memory_attention\.layers\.(\d+)\.layer_norm(\d)\.(.*)", r"memory_attention.layers.\1.norm\2.\3"),
    (r"memory_attention\.layer_norm\.(.*)", r"memory_attention.norm.\1"),
    (r"memory_encoder\.mask_downsampler\.layers\.(\d+)\.(conv|layer_norm)\.(.*)", "DOWN"),
    (r"memory_encoder\.mask_downsampler\.final_conv\.(.*)", r"memory_encoder.mask_downsampler.encoder.12.\1"),
    (r"memory_encoder\.feature_projection\.(.*)", r"memory_encoder.pix_feat_proj.\1"),
    (r"memory_encoder\.memory_fuser\.layers\.(\d+)\.depthwise_conv\.(.*)", r"memory_encoder.fuser.layers.\1.dwconv.\2"),
    (r"memory_encoder\.memory_fuser\.layers\.(\d+)\.layer_norm\.(.*)", r"memory_encoder.fuser.layers.\1.norm.\2"),
    (r"memory_encoder\.memory_fuser\.layers\.(\d+)\.pointwise_conv([12])\.(.*)", r"memory_encoder.fuser.layers.\1.pwconv\2.\3"),
    (r"memory_encoder\.memory_fuser\.layers\.(\d+)\.scale", r"memory_encoder.fuser.layers.\1.gamma"),
    (r"memory_encoder\.projection\.(.*)", r"memory_encoder.out_proj.\1"),
]


def hf_to_original_sam2(state_dict: dict) -> dict:
    """A transformers Sam2VideoModel state dict in Meta's original SAM2 key layout."""
    out: dict = {}
    for key, value in state_dict.items():
        for pattern, target in _ORIGINAL_RULES:
            m = re.fullmatch(pattern, key)
            if not m:
                continue
            if target is None:
                break
            if target == "OBJPTR":
                out[f"obj_ptr_proj.layers.{_THREE[m.group(1)]}.{m.group(2)}"] = value
            elif target == "MLP3":
                out[f"sam_mask_decoder.{m.group(1)}.layers.{_THREE[m.group(2)]}.{m.group(3)}"] = value
            elif target == "POINTS":
                for i in range(value.shape[0]):
                    out[f"sam_prompt_encoder.point_embeddings.{i}.weight"] = value[i : i + 1].clone()
            elif target == "DOWN":
                layer, part, rest = int(m.group(1)), m.group(2), m.group(3)
                index = 3 * layer + (0 if part == "conv" else 1)
                out[f"memory_encoder.mask_downsampler.encoder.{index}.{rest}"] = value
            else:
                out[m.expand(target)] = value
            break
        else:
            raise KeyError(f"no original SAM2 name for {key}")
    return {k: v.clone() for k, v in out.items()}


def write_tiny_original_checkpoint(path: Path, seed: int = SEED, sidecar: bool = True):
    """A tiny random SAM2 video model saved as Meta saves checkpoints ({"model": state_dict}
    in the original layout; a bare state dict for `.safetensors`), with its architecture in
    `<name>.config.json`. Returns the transformers model it was made from (the reference
    for the round trip)."""
    import torch

    model = tiny_sam2_video_model(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    original = hf_to_original_sam2(model.state_dict())
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(original, str(path))
    else:
        torch.save({"model": original}, str(path))
    if sidecar:
        (path.parent / (path.name + ".config.json")).write_text(model.config.to_json_string())
    return model


# ---------------------------------------------------------------------------------------
# Frames


def moving_frames(n: int = 4, height: int = 48, width: int = 80, seed: int = SEED) -> np.ndarray:
    """(n, H, W, 3) uint8: a textured background with a bright square moving right and a
    dark disc moving down (non-square frames so x/y mapping errors show)."""
    rng = np.random.default_rng(seed)
    background = rng.integers(40, 120, size=(height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(n):
        f = background.copy()
        x0 = 6 + 4 * t
        f[10:26, x0 : x0 + 16] = (230, 200, 60)
        disc = (yy - (14 + 3 * t)) ** 2 + (xx - 58) ** 2 < 64
        f[disc] = (20, 30, 160)
        frames.append(f)
    return np.stack(frames)


def box_mask(height: int, width: int, box) -> np.ndarray:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    m = np.zeros((height, width), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


# ---------------------------------------------------------------------------------------
# SAM 3: one `sam3_video` folder (detector + tracker, as facebook/sam3) with a tiny CLIP
# BPE tokenizer written here (byte alphabet + merges for a few words; nothing downloaded)

SAM3_TINY_SIZE = 56  # 4 x 4 ViT patches of 14 px
SAM3_WORDS = ("person", "car", "dog", "tree", "moving", "red", "blue", "a")


def tiny_clip_tokenizer(words=SAM3_WORDS):
    """A real transformers CLIPTokenizer over a tiny vocabulary: CLIP's 256-symbol byte
    alphabet (alone and word-final `</w>`), merges that build each word left to right,
    then the start/end tokens, so any text tokenises (unknown words byte by byte)."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for token in alphabet + [a + "</w>" for a in alphabet]:
        vocab.setdefault(token, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in words:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        left = pieces[0]
        for right in pieces[1:]:
            if (left, right) not in merges:
                merges.append((left, right))
            left = left + right
            vocab.setdefault(left, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab.setdefault(special, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges)


def tiny_sam3_video_config(vocab_size: int, size: int = SAM3_TINY_SIZE, hidden: int = 128, num_queries: int = 8):
    from transformers import Sam3Config, Sam3TrackerVideoConfig, Sam3VideoConfig

    patch = 14
    grid = size // patch
    # One vision config: the tracker's neck is built from the detector's. Its width must be
    # > the 64-wide memory (object pointers are split into memory tokens; at 64 transformers
    # 5.24 fails to concatenate them).
    vision = {
        "backbone_config": {
            "model_type": "sam3_vit_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "image_size": size, "patch_size": patch, "window_size": 2,
            "global_attn_indexes": [1], "pretrain_image_size": size,
        },
        "fpn_hidden_size": hidden,
        "backbone_feature_sizes": [[4 * grid] * 2, [2 * grid] * 2, [grid] * 2],
    }
    small = {"hidden_size": hidden, "num_attention_heads": 2, "intermediate_size": 64}
    detector = Sam3Config(
        vision_config=vision,
        text_config={
            "model_type": "clip_text_model", "vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64,
            "projection_dim": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 32,
            "bos_token_id": vocab_size - 2, "eos_token_id": vocab_size - 1, "pad_token_id": vocab_size - 1,
        },
        geometry_encoder_config={**small, "num_layers": 1},
        detr_encoder_config={**small, "num_layers": 1},
        detr_decoder_config={**small, "num_layers": 1, "num_queries": num_queries},
        mask_decoder_config={"hidden_size": hidden, "num_attention_heads": 2},
    )
    tracker = Sam3TrackerVideoConfig(
        vision_config=vision,
        **{**_tiny_heads(hidden, size), "prompt_encoder_config": {
            "hidden_size": hidden, "image_size": size, "patch_size": patch, "mask_input_channels": 8}},
        memory_attention_hidden_size=hidden,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[grid, grid],
        memory_encoder_hidden_size=hidden,
        memory_encoder_output_channels=64,  # transformers hard-codes 64 for the memory keys
        mask_downsampler_embed_dim=hidden,
        memory_fuser_num_layers=1,
        memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=64,
    )
    return Sam3VideoConfig(detector_config=detector, tracker_config=tracker)


def write_tiny_sam3(folder: Path, seed: int = SEED, num_queries: int = 4) -> Path:
    """A SAM 3 folder like facebook/sam3 (model_type sam3_video + CLIP tokenizer +
    processor config), serving `detector: sam3`, `segmenter: sam3` and `tracker: sam3`."""
    import torch
    from transformers import Sam3VideoModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_clip_tokenizer()
    torch.manual_seed(seed)
    model = Sam3VideoModel(tiny_sam3_video_config(len(tokenizer), num_queries=num_queries)).eval()
    with quiet_transformers():  # no progress bars in test output
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
    (folder / "processor_config.json").write_text(
        json.dumps({"image_processor": {"image_mean": [0.5] * 3, "image_std": [0.5] * 3}})
    )
    return folder


def write_tiny_sam3_lite_text(folder: Path, seed: int = SEED) -> Path:
    """A SAM 3 image model with the lighter MobileCLIP-style text encoder (model_type
    sam3_lite_text, as yonigozlan/sam3-litetext-*): `detector: sam3` only."""
    import torch
    from transformers import Sam3LiteTextConfig, Sam3LiteTextModel

    tokenizer = tiny_clip_tokenizer()
    base = tiny_sam3_video_config(len(tokenizer)).detector_config
    parts = (
        "vision_config", "geometry_encoder_config", "detr_encoder_config", "detr_decoder_config", "mask_decoder_config",
    )
    config = Sam3LiteTextConfig(
        **{k: getattr(base, k).to_dict() for k in parts},
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "projection_dim": 32,
            "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 32, "repmixer_kernel_size": 3,
        },
    )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = Sam3LiteTextModel(config).eval()
    with quiet_transformers():
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
    return folder
