"""`vision-label llm` against the fake OpenAI-compatible server (real HTTP, real openai
client): the QPS bucket, injected 429/5xx retried, one malformed answer fails one image,
a rerun is free (cache), and `eval` of the LLM-labeled set versus the synthetic truth."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.fixtures.llm_server import FakeLLM, Fault
from vision_label.cli import main

from .conftest import write_toml

SECRET = "sk-fake-vlm-key-0123456789"
CLASSES = '[class_map]\n0 = "circle"\n1 = "square"\n2 = "triangle"\n'


def _cfg(tmp_path: Path, src: Path, server: FakeLLM, llm: str) -> Path:
    extra = (
        CLASSES + "[autolabel.llm]\n"
        f'base_url = "{server.url}"\nmodel = "fake-vlm"\napi_key_env = "FAKE_VLM_KEY"\n'
        "retry_backoff_sec = 0.05\ntimeout_sec = 3\n" + llm
    )
    return write_toml(tmp_path / "p.toml", tmp_path / "wd", src, tmp_path / "out", extra)


def _metrics(workdir: Path) -> dict[str, object]:
    run = sorted((workdir / "runs").iterdir())[-1]
    return json.loads((run / "metrics.json").read_text())["metrics"]  # type: ignore[no-any-return]


def _invoke(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.output


def test_qps_retries_malformed_cache_and_eval(
    shapes: tuple[Path, Path],
    llm_server: FakeLLM,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_VLM_KEY", SECRET)
    src, truth = shapes
    images = sorted(src.glob("*.jpg"))[:30]
    subset = tmp_path / "in"
    subset.mkdir()
    for p in images:
        (subset / p.name).write_bytes(p.read_bytes())
    shas = llm_server.register_dir(subset, truth)
    llm_server.fail_next(Fault("status", 429, retry_after=0.3))
    llm_server.fail_next(Fault("status", 500))
    llm_server.fail_next(Fault("status", 502))
    llm_server.fail_next(Fault("status", 503))
    llm_server.fail_image(shas["img_00007.jpg"], Fault("malformed"))
    cfg = _cfg(
        tmp_path, subset, llm_server, "max_requests_per_sec = 5\nconcurrency = 4\nmax_retries = 3\n"
    )

    t0 = time.monotonic()
    code, out = _invoke("llm", "--config", str(cfg))
    elapsed = time.monotonic() - t0
    assert code == 0, out
    # 34 requests (30 images + 4 retried faults) through a 5/s bucket (burst 1): the run
    # takes >= 33 / 5 s. Server-side arrival times jitter by a request's latency (the first
    # one opens the connection), so there the check is a sliding 1 s window.
    times = sorted(c.t for c in llm_server.calls)
    assert len(times) == 34 and elapsed >= 33 / 5
    assert max(sum(1 for t in times if start <= t < start + 1.0) for start in times) <= 5 + 2
    m = _metrics(tmp_path / "wd")
    llm = m["llm"]
    assert isinstance(llm, dict)
    assert (m["labeled"], m["failed"]) == (29, 1)
    assert m["failures"][0]["image"] == "img_00007.jpg"  # type: ignore[index]
    assert "no valid JSON" in m["failures"][0]["error"]  # type: ignore[index]
    assert llm["requests"] == 34 and llm["retries"] == 4 and llm["calls_ok"] == 30
    assert llm["total_tokens"] == 30 * 120 and llm["status_counts"]["429"] == 1
    assert not (tmp_path / "out" / "labels" / "img_00007.txt").exists()
    assert llm_server.calls[0].auth == f"Bearer {SECRET}"
    for f in (tmp_path / "wd").rglob("*"):  # never in the run dir, log or cache
        assert not f.is_file() or SECRET.encode() not in f.read_bytes(), f
    assert SECRET not in out

    # eval versus the truth: every box right; recall misses only the failed image's boxes
    code, out = _invoke("eval", "--pred", str(tmp_path / "out"), "--truth", str(truth), "--json")
    assert code == 0, out
    res = json.loads(out)
    per_image = {p.name: len(p.read_text().splitlines()) for p in truth.glob("img_*.txt")}
    total = sum(per_image[f"img_{i:05d}.txt"] for i in range(30))
    missed = per_image["img_00007.txt"]
    # the truth dir holds 40 images: the 10 never labeled count as misses too
    all_truth = sum(per_image.values())
    assert res["precision"] == 1.0
    assert abs(res["recall"] - (total - missed) / all_truth) < 1e-9
    assert res["per_class"]["circle"]["precision"] == 1.0

    # a second run: skip keeps the labels; overwrite re-asks nothing either (cache)
    llm_server.calls.clear()
    code, out = _invoke("llm", "--config", str(cfg), "--set", "autolabel.on_conflict=overwrite")
    assert code == 0, out
    m2 = _metrics(tmp_path / "wd")
    llm2 = m2["llm"]
    assert isinstance(llm2, dict)
    # only the image that failed is asked again (its malformed answer was not cached)
    assert [c.image_sha256 for c in llm_server.calls] == [shas["img_00007.jpg"]]
    assert llm2["cache_hits"] == 29 and m2["failed"] == 0
    llm_server.calls.clear()
    code, out = _invoke("llm", "--config", str(cfg), "--set", "autolabel.on_conflict=overwrite")
    assert code == 0 and llm_server.calls == []  # everything answered: zero calls
    code, out = _invoke("eval", "--pred", str(tmp_path / "out"), "--truth", str(truth))
    assert code == 0 and out.splitlines()[-1].split()[:3] == [
        "all",
        "1.000",
        f"{total / all_truth:.3f}",
    ]


def test_llm_needs_class_names(
    shapes: tuple[Path, Path], llm_server: FakeLLM, tmp_path: Path
) -> None:
    cfg = write_toml(
        tmp_path / "p.toml",
        tmp_path / "wd",
        shapes[0],
        tmp_path / "out",
        f'[autolabel.llm]\nbase_url = "{llm_server.url}"\n',
    )
    code, out = _invoke("llm", "--config", str(cfg), "--set", f"data.yolo_dataset_dir={tmp_path}")
    assert code == 1 and "needs the class names" in out
