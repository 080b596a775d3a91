"""The kernel backend `deployer/remote`: run the app under uvicorn until stopped.

`vision-server serve` runs through the vision-core kernel, so a server start leaves a run
dir (`<workdir>/runs/<name>-<stamp>`: config.json, metrics.json, log.jsonl) like every
other command; the workers append their log lines to the same log.jsonl.

- `workers = 1`: the model is loaded here (a bad model fails before the port is bound)
  and the app runs in this process.
- `workers = N > 1`: the model is checked here, the socket bound once, then uvicorn's
  supervisor starts N worker processes; each calls `create_app_from_env`, which rebuilds
  the config from LAUNCH_ENV (the resolved config; secrets stay in the environment
  variables the config names) and opens its own model session, batcher and outbox slot.
  Their metrics live in `<run dir>/prometheus` (PROMETHEUS_MULTIPROC_DIR, new with each
  run), so a scrape of /metrics, whichever worker answers it, sums every worker.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from vision_core.config import config_to_dict
from vision_core.web.metrics import MULTIPROC_ENV
from vision_server.app import LAUNCH_ENV, create_app, launch_env
from vision_server.errors import ServerConfigError
from vision_server.model import load_model
from vision_server.runtime import check_class_names
from vision_server.settings import ServerSettings

if TYPE_CHECKING:
    from vision_core.kernel import RunContext

__all__ = ["run_remote_deploy"]

GRACEFUL_SHUTDOWN_SEC = 10


@contextlib.contextmanager
def _stop_signals_end_the_run(log: Any) -> Iterator[None]:
    """SIGINT/SIGTERM are how a server is stopped: a graceful stop is a run that went well.

    uvicorn shuts down gracefully on them, then re-raises the signal to the handler that
    was installed before it; these handlers take it quietly (the default ones would raise
    KeyboardInterrupt, or kill the process before the kernel writes its records).
    """
    import signal

    def note(sig: int, _frame: object) -> None:
        log.info("server.signal", f"stopped by {signal.Signals(sig).name}")

    handled = (signal.SIGINT, signal.SIGTERM)
    try:
        saved = {sig: signal.signal(sig, note) for sig in handled}
    except ValueError:  # not the main thread (embedded use): leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def run_remote_deploy(ctx: RunContext) -> dict[str, Any]:
    """Serve until SIGINT/SIGTERM; raises ServerConfigError when it cannot start."""
    try:
        return _serve(ctx)
    finally:
        _collect_tallies(ctx)


def _collect_tallies(ctx: RunContext) -> None:
    """Sum every worker's `server.tally` log line into metrics.json (frames, classes)."""
    from vision_core.logging import read_jsonl
    from vision_server.runtime import sum_tallies

    log = ctx.run_dir / "log.jsonl"  # line-buffered: every worker's lines are in it
    try:
        lines = read_jsonl(log) if log.is_file() else []
    except (OSError, ValueError):
        return
    tallies = [ln["tally"] for ln in lines if ln.get("event") == "server.tally" and "tally" in ln]
    ctx.metrics.update(sum_tallies(tallies))


def _serve(ctx: RunContext) -> dict[str, Any]:
    import uvicorn

    settings = ServerSettings.from_config(ctx.config)
    settings.check()
    remote = settings.remote
    log = ctx.logger
    model = load_model(settings, log)  # fails here, with the path in the message, if unusable
    check_class_names(dict(model.detector.class_names))  # and here if its names are unusable
    url = f"http://{remote.host}:{remote.port}"
    ctx.metrics.update(
        {"url": url, "workers": remote.workers, "model": model.path, "sha256": model.sha256}
    )
    log.info(
        "server.serve",
        f"serving {url}  (POST {url}/api/v1/frame, {url}/health, {url}/metrics, docs "
        f"{url}/schema) with {remote.workers} worker(s); model {model.path} "
        f"({model.batching} batch, {model.provider})",
        url=url,
        workers=remote.workers,
    )
    common: dict[str, Any] = {
        "host": remote.host,
        "port": remote.port,
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SEC,
        "lifespan": "on",
    }
    artifacts: dict[str, Any] = {"url": url, "model_path": model.path, "model_sha256": model.sha256}
    if remote.workers == 1:
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings, log=log, model=model), **common)
        )
        try:
            with _stop_signals_end_the_run(log):
                server.run()
        except SystemExit as exc:  # uvicorn exits when it cannot bind or start
            raise ServerConfigError(_start_failure(url)) from exc
        if not server.started:
            raise ServerConfigError(_start_failure(url))
        return artifacts

    from uvicorn.supervisors import Multiprocess

    del model  # each worker opens its own session
    value = launch_env(config_to_dict(ctx.config), str(ctx.run_dir / "log.jsonl"))
    config = uvicorn.Config(
        "vision_server.app:create_app_from_env", factory=True, workers=remote.workers, **common
    )
    metrics_dir = ctx.run_dir / "prometheus"
    metrics_dir.mkdir(exist_ok=True)
    with _env(LAUNCH_ENV, value), _env(MULTIPROC_ENV, str(metrics_dir)):
        try:
            sock = config.bind_socket()
        except SystemExit as exc:
            raise ServerConfigError(_start_failure(url)) from exc
        try:
            with _stop_signals_end_the_run(log):
                Multiprocess(config, sockets=[sock]).run()
        finally:
            sock.close()
    return artifacts


def _start_failure(url: str) -> str:
    return (
        f"the server could not start on {url} (address in use? see the lines above); "
        "choose another --port or deploy.remote.port"
    )
