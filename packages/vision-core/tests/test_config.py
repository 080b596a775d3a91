"""The pipeline config: defaults, overrides, and an exact message for every bad key."""

from __future__ import annotations

from pathlib import Path

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
            {"autolabel": {"llm": {"qps_limit": -1}}},
            "autolabel.llm.qps_limit: expected a number > 0, got -1",
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
