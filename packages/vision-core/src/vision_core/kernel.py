"""VisionKernel: the one way every CLI runs a job.

1. ensure the workdir layout; 2. create a unique run dir
(`<workdir>/runs/<run_name>-<YYYYMMDD-HHMMSS>[-N]`) and write config.json into it (the
resolved config, secrets redacted) before anything runs, so a run killed half-way (a
SIGKILLed server) still says what it ran with; 3. look the backend up; 4. call it inside
try/except; 5. ALWAYS write metrics.json and artifacts.json, on failure too; 6. return a
RunResult. A CLI exits
non-zero when the result is not ok.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vision_core.config import PipelineConfig, config_to_dict
from vision_core.fsutil import atomic_write_json
from vision_core.logging import StructuredLogger
from vision_core.registry import KernelRegistry, Kind
from vision_core.secrets import scrub

WORKDIR_LAYOUT = ("runs", "logs", "data", "outbox")


@dataclass(slots=True)
class RunContext:
    """What a backend gets: where to write, the config, the logger, and a metrics dict.

    Backends put figures into `metrics` as they go: the kernel writes them even when the
    backend fails half-way.
    """

    run_id: str
    mode: str
    workdir: Path
    run_dir: Path
    config: PipelineConfig
    logger: StructuredLogger
    backend: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def outputs_dir(self) -> Path:
        """`<run_dir>/outputs`: annotated frames and other files a run produces (created
        when first written to)."""
        return self.run_dir / "outputs"


@dataclass(slots=True)
class RunResult:
    run_context: RunContext
    status: str  # "ok" | "failed" | "interrupted"
    backend: str
    elapsed_ms: float
    artifacts: dict[str, Any]
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "interrupted": 130}.get(self.status, 1)


def make_run_dir(runs_dir: Path, run_name: str, now: datetime | None = None) -> tuple[str, Path]:
    """Create `<runs_dir>/<name>-<stamp>`, adding -2, -3... if taken (atomic via mkdir)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = f"{run_name}-{stamp}"
    runs_dir.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        run_id = base if n == 1 else f"{base}-{n}"
        path = runs_dir / run_id
        try:
            path.mkdir()
        except FileExistsError:
            n += 1
            continue
        return run_id, path


class VisionKernel:
    """Runs trainers, autolabelers and deployers the same way (see the module docstring)."""

    def __init__(
        self,
        config: PipelineConfig,
        registry: KernelRegistry | None = None,
        *,
        console: bool = True,
    ) -> None:
        self.config = config
        self.registry = registry or KernelRegistry()
        self.console = console
        self.workdir = Path(config.run.workdir).resolve()

    def _ensure_workdir_layout(self) -> None:
        for sub in WORKDIR_LAYOUT:
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)

    def _make_run_context(self, mode: str, backend: str) -> RunContext:
        run_id, run_dir = make_run_dir(self.workdir / "runs", self.config.run.name)
        logger = StructuredLogger(
            run_dir / "log.jsonl",
            self.config.run.log_level,
            run_id=run_id,
            backend=backend,
            console=self.console,
        )
        return RunContext(
            run_id=run_id,
            mode=mode,
            workdir=self.workdir,
            run_dir=run_dir,
            config=self.config,
            logger=logger,
            backend=backend,
        )

    def run(self, kind: Kind, backend: str, mode: str) -> RunResult:
        """Look `backend` up in the registry under `kind` and run it (see run_callable)."""
        return self.run_callable(mode, backend, lambda ctx: self.registry.get(kind, backend)(ctx))

    def run_callable(
        self, mode: str, backend: str, fn: Callable[[RunContext], dict[str, Any] | None]
    ) -> RunResult:
        """Run `fn(ctx)` with the kernel's guarantees: run dir, records always written."""
        self._ensure_workdir_layout()
        ctx = self._make_run_context(mode, backend)
        atomic_write_json(ctx.run_dir / "config.json", config_to_dict(self.config))
        log = ctx.logger
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        artifacts: dict[str, Any] = {}
        status, error, error_type, tb = "ok", None, None, None
        log.info(
            f"{mode}.start",
            f"{mode} run {ctx.run_id} ({backend}) started",
            run_dir=str(ctx.run_dir),
        )
        try:
            artifacts = dict(fn(ctx) or {})
        except KeyboardInterrupt:
            status, error, error_type = (
                "interrupted",
                "interrupted by the user (SIGINT)",
                "KeyboardInterrupt",
            )
        except Exception as exc:  # the run fails, the kernel still writes its records
            status, error_type = "failed", type(exc).__name__
            error = scrub(str(exc) or error_type)
            tb = scrub(traceback.format_exc())
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        dry_run = bool(artifacts.get("dry_run", False))
        metrics = {
            "run_id": ctx.run_id,
            "mode": mode,
            "backend": backend,
            "status": status,
            "error": error,
            "error_type": error_type,
            "dry_run": dry_run,
            "started_utc": started.isoformat(),
            "finished_utc": datetime.now(UTC).isoformat(),
            "elapsed_ms": round(elapsed_ms, 3),
            "pid": os.getpid(),
            "metrics": ctx.metrics,
        }
        record = {"run_id": ctx.run_id, "status": status, "dry_run": dry_run, **artifacts}
        atomic_write_json(ctx.run_dir / "metrics.json", _scrub_tree(metrics))
        atomic_write_json(ctx.run_dir / "artifacts.json", _scrub_tree(record))
        if status == "ok":
            log.info(
                f"{mode}.done", f"{mode} run {ctx.run_id} finished in {elapsed_ms / 1000:.1f}s"
            )
        else:
            log.error(
                f"{mode}.{status}",
                f"{mode} run {ctx.run_id} {status}: {error}",
                error_type=error_type,
                traceback=tb,
            )
        log.close()
        return RunResult(ctx, status, backend, elapsed_ms, artifacts, error)

    # the spec's entry points
    def run_train(self, backend: str | None = None) -> RunResult:
        return self.run("trainer", backend or self.config.train.backend, "train")

    def run_autolabel(self, backend: str | None = None) -> RunResult:
        return self.run("autolabeler", backend or self.config.autolabel.backend, "autolabel")

    def run_deploy_edge(self, mode: str | None = None) -> RunResult:
        return self.run("deployer", f"edge_{mode or self.config.deploy.edge.mode}", "deploy-edge")

    def run_deploy_remote(self) -> RunResult:
        return self.run("deployer", "remote", "deploy-remote")


def _scrub_tree(obj: Any) -> Any:
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {k: _scrub_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_scrub_tree(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def record_failed_run(
    workdir: str | Path, run_name: str, mode: str, backend: str, error: BaseException
) -> Path:
    """Write the records of a run that failed before it could start (e.g. a bad config)."""
    run_id, run_dir = make_run_dir(Path(workdir).resolve() / "runs", run_name)
    message = scrub(str(error))
    now = datetime.now(UTC).isoformat()
    metrics = {
        "run_id": run_id,
        "mode": mode,
        "backend": backend,
        "status": "failed",
        "error": message,
        "error_type": type(error).__name__,
        "dry_run": False,
        "started_utc": now,
        "finished_utc": now,
        "elapsed_ms": 0.0,
        "pid": os.getpid(),
        "metrics": {},
    }
    atomic_write_json(run_dir / "metrics.json", metrics)
    atomic_write_json(
        run_dir / "artifacts.json", {"run_id": run_id, "status": "failed", "dry_run": False}
    )
    return run_dir
