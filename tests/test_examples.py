"""Every config in examples/ validates, says how to run it, and holds no secret.

Fast: only the config loader runs (no model, no network). Each key line of an example
carries `# meaning (default: X)`; X is checked against the schema's default, so the
comments cannot drift from the code.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from vision_core.config import PipelineConfig, describe_schema, load_config
from vision_core.secrets import redact_dsn

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FILES = sorted(EXAMPLES.glob("*.toml"))

# file -> the command its header must show
COMMANDS = {
    "train-yolo.toml": "vision-train --config examples/train-yolo.toml",
    "train-faster-rcnn.toml": "vision-train --config examples/train-faster-rcnn.toml",
    "label-model.toml": "vision-label model --config examples/label-model.toml",
    "label-llm-openai.toml": "vision-label llm --config examples/label-llm-openai.toml",
    "label-llm-vllm.toml": "vision-label llm --config examples/label-llm-vllm.toml",
    "label-llm-ollama.toml": "vision-label llm --config examples/label-llm-ollama.toml",
    "edge-local.toml": "vision-edge run --config examples/edge-local.toml",
    "edge-stream.toml": "vision-edge run --config examples/edge-stream.toml",
    "edge-llm.toml": "vision-edge run --config examples/edge-llm.toml",
    "edge-tracking.toml": "vision-edge run --config examples/edge-tracking.toml",
    "server.toml": "vision-server serve --config examples/server.toml",
    "stats-postgres.toml": "vision-stats serve --config examples/stats-postgres.toml",
}

DEFAULTS = {path: default for path, _type, default, _doc in describe_schema()}
_DEFAULT_NOTE = re.compile(r"\(default: (?P<value>.+)\)$")
_SECRET_KEY = re.compile(r"(api_key|apikey|password|passwd|secret|token)$", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"\bsk-[A-Za-z0-9_-]{8,}|\bBearer\s+\S{8,}")


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def _raw(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(key.path, value) of every value in a TOML document (arrays' items included)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, f"{prefix}[{i}]")
    else:
        yield prefix, node


def _key_lines(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line number, key.path, the line) of every `key = value` line of a flat example."""
    table = ""
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("[["):  # an item of an array of tables: its keys are `name[].key`
            table = text.strip("[] ") + "[]"
            continue
        if text.startswith("["):
            table = text.strip("[] ")
            continue
        key = text.split("=", 1)[0].strip()
        yield n, f"{table}.{key}" if table else key, text


def test_examples_exist() -> None:
    assert FILES, f"no examples/*.toml under {EXAMPLES}"
    missing = sorted(set(COMMANDS) - {p.name for p in FILES})
    assert not missing, f"examples missing: {missing}"
    unknown = sorted({p.name for p in FILES} - set(COMMANDS))
    assert not unknown, f"add these to COMMANDS (and their facts to FACTS): {unknown}"


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_example_validates(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, PipelineConfig)


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_header_names_the_command(path: Path) -> None:
    head = path.read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert all(line.startswith("#") for line in head.splitlines()), (
        f"{path.name}: start with a comment block"
    )
    assert COMMANDS[path.name] in head, f"{path.name}: header lacks {COMMANDS[path.name]!r}"


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_every_key_has_meaning_and_true_default(path: Path) -> None:
    lines = list(_key_lines(path))
    assert lines
    for n, key, text in lines:
        where = f"{path.name}:{n} {key}"
        assert key in DEFAULTS, f"{where}: not a schema key"
        _value, sep, comment = text.partition("  # ")
        assert sep, f"{where}: needs an inline comment `  # meaning (default: X)`"
        note = _DEFAULT_NOTE.search(comment)
        assert note, f"{where}: comment must end with (default: X)"
        assert comment[: note.start()].strip(), f"{where}: comment must give the meaning"
        stated = tomllib.loads(f"v = {note['value']}")["v"]
        assert stated == DEFAULTS[key], (
            f"{where}: comment says default {note['value']}, schema says {DEFAULTS[key]!r}"
        )


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_no_literal_secret(path: Path) -> None:
    for key, value in _leaves(_raw(path)):
        assert not _SECRET_KEY.search(key.rsplit(".", 1)[-1]), (
            f"{path.name}: {key} looks like a secret; use the *_env key naming a variable"
        )
        if isinstance(value, str):
            assert not _SECRET_VALUE.search(value), f"{path.name}: {key} holds a literal key"
            assert redact_dsn(value) == value, f"{path.name}: {key} holds a password"
        if key.endswith("_env"):
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*|", value), f"{path.name}: {key} = {value!r}"
    assert not _SECRET_VALUE.search(path.read_text(encoding="utf-8")), (
        f"{path.name}: a literal key in a comment"
    )


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_paths_are_relative(path: Path) -> None:
    for key, value in _leaves(_raw(path)):
        if isinstance(value, str) and "://" not in value:
            assert not value.startswith(("/", "~", "\\")), f"{path.name}: {key} = {value!r}"
            assert not re.match(r"[A-Za-z]:[\\/]", value), f"{path.name}: {key} = {value!r}"


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def _train_yolo(c: PipelineConfig) -> None:
    assert c.train.backend == "yolo"
    assert c.train.yolo.weights == "yolo11n.yaml"
    assert c.export.quantize and c.export.quantize_mode == "static"


def _train_frcnn(c: PipelineConfig) -> None:
    assert c.train.backend == "faster_rcnn"
    assert c.export.quantize


def _label_model(c: PipelineConfig) -> None:
    assert c.infer.model_path.endswith(".onnx")
    assert c.data.unlabeled_dir != c.data.labeled_dir


def _label_llm(base_url: str, key_env: str) -> Callable[[PipelineConfig], None]:
    def check(c: PipelineConfig) -> None:
        assert c.autolabel.llm.base_url == base_url
        assert c.autolabel.llm.api_key_env == key_env
        assert c.class_map, "the LLM needs the class names"

    return check


def _edge(mode: str) -> Callable[[PipelineConfig], None]:
    def check(c: PipelineConfig) -> None:
        edge = c.deploy.edge
        assert edge.mode == mode
        if edge.source == "video":
            assert edge.video_path
        if edge.source == "images":
            assert edge.images_dir
        if mode == "local":
            assert c.infer.model_path.endswith(".onnx")
            assert c.deploy.stats.endpoint.endswith("/api/v1/stats/events")
        if mode == "stream":
            assert edge.stream_endpoint.endswith("/api/v1/frame")
            assert c.deploy.remote.api_key_env
        if mode == "llm":
            assert c.class_map
            assert c.autolabel.llm.api_key_env
            assert c.deploy.edge.max_frames_per_sec > 0, "bound the paid requests"

    return check


def _edge_tracking(c: PipelineConfig) -> None:
    _edge("local")(c)
    assert c.track.enabled and c.track.lines and c.track.zones
    assert c.deploy.edge.events == "summaries"
    names = [ln.name for ln in c.track.lines] + [z.name for z in c.track.zones]
    assert len(names) == len(set(names))


def _server(c: PipelineConfig) -> None:
    assert c.infer.model_path.endswith(".onnx")
    assert c.deploy.remote.api_key_env
    assert not c.deploy.remote.allow_anonymous
    assert c.deploy.stats.endpoint.endswith("/api/v1/stats/events")


def _stats_postgres(c: PipelineConfig) -> None:
    assert c.stats.db.startswith("postgresql://")
    assert _host(c.stats.db)
    assert c.stats.api_key_env == "VISION_STATS_API_KEY"
    assert not c.stats.allow_anonymous


FACTS: dict[str, Callable[[PipelineConfig], None]] = {
    "train-yolo.toml": _train_yolo,
    "train-faster-rcnn.toml": _train_frcnn,
    "label-model.toml": _label_model,
    "label-llm-openai.toml": _label_llm("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "label-llm-vllm.toml": _label_llm("http://localhost:8000/v1", ""),
    "label-llm-ollama.toml": _label_llm("http://localhost:11434/v1", ""),
    "edge-local.toml": _edge("local"),
    "edge-stream.toml": _edge("stream"),
    "edge-llm.toml": _edge("llm"),
    "edge-tracking.toml": _edge_tracking,
    "server.toml": _server,
    "stats-postgres.toml": _stats_postgres,
}


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_job_facts(path: Path) -> None:
    assert path.name in FACTS, f"no facts for {path.name}"
    FACTS[path.name](load_config(path))


@pytest.mark.parametrize("name", [n for n in COMMANDS if n.startswith("edge-")])
def test_edge_examples_show_every_source(name: str) -> None:
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    for source in ("camera", "video", "images"):
        assert f'source = "{source}"' in text, f"{name}: show source = {source!r}"
    # the alternatives in the comments validate too
    path = EXAMPLES / name
    for alt in (
        ["deploy.edge.source=camera", "deploy.edge.camera=rtsp://192.168.1.20:554/stream1"],
        ["deploy.edge.source=video", "deploy.edge.video_path=videos/clip.mp4"],
        ["deploy.edge.source=images", "deploy.edge.images_dir=images/clip"],
    ):
        assert load_config(path, alt).deploy.edge.source == alt[0].split("=")[1]
