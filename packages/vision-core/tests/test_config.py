"""The pipeline config: defaults, overrides, and an exact message for every bad key."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from vision_core.config import build_config, config_to_dict, describe_schema, load_config
from vision_core.errors import ConfigError


def test_every_field_has_a_default_and_a_doc() -> None:
    cfg = build_config({})
    rows = describe_schema()
    assert len(rows) > 80
    assert all(doc for _, _, _, doc in rows), [k for k, _, _, d in rows if not d]
    assert cfg.train.epochs == 50 and cfg.export.opset == 17 and cfg.autolabel.on_conflict == "skip"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"train": {"epochs": "ten"}}, "train.epochs: expected an integer >= 1, got 'ten'"),
        ({"train": {"epochs": 0}}, "train.epochs: expected an integer >= 1, got 0"),
        ({"train": {"epochs": 2.5}}, "train.epochs: expected an integer >= 1, got 2.5"),
        ({"train": {"epoch": 3}}, "train.epoch: unknown key (did you mean 'epochs'?)"),
        ({"trian": {"epochs": 3}}, "trian: unknown key (did you mean 'train'?)"),
        (
            {"train": {"backend": "yolov8"}},
            "train.backend: expected one of 'yolo', 'faster_rcnn', got 'yolov8' (did you mean 'yolo'?)",
        ),
        ({"train": {"dry_run": "yes"}}, "train.dry_run: expected true or false, got 'yes'"),
        (
            {"train": {"yolo": {"imgsz": 100}}},
            "train.yolo.imgsz: expected a multiple of 32, got 100",
        ),
        (
            {"train": {"faster_rcnn": {"variant": "resnet101"}}},
            "train.faster_rcnn.variant: expected one of 'mobilenet_v3', 'resnet50_fpn', 'resnet50_fpn_v2', 'resnet18_fpn', got 'resnet101' (did you mean 'resnet50_fpn'?)",
        ),
        ({"export": {"opset": 9}}, "export.opset: expected an integer >= 11 and <= 23, got 9"),
        (
            {"export": {"quantize_mode": "qat"}},
            "export.quantize_mode: expected one of 'static', 'dynamic', got 'qat'",
        ),
        ({"infer": {"conf": 1.5}}, "infer.conf: expected a number >= 0 and <= 1, got 1.5"),
        (
            {"autolabel": {"on_conflict": "replace"}},
            "autolabel.on_conflict: expected one of 'skip', 'overwrite', 'merge', got 'replace'",
        ),
        (
            {"autolabel": {"llm": {"max_requests_per_sec": -1}}},
            "autolabel.llm.max_requests_per_sec: expected a number > 0, got -1",
        ),
        (
            {"deploy": {"edge": {"mode": "cloud"}}},
            "deploy.edge.mode: expected one of 'local', 'stream', 'llm', got 'cloud'",
        ),
        (
            {"deploy": {"edge": {"source": "video"}}},
            "deploy.edge.video_path: required when deploy.edge.source = 'video'",
        ),
        (
            {"deploy": {"remote": {"port": 70000}}},
            "deploy.remote.port: expected an integer >= 0 and <= 65535, got 70000",
        ),
        (
            {"deploy": {"edge": {"jpeg_quality": "high"}}},
            "deploy.edge.jpeg_quality: expected an integer >= 1 and <= 100, got 'high'",
        ),
        ({"stats": {"port": True}}, "stats.port: expected an integer >= 0 and <= 65535, got true"),
        ({"train": 5}, "train: expected a table, got 5"),
        (
            {"class_map": {"x": "circle"}},
            "class_map.x: expected a class id (an integer >= 0) as key, got 'x'",
        ),
        (
            {"class_map": {"0": "a", "2": "c"}},
            "class_map: class ids must be 0..1 without gaps, got [0, 2]",
        ),
        ({"run": {"name": "a/b"}}, "run.name: expected a name without slashes, got 'a/b'"),
    ],
)
def test_bad_config_names_the_key_path_and_value(raw: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(raw)
    assert expected in err.value.problems


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        build_config({"train": {"epochs": "x", "device": 3}, "export": {"opset": 5}})
    assert err.value.problems == [
        "train.epochs: expected an integer >= 1, got 'x'",
        "train.device: expected a string, got 3",
        "export.opset: expected an integer >= 11 and <= 23, got 5",
    ]


def test_secret_pasted_into_env_name_field_is_not_echoed() -> None:
    secret = "sk-live-1234567890abcdef"
    with pytest.raises(ConfigError) as err:
        build_config({"autolabel": {"llm": {"api_key_env": secret}}})
    assert "autolabel.llm.api_key_env" in str(err.value)
    assert secret not in str(err.value)


def test_set_overrides_are_typed_by_the_schema() -> None:
    cfg = build_config(
        {"train": {"epochs": 3}},
        [
            "train.epochs=7",
            "train.dry_run=true",
            "infer.conf=0.4",
            "class_map=circle,square",
            "run.name=demo",
        ],
    )
    assert cfg.train.epochs == 7 and cfg.train.dry_run is True
    assert cfg.infer.conf == pytest.approx(0.4)
    assert cfg.class_map == {0: "circle", 1: "square"}
    assert cfg.run.name == "demo"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.epochs=ten", "train.epochs: expected an integer >= 1, got 'ten'"),
        ("train.epochz=3", "train.epochz: unknown key (did you mean 'epochs'?)"),
        ("export.quantize=maybe", "export.quantize: expected true or false, got 'maybe'"),
    ],
)
def test_bad_set_override_names_the_key(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config({}, [override])
    assert expected in err.value.problems


def test_set_without_equals_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"expected key.path=value"):
        build_config({}, ["train.epochs"])


def test_toml_and_yaml_files_load_the_same(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text('[train]\nepochs = 4\n[class_map]\n0 = "circle"\n1 = "square"\n')
    yml = tmp_path / "p.yaml"
    yml.write_text("train:\n  epochs: 4\nclass_map:\n  0: circle\n  1: square\n")
    assert load_config(toml) == load_config(yml)
    assert load_config(toml).class_map == {0: "circle", 1: "square"}


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = \n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert str(bad) in str(err.value) and "line 2" in str(err.value)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.toml"):
        load_config(tmp_path / "nope.toml")


def test_resolved_config_redacts_dsn_password() -> None:
    cfg = build_config({"stats": {"db": "postgresql://vision:hunter22@db.local:5432/stats"}})
    dumped = config_to_dict(cfg)
    assert "hunter22" not in str(dumped)
    assert dumped["stats"]["db"] == "postgresql://vision:***@db.local:5432/stats"


RENAMES = [
    ("deploy.edge.flush_timeout_sec", "deploy.stats.flush_timeout_sec", 7.0),
    ("deploy.remote.stats_flush_sec", "deploy.stats.flush_timeout_sec", 2.0),
    ("deploy.edge.stream_api_key_env", "deploy.remote.api_key_env", "K1"),
    ("deploy.remote.ingest_api_key_env", "deploy.remote.api_key_env", "K2"),
    ("deploy.stats.api_key_env", "stats.api_key_env", "K3"),
    ("autolabel.conf", "infer.conf", 0.4),
    ("autolabel.iou", "infer.iou", 0.5),
    ("autolabel.model_path", "infer.model_path", "m.onnx"),
    ("train.faster_rcnn.num_workers", "train.faster_rcnn.workers", 3),
    ("deploy.edge.fps_limit", "deploy.edge.max_frames_per_sec", 12.5),
    ("autolabel.llm.qps_limit", "autolabel.llm.max_requests_per_sec", 4.0),
]


def test_the_rename_table_covers_every_renamed_key() -> None:
    from vision_core.config import RENAMED_KEYS

    assert {old: new for old, new, _ in RENAMES} == RENAMED_KEYS


@pytest.mark.parametrize(("old_path", "new_path", "value"), RENAMES)
def test_an_old_key_name_still_loads_with_a_warning_naming_the_new_key(
    old_path: str, new_path: str, value: Any
) -> None:
    from vision_core.config import ConfigDeprecationWarning

    raw: dict[str, Any] = {}
    node = raw
    *head, last = old_path.split(".")
    for part in head:
        node = node.setdefault(part, {})
    node[last] = value
    with pytest.warns(ConfigDeprecationWarning) as caught:
        cfg = build_config(raw)
    (warning,) = caught
    assert str(warning.message).startswith(f"{old_path} is deprecated, use {new_path}")
    got: Any = cfg
    for part in new_path.split("."):
        got = getattr(got, part)
    assert got == value


def test_an_old_key_also_works_on_the_command_line() -> None:
    from vision_core.config import ConfigDeprecationWarning

    with pytest.warns(ConfigDeprecationWarning, match="deploy.edge.fps_limit is deprecated"):
        cfg = build_config({}, ["deploy.edge.fps_limit=3"])
    assert cfg.deploy.edge.max_frames_per_sec == 3.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"deploy": {"edge": {"fps_limit": 1.0, "max_frames_per_sec": 2.0}}},
            "deploy.edge.fps_limit: renamed to deploy.edge.max_frames_per_sec, which is set "
            "too: keep only deploy.edge.max_frames_per_sec",
        ),
        (
            {
                "deploy": {
                    "edge": {"flush_timeout_sec": 1.0},
                    "remote": {"stats_flush_sec": 9.0},
                }
            },
            "deploy.remote.stats_flush_sec: renamed to deploy.stats.flush_timeout_sec, and "
            "deploy.edge.flush_timeout_sec (also renamed to it) is set to another value",
        ),
    ],
)
def test_an_old_and_a_new_name_of_one_key_conflict(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(raw)
    assert message in str(err.value)


def test_the_keys_command_lists_every_key_with_type_default_and_meaning() -> None:
    from click.testing import CliRunner

    from vision_core.cli import keys_command

    out = CliRunner().invoke(keys_command, ["deploy.edge"])
    assert out.exit_code == 0, out.output
    line = r"^deploy\.edge\.max_frames_per_sec\s+\(float\) 0\.0  # frames taken per second at most"
    assert re.search(line, out.output, re.M), out.output
    assert "deploy.edge.fps_limit -> deploy.edge.max_frames_per_sec" in out.output
    data = CliRunner().invoke(keys_command, ["--json"])
    rows = json.loads(data.output)["keys"]
    assert {
        "key": "train.epochs",
        "type": "int",
        "default": 50,
        "meaning": "training epochs",
    } in rows
    assert CliRunner().invoke(keys_command, ["nope"]).exit_code == 2
