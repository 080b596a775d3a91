"""StructuredLogger and secret handling."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from vision_core.config import build_config
from vision_core.errors import SecretError
from vision_core.kernel import RunContext, VisionKernel
from vision_core.logging import StructuredLogger, read_jsonl
from vision_core.registry import KernelRegistry
from vision_core.secrets import redact_dsn, resolve_secret, scrub


def test_lines_carry_the_spec_fields_and_extras(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "log.jsonl"
    with StructuredLogger(path, "DEBUG", run_id="r1", backend="yolo") as log:
        log.info("train.start", "Training started", epochs=3)
    (rec,) = read_jsonl(path)
    assert set(rec) == {"ts_utc", "level", "event", "message", "run_id", "backend", "epochs"}
    assert (rec["level"], rec["event"], rec["run_id"], rec["backend"], rec["epochs"]) == (
        "INFO",
        "train.start",
        "r1",
        "yolo",
        3,
    )
    assert rec["ts_utc"].endswith("+00:00")


def test_levels_below_minimum_cost_no_io(tmp_path: Path) -> None:
    log = StructuredLogger(tmp_path / "l.jsonl", "WARN")

    class Exploding:
        def __str__(self) -> str:
            raise AssertionError("formatted a filtered message")

    log.debug("x", "dropped", obj=Exploding())
    log.info("x", "dropped", obj=Exploding())
    log.close()
    assert (tmp_path / "l.jsonl").read_text() == ""


def test_thread_safe_lines_never_interleave(tmp_path: Path) -> None:
    log = StructuredLogger(tmp_path / "l.jsonl")

    def work(n: int) -> None:
        for i in range(300):
            log.info("t", "x" * 200, thread=n, i=i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    recs = read_jsonl(tmp_path / "l.jsonl")
    assert len(recs) == 2400
    assert {(r["thread"], r["i"]) for r in recs} == {(n, i) for n in range(8) for i in range(300)}


def test_console_gets_short_human_lines(tmp_path: Path) -> None:
    buf = io.StringIO()
    log = StructuredLogger(None, console=buf)
    log.info("e", "hello there", fps=12.5)
    line = buf.getvalue().strip()
    assert (
        "INFO" in line and "hello there" in line and "fps=12.5" in line and not line.startswith("{")
    )


def test_resolve_secret_missing_names_variable_not_value() -> None:
    with pytest.raises(SecretError) as err:
        resolve_secret(
            "VISION_TEST_KEY", key_path="autolabel.llm.api_key_env", required=True, environ={}
        )
    assert "VISION_TEST_KEY" in str(err.value) and "autolabel.llm.api_key_env" in str(err.value)


def test_secret_never_reaches_log_run_dir_or_error(tmp_path: Path) -> None:
    value = "sk-test-0123456789-SECRET"
    cfg = build_config(
        {"run": {"workdir": str(tmp_path)}, "autolabel": {"llm": {"api_key_env": "MY_LLM_KEY"}}}
    )

    def backend(ctx: RunContext) -> dict[str, Any]:
        key = resolve_secret(
            ctx.config.autolabel.llm.api_key_env,
            key_path="autolabel.llm.api_key_env",
            environ={"MY_LLM_KEY": value},
        )
        assert key.reveal() == value and value not in repr(key)
        ctx.logger.info("llm.call", f"calling with {key.reveal()}", header=f"Bearer {key.reveal()}")
        ctx.metrics["debug"] = value
        raise RuntimeError(f"HTTP 401 for key {key.reveal()}")

    reg = KernelRegistry(use_entry_points=False)
    reg.register("autolabeler", "llm", backend)
    result = VisionKernel(cfg, reg, console=False).run_autolabel("llm")
    assert result.status == "failed"
    assert value not in (result.error or "")
    files = list(result.run_context.run_dir.rglob("*"))
    assert {p.name for p in files} >= {"metrics.json", "artifacts.json", "config.json", "log.jsonl"}
    for p in files:
        assert value not in p.read_text(), p.name
    assert "MY_LLM_KEY" in (result.run_context.run_dir / "config.json").read_text()
    assert (
        json.loads((result.run_context.run_dir / "metrics.json").read_text())["metrics"]["debug"]
        == "***"
    )


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://u:pw123@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("host=h dbname=d password=pw123 user=u", "host=h dbname=d password=*** user=u"),
        ("work-dir/stats.db", "work-dir/stats.db"),
    ],
)
def test_dsn_passwords_are_redacted(dsn: str, expected: str) -> None:
    assert redact_dsn(dsn) == expected
    assert "pw123" not in scrub(f"connect failed: {dsn}")


def test_console_line_leaves_tracebacks_to_the_jsonl(tmp_path: Path) -> None:
    buf = io.StringIO()
    log = StructuredLogger(tmp_path / "l.jsonl", console=buf)
    log.error(
        "run.failed",
        "run failed: bad label",
        traceback="Traceback (most recent call last):\n  x",
        code=3,
    )
    log.close()
    assert (
        buf.getvalue().count("\n") == 1
        and "Traceback" not in buf.getvalue()
        and "code=3" in buf.getvalue()
    )
    assert "Traceback" in read_jsonl(tmp_path / "l.jsonl")[0]["traceback"]


def test_a_camera_password_is_redacted_in_config_json_and_logs(tmp_path: Path) -> None:
    """rtsp://user:pass@... in the config: the run dir's config.json, metrics and log lines
    never hold the password (the user name stays, it is not a secret)."""
    camera = "rtsp://admin:cam-Pa55word@10.0.0.7:554/stream1"
    cfg = build_config({"run": {"workdir": str(tmp_path)}, "deploy": {"edge": {"camera": camera}}})

    def backend(ctx: RunContext) -> dict[str, Any]:
        from vision_core.secrets import camera_url

        url = camera_url(ctx.config.deploy.edge.camera)  # registers the password
        ctx.logger.info("edge.camera", f"opening {url}")
        ctx.metrics["camera"] = url
        return {"camera": url}

    registry = KernelRegistry(use_entry_points=False)
    registry.register("deployer", "cam", backend)
    res = VisionKernel(cfg, registry, console=False).run_callable("deploy-edge", "cam", backend)
    assert res.ok, res.error
    for name in ("config.json", "metrics.json", "artifacts.json", "log.jsonl"):
        text = (res.run_context.run_dir / name).read_text()
        assert "cam-Pa55word" not in text, name
    assert (
        "rtsp://admin:***@10.0.0.7:554/stream1"
        in (res.run_context.run_dir / "config.json").read_text()
    )


def test_camera_credentials_come_from_an_environment_variable() -> None:
    from vision_core.errors import ConfigError
    from vision_core.secrets import camera_url

    env = {"CAM_CREDS": "viewer:s3cret/with@chars"}
    url = camera_url("rtsp://10.0.0.7/live", "CAM_CREDS", environ=env)
    assert url == "rtsp://viewer:s3cret%2Fwith%40chars@10.0.0.7/live"
    assert scrub(f"cannot open {url}") == "cannot open rtsp://viewer:***@10.0.0.7/live"
    assert camera_url("0") == "0"  # a device index: nothing to add
    with pytest.raises(ConfigError, match=r"deploy\.edge\.camera is not a URL"):
        camera_url("0", "CAM_CREDS", environ=env)
    with pytest.raises(ConfigError, match="keep them only in the environment variable"):
        camera_url("rtsp://u:p@10.0.0.7/live", "CAM_CREDS", environ=env)
    with pytest.raises(SecretError, match="'NOPE' is not set"):
        camera_url("rtsp://10.0.0.7/live", "NOPE", environ=env)
    with pytest.raises(SecretError, match="must hold user:password"):
        camera_url("rtsp://10.0.0.7/live", "CAM_CREDS", environ={"CAM_CREDS": "justpass"})


def test_a_kv_dsn_password_in_a_log_line_is_masked_and_the_line_stays_json(tmp_path: Path) -> None:
    from vision_core.logging import StructuredLogger, read_jsonl

    log = StructuredLogger(tmp_path / "l.jsonl")
    dsn = "host=db dbname=stats password=hunter2-kv"
    log.error("x.err", f"cannot reach {dsn}", db=dsn)
    log.close()
    (line,) = read_jsonl(tmp_path / "l.jsonl")  # parses: the quote after the value survived
    assert line["db"] == "host=db dbname=stats password=***"
    assert "hunter2-kv" not in (tmp_path / "l.jsonl").read_text()
