"""matte.yaml / show files: typed parsing, merging, and errors that name file and key."""

from pathlib import Path

import pytest
import yaml

from matte_assets.config import (
    Project,
    ShowFile,
    add_shot,
    init_project,
    prompt_labels,
    split_shot_ref,
)
from matte_assets.errors import ConfigError


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


@pytest.fixture()
def project(tmp_path: Path) -> Project:
    init_project(tmp_path)
    return Project(tmp_path)


def test_defaults_are_the_papers(project: Project, tmp_path: Path) -> None:
    write(tmp_path / "shows" / "show1.yaml", {"shots": {"sh010": {"plate": "/p/sh010.####.exr"}}})
    s = project.shot("show1", "sh010")
    assert (s.track.window, s.track.prompt_step, s.track.epsilon) == (20, 5, 0.1)
    assert s.track.identity_iou == 0.8  # the flow tracker's default (see IDENTITY_IOU_DEFAULTS)
    assert (s.filter.sim_false_positive, s.filter.sim_false_positive_count, s.filter.sim_merge, s.filter.duplicate_iou) == (
        0.1, 2, 0.6, 0.9,
    )
    assert s.plate.max_side == 1024 and s.deliver.compression == "zip"
    assert (s.backends.detector, s.backends.segmenter, s.backends.tracker) == ("opencv", "grabcut", "flow")


def test_identity_iou_default_follows_the_tracker(project: Project, tmp_path: Path) -> None:
    write(
        tmp_path / "shows" / "s.yaml",
        {
            "backends": {"tracker": "sam2"},
            "shots": {
                "a": {"plate": "/a.####.exr"},
                "b": {"plate": "/b.####.exr", "backends": {"tracker": "flow"}},
                "c": {"plate": "/c.####.exr", "track": {"identity_iou": 0.95}},
            },
        },
    )
    assert project.shot("s", "a").track.identity_iou == 0.9  # the paper's value, for SAM2
    assert project.shot("s", "b").track.identity_iou == 0.8
    assert project.shot("s", "c").track.identity_iou == 0.95  # an explicit value always wins


def test_shot_overrides_merge_deeply(project: Project, tmp_path: Path) -> None:
    write(
        tmp_path / "shows" / "show1.yaml",
        {
            "prompt": "person",
            "filter": {"sim_merge": 0.7, "duplicate_iou": 0.8},
            "shots": {"sh010": {"plate": "plates/a.%04d.png", "prompt": "person, car", "filter": {"sim_merge": 0.5}}},
        },
    )
    s = project.shot("show1", "sh010")
    assert s.filter.sim_merge == 0.5 and s.filter.duplicate_iou == 0.8  # shot wins, show default kept
    assert s.labels == ["person", "car"]
    assert s.plate.path == str(tmp_path / "plates/a.%04d.png")  # relative to the project root


def test_plate_mapping_form_allows_max_side_per_shot(project: Project, tmp_path: Path) -> None:
    write(tmp_path / "shows" / "s.yaml", {"shots": {"a": {"plate": {"path": "/x.####.exr", "max_side": 512, "frames": [1001, 1010]}}}})
    s = project.shot("s", "a")
    assert s.plate.max_side == 512 and s.plate.frames == (1001, 1010)


@pytest.mark.parametrize(
    "show, expected",
    [
        ({"filter": {"sim_merg": 0.5}}, "unknown key 'filter.sim_merg'"),
        ({"track": {"window": 1}}, "track.window"),
        ({"filter": {"sim_merge": 1.5}}, "filter.sim_merge"),
        ({"backends": {"detector": "yolo"}}, "backends.detector"),
        ({"shots": {"sh010": {"plate": "/p.####.exr", "track": {"epsilon": "high"}}}}, "shots.sh010.track.epsilon"),
        ({"shots": {"sh010": {"plate": "/p.####.exr", "color": 1}}}, "unknown key 'shots.sh010.color'"),
        ({"shots": {"sh010": {"prompt": "person"}}}, "shots.sh010.plate: no plate pattern"),
        ({"shots": {"bad name": {"plate": "/p.####.exr"}}}, "bad shot name 'bad name'"),
        ({"prompt": " , "}, "prompt"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, show, expected: str) -> None:
    path = write(tmp_path / "shows" / "show1.yaml", show)
    with pytest.raises(ConfigError) as err:
        ShowFile(path, "show1")
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_malformed_yaml_and_project_file(tmp_path: Path) -> None:
    path = write(tmp_path / "shows" / "s.yaml", "shots: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        ShowFile(path, "s")
    write(tmp_path / "matte.yaml", {"store": "x", "deliverys": "y"})
    with pytest.raises(ConfigError, match="unknown key 'deliverys'"):
        Project(tmp_path)
    with pytest.raises(ConfigError, match="not a matte project"):
        Project(tmp_path / "nowhere")


def test_store_urls_and_paths(tmp_path: Path) -> None:
    write(tmp_path / "matte.yaml", {"store": "memory://matte/store", "deliveries": "out"})
    p = Project(tmp_path)
    assert p.store_url == "memory://matte/store"
    assert p.deliveries == tmp_path / "out"
    assert p.shows_dir == tmp_path / "shows"


@pytest.mark.parametrize("ref", ["show/sh010", "show__sh010"])
def test_shot_refs(ref: str) -> None:
    assert split_shot_ref(ref) == ("show", "sh010")


@pytest.mark.parametrize("ref", ["show", "a/b/c", "sh ow/x", "a__b/c", "show/sh.010", "../x/y"])
def test_bad_shot_refs(ref: str) -> None:
    with pytest.raises(ConfigError):
        split_shot_ref(ref)


def test_prompt_labels() -> None:
    assert prompt_labels("Person, car.  traffic   light,person") == ["person", "car", "traffic light"]


def test_add_shot_keeps_other_keys_and_rejects_bad_entries(project: Project, tmp_path: Path) -> None:
    path = write(tmp_path / "shows" / "s.yaml", {"prompt": "car", "filter": {"sim_merge": 0.4}})
    add_shot(project, "s", "sh010", "/plates/a.####.exr", None)
    add_shot(project, "s", "sh020", "/plates/b.####.exr", "person")
    data = yaml.safe_load(path.read_text())
    assert data["filter"] == {"sim_merge": 0.4}
    assert data["shots"]["sh020"] == {"plate": "/plates/b.####.exr", "prompt": "person"}
    before = path.read_text()
    with pytest.raises(ConfigError):
        add_shot(project, "s", "sh030", "/plates/c.####.exr", " , ")
    assert path.read_text() == before  # a rejected entry changes nothing
    assert not list(path.parent.glob(".*tmp*"))


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    init_project(tmp_path)
    with pytest.raises(ConfigError, match="already exists"):
        init_project(tmp_path)
