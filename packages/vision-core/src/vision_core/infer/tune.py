"""`infer.runtime = auto` / `infer.precision = auto`: measure, check, pick, remember.

For each candidate runtime x precision installed here (`candidates`), `tune`:
1. times the end-to-end prediction (prepare + model + NMS, one frame at a time) for
   `infer.tune_seconds`, in two interleaved rounds so a load spike hurts every candidate;
2. checks its detections against FP32 (ONNX Runtime's when installed): on the sample frames
   at least `infer.tune_min_agreement` of the detections must match one-to-one at
   IoU >= 0.9 with the same class (`agreement`), or, with `infer.tune_val_dataset`, mAP50 on
   its val split must stay within `infer.tune_max_map_drop` of FP32's;
3. picks the fastest candidate that passes (FP32 always does);
4. caches the choice and the table in `infer.tune_cache` (JSON, written atomically) under a
   key made of the model's hash (and its INT8 files'), the CPU model and ISA flags, the
   runtime versions, the threads and the settings of the check: a restart on the same
   device with the same model reads the choice and measures nothing.

A single candidate (a device without OpenVINO asked for `auto` at fp32) is taken at once,
with nothing measured or cached.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vision_core.errors import ConfigError, MediaError
from vision_core.formats.yolo import label_path_for
from vision_core.geometry import box_iou
from vision_core.infer.runtimes import (
    available_runtimes,
    cpu_description,
    file_sha256,
    int8_model_for,
    require_runtime,
    runtime_precisions,
    runtime_versions,
)
from vision_core.types import Detection

if TYPE_CHECKING:
    from vision_core.config import InferSection, PipelineConfig
    from vision_core.infer.base import Detector
    from vision_core.logging import StructuredLogger

__all__ = [
    "Candidate",
    "Measured",
    "TuneOptions",
    "TuneResult",
    "agreement",
    "candidates",
    "sample_frames",
    "tune",
    "tune_from_config",
]

log = logging.getLogger(__name__)

MATCH_IOU = 0.9
CACHE_VERSION = 1


class _Labelled:
    """A runtime and precision, labelled "runtime/precision"."""

    __slots__ = ()
    runtime: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.runtime}/{self.precision}"


@dataclass(frozen=True, slots=True, order=True)
class Candidate(_Labelled):
    runtime: str
    precision: str


@dataclass(slots=True)
class Measured(_Labelled):
    """One row of the table: what a candidate did."""

    runtime: str
    precision: str
    model: str = ""  # the file it ran
    fps: float | None = None
    p50_ms: float | None = None
    agreement: float | None = None  # matched share of detections vs FP32 (sample frames)
    map50: float | None = None  # with a val set
    passed: bool = False
    note: str = ""  # why it failed or was skipped


@dataclass(slots=True)
class TuneResult:
    runtime: str
    precision: str
    table: list[Measured]
    from_cache: bool = False
    key: str = ""
    measured_at: float = field(default_factory=time.time)

    def format_table(self) -> str:
        """The measured table, one line per candidate, the choice marked with '*'."""
        head = f"  {'runtime/precision':<22} {'fps':>8} {'p50 ms':>8} {'agree':>6} {'mAP50':>6}"
        lines = [head + "  result"]
        for m in self.table:
            chosen = m.runtime == self.runtime and m.precision == self.precision
            fps = f"{m.fps:8.1f}" if m.fps is not None else f"{'-':>8}"
            p50 = f"{m.p50_ms:8.2f}" if m.p50_ms is not None else f"{'-':>8}"
            agree = f"{m.agreement:6.3f}" if m.agreement is not None else f"{'-':>6}"
            map50 = f"{m.map50:6.3f}" if m.map50 is not None else f"{'-':>6}"
            verdict = "pass" if m.passed else "fail"
            if m.note:
                verdict += f" ({m.note})"
            lines.append(
                f"{'*' if chosen else ' '} {m.label:<22} {fps} {p50} {agree} {map50}  {verdict}"
            )
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class TuneOptions:
    """How `tune` measures and checks (from `infer.tune_*`)."""

    seconds: float = 2.0  # timed per candidate (split in two rounds)
    frames: int = 16  # sample frames for the agreement check
    min_agreement: float = 0.95
    val_dataset: Path | None = None
    max_map_drop: float = 0.01
    cache: Path | None = None  # None: nothing cached
    rounds: int = 2

    @classmethod
    def from_infer(cls, inf: InferSection, workdir: str | os.PathLike[str]) -> TuneOptions:
        return cls(
            seconds=inf.tune_seconds,
            frames=inf.tune_frames,
            min_agreement=inf.tune_min_agreement,
            val_dataset=Path(inf.tune_val_dataset) if inf.tune_val_dataset else None,
            max_map_drop=inf.tune_max_map_drop,
            cache=Path(inf.tune_cache) if inf.tune_cache else Path(workdir) / "tune-cache.json",
        )


# -- candidates ----------------------------------------------------------------------------


def candidates(
    model_path: str | os.PathLike[str],
    runtime: str = "auto",
    precision: str = "auto",
    provider: str = "cpu",
) -> list[Candidate]:
    """The runtime x precision pairs to try for `model_path` on this machine.

    An explicit runtime must be installed (MissingDependencyError naming the extra). int8
    needs an INT8 model beside the FP32 one; bf16/fp16 a CPU that has them.
    """
    if runtime == "auto":
        runtimes = [r for r in available_runtimes() if provider == "cpu" or r == "onnxruntime"]
    else:
        require_runtime(runtime)
        runtimes = [runtime]
    out: list[Candidate] = []
    for rt in runtimes:
        offered = runtime_precisions(rt, provider)
        wanted = offered if precision == "auto" else [p for p in offered if p == precision]
        for prec in wanted:
            if prec == "int8" and int8_model_for(model_path, rt) is None:
                continue
            out.append(Candidate(rt, prec))
    if not out:
        raise ConfigError(
            f"infer.runtime = {runtime!r}, infer.precision = {precision!r}: nothing to run "
            f"{model_path} with here (installed runtimes: {', '.join(available_runtimes())}; "
            "int8 needs <stem>-int8.onnx beside the model)"
        )
    return out


# -- the check --------------------------------------------------------------------------------


def agreement(
    reference: Sequence[Sequence[Detection]], other: Sequence[Sequence[Detection]]
) -> float:
    """Share of detections matched one-to-one (same class, IoU >= 0.9), over all frames.

    Matched pairs / max(reference count, other count) summed over frames, so missing and
    extra detections both count against; 1.0 when neither has any.
    """
    matched = total = 0
    for ref, got in zip(reference, other, strict=True):
        total += max(len(ref), len(got))
        if not ref or not got:
            continue
        iou = box_iou([d.xyxy for d in ref], [d.xyxy for d in got])
        same = np.array([[r.class_id == g.class_id for g in got] for r in ref])
        iou = np.where(same & (iou >= MATCH_IOU), iou, 0.0)
        # greedy by IoU: at IoU >= 0.9 two boxes cannot both match one box well
        used_ref: set[int] = set()
        used_got: set[int] = set()
        for flat in np.argsort(-iou, axis=None, kind="stable"):
            i, j = divmod(int(flat), iou.shape[1])
            if iou[i, j] <= 0:
                break
            if i in used_ref or j in used_got:
                continue
            used_ref.add(i)
            used_got.add(j)
        matched += len(used_ref)
    return 1.0 if total == 0 else matched / total


def _val_images(dataset: Path) -> list[tuple[Path, Path]]:
    """(image, label file) pairs of a YOLO dataset's val split."""
    import yaml

    from vision_core.media import list_images

    yaml_path = dataset / "dataset.yaml" if dataset.is_dir() else dataset
    if not yaml_path.is_file():
        raise ConfigError(f"infer.tune_val_dataset: no dataset.yaml in {dataset}")
    data = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    root = yaml_path.parent / str(data.get("path", "") or "")
    val = root / str(data.get("val", "images/val"))
    pairs = []
    for img in list_images(val):
        pairs.append((img, label_path_for(img)))
    if not pairs:
        raise ConfigError(f"infer.tune_val_dataset: no val images under {val}")
    return pairs


def _map50(
    detector: Detector, pairs: Sequence[tuple[Path, Path]], names: Mapping[int, str]
) -> float:
    from vision_core.formats.yolo import boxes_to_arrays, read_label_file
    from vision_core.media import read_image
    from vision_core.metrics import MetricAccumulator, detections_to_arrays

    acc = MetricAccumulator(dict(names))
    for img_path, label in pairs:
        img = read_image(img_path)
        h, w = img.shape[:2]
        boxes, scores, cls = detections_to_arrays(detector.predict(img))
        true_boxes, _, true_cls = boxes_to_arrays(read_label_file(label), w, h)
        acc.add(boxes, scores, cls, true_boxes, true_cls)
    return float(acc.compute().map50)


# -- sample frames -----------------------------------------------------------------------------


def _video_frames(path: Path, n: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        while len(frames) < n:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    if not frames:
        raise MediaError(f"no frame could be read from {path}")
    return frames


def sample_frames(cfg: PipelineConfig, n: int | None = None) -> list[np.ndarray]:
    """Frames to tune on: infer.tune_images, else the val split of data.yolo_dataset_dir,
    else deploy.edge's images_dir or video_path, else synthetic scenes (with a warning)."""
    from vision_core.media import list_images, read_image

    n = n or cfg.infer.tune_frames
    if cfg.infer.tune_images:
        folder = Path(cfg.infer.tune_images)
        if not folder.is_dir():
            raise ConfigError(f"infer.tune_images: folder not found: {folder}")
        paths = list_images(folder)
        if not paths:
            raise ConfigError(f"infer.tune_images: no images in {folder}")
        return [read_image(p) for p in _spread(paths, n)]
    dataset_val = Path(cfg.data.yolo_dataset_dir) / "images" / "val"
    if dataset_val.is_dir() and (paths := list_images(dataset_val)):
        return [read_image(p) for p in _spread(paths, n)]
    edge = cfg.deploy.edge
    if (
        edge.images_dir
        and Path(edge.images_dir).is_dir()
        and (paths := list_images(edge.images_dir))
    ):
        return [read_image(p) for p in _spread(paths, n)]
    if edge.video_path and Path(edge.video_path).is_file():
        return _video_frames(Path(edge.video_path), n)
    log.warning(
        "tuning on synthetic frames (set infer.tune_images to a folder of real frames: a "
        "model that detects nothing on them cannot show a precision's loss)"
    )
    from vision_core.synth import render_scene

    rng = np.random.default_rng(0)
    return [np.asarray(render_scene(rng, 640, 480, 4)[0]) for _ in range(n)]


def _spread(items: Sequence[Path], n: int) -> list[Path]:
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


# -- the cache ---------------------------------------------------------------------------------


def cache_key(
    model_path: Path,
    cands: Sequence[Candidate],
    *,
    threads: int,
    streams: int,
    settings: Mapping[str, Any],
    options: TuneOptions,
) -> str:
    """What the choice depends on, as one hash."""
    import hashlib

    cpu, flags = cpu_description()
    files = {str(model_path.name): file_sha256(model_path)}
    for c in cands:
        if c.precision == "int8":
            m = int8_model_for(model_path, c.runtime)
            if m is not None:
                files[m.name] = file_sha256(m)
                if m.suffix == ".xml":
                    files[m.with_suffix(".bin").name] = file_sha256(m.with_suffix(".bin"))
    raw = {
        "v": CACHE_VERSION,
        "files": files,
        "cpu": cpu,
        "flags": flags,
        "cores": os.cpu_count(),
        "versions": runtime_versions(),
        "candidates": [c.label for c in cands],
        "threads": threads,
        "streams": streams,
        "settings": dict(settings),
        "check": {
            "min_agreement": options.min_agreement,
            "val": str(options.val_dataset) if options.val_dataset else "",
            "max_map_drop": options.max_map_drop,
        },
    }
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable tune cache %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, key: str, result: TuneResult) -> None:
    data = _read_cache(path)
    data[key] = {
        "runtime": result.runtime,
        "precision": result.precision,
        "measured_at": result.measured_at,
        "table": [asdict(m) for m in result.table],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _from_cache(entry: Any, key: str) -> TuneResult | None:
    try:
        table = [Measured(**row) for row in entry["table"]]
        return TuneResult(
            entry["runtime"],
            entry["precision"],
            table,
            from_cache=True,
            key=key,
            measured_at=float(entry.get("measured_at", 0.0)),
        )
    except (KeyError, TypeError, ValueError):
        return None


# -- tune -----------------------------------------------------------------------------------


def _time_rounds(
    detectors: Mapping[Candidate, Detector],
    frames: Sequence[np.ndarray],
    seconds: float,
    rounds: int,
) -> dict[Candidate, list[float]]:
    """Per-frame seconds of each detector, `seconds` each, interleaved in `rounds`."""
    times: dict[Candidate, list[float]] = {c: [] for c in detectors}
    order = list(detectors)
    for r in range(rounds):
        for c in order[r % len(order) :] + order[: r % len(order)]:
            det = detectors[c]
            budget = seconds / rounds
            start = time.perf_counter()
            i = 0
            while True:
                t0 = time.perf_counter()
                det.predict(frames[i % len(frames)])
                now = time.perf_counter()
                times[c].append(now - t0)
                i += 1
                if now - start >= budget and i >= 2:
                    break
    return times


def tune(
    model_path: str | os.PathLike[str],
    frames: Sequence[np.ndarray] | Callable[[], Sequence[np.ndarray]],
    *,
    runtime: str = "auto",
    precision: str = "auto",
    provider: str = "cpu",
    threads: int = 0,
    streams: int = 1,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    agnostic: bool = False,
    class_map: Mapping[int, str] | None = None,
    options: TuneOptions | None = None,
    logger: StructuredLogger | None = None,
    force: bool = False,
) -> TuneResult:
    """Pick the fastest runtime x precision whose detections pass (see the module docstring).

    `frames`: BGR sample frames (the agreement check and the timing), or a function that
    reads them (called only when something is measured). force: measure even when the
    cache holds a choice. The choice is logged with its table.
    """
    from vision_core.infer.factory import load_detector

    options = options or TuneOptions()
    path = Path(model_path)
    cands = candidates(path, runtime, precision, provider)
    if len(cands) == 1:
        only = cands[0]
        return TuneResult(
            only.runtime,
            only.precision,
            [Measured(only.runtime, only.precision, passed=True, note="only candidate")],
        )
    settings = {"conf": conf, "iou": iou, "max_det": max_det, "agnostic": agnostic}
    key = ""
    if options.cache is not None:
        key = cache_key(
            path, cands, threads=threads, streams=streams, settings=settings, options=options
        )
        if not force:
            cached = _from_cache(_read_cache(options.cache).get(key), key)
            if cached is not None:
                _log(
                    logger,
                    "infer.tune_cached",
                    f"runtime {cached.runtime}/{cached.precision} "
                    f"(measured before on this device, cached in {options.cache})\n"
                    + cached.format_table(),
                    cached,
                )
                return cached
    if callable(frames):
        frames = frames()
    if not frames:
        raise ConfigError("infer.runtime = auto: no sample frames to tune on")
    common = dict(
        conf=conf, iou=iou, max_det=max_det, agnostic=agnostic, class_map=class_map,
        provider=provider, threads=threads, streams=streams, logger=logger,
    )  # fmt: skip
    ref_cand = Candidate(
        "onnxruntime" if "onnxruntime" in available_runtimes() else cands[0].runtime, "fp32"
    )
    rows: dict[Candidate, Measured] = {}
    detectors: dict[Candidate, Detector] = {}
    for c in cands:
        row = rows[c] = Measured(c.runtime, c.precision)
        try:
            det = load_detector(path, runtime=c.runtime, precision=c.precision, **common)  # type: ignore[arg-type]
        except Exception as exc:  # a runtime that cannot run this graph is a row, not a crash
            row.note = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            continue
        row.model = getattr(det, "model_path", str(path))
        detectors[c] = det
    reference = detectors.get(ref_cand) or load_detector(path, runtime=ref_cand.runtime, **common)  # type: ignore[arg-type]
    ref_dets = [reference.predict(f) for f in frames]
    ref_map = None
    pairs: list[tuple[Path, Path]] = []
    if options.val_dataset is not None:
        pairs = _val_images(options.val_dataset)
        ref_map = _map50(reference, pairs, reference.class_names)
    for c, det in list(detectors.items()):
        row = rows[c]
        try:
            dets = [det.predict(f) for f in frames]  # also the warm-up
            row.agreement = agreement(ref_dets, dets)
            if ref_map is not None:
                row.map50 = _map50(det, pairs, reference.class_names)
                row.passed = row.map50 >= ref_map - options.max_map_drop
                if not row.passed:
                    row.note = f"mAP50 {row.map50 - ref_map:+.3f} vs fp32"
            else:
                row.passed = row.agreement >= options.min_agreement
                if not row.passed:
                    row.note = f"agreement below {options.min_agreement}"
        except Exception as exc:
            row.note = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            del detectors[c]
    if c_ref := next((c for c in detectors if c == ref_cand), None):
        rows[c_ref].passed, rows[c_ref].note = True, ""  # the reference is its own truth
    times = _time_rounds(detectors, frames, options.seconds, options.rounds)
    for c, ts in times.items():
        rows[c].fps = len(ts) / sum(ts)
        rows[c].p50_ms = statistics.median(ts) * 1000.0
    passed = [rows[c] for c in detectors if rows[c].passed and rows[c].fps]
    if not passed:
        raise ConfigError(
            f"infer.runtime = auto: no candidate could run {path}:\n"
            + TuneResult("-", "-", list(rows.values())).format_table()
        )
    best = max(passed, key=lambda m: m.fps or 0.0)
    result = TuneResult(best.runtime, best.precision, [rows[c] for c in cands], key=key)
    if options.cache is not None:
        _write_cache(options.cache, key, result)
    _log(
        logger,
        "infer.tuned",
        f"runtime {best.label} chosen for {path.name} "
        f"({cpu_description()[0]}):\n" + result.format_table(),
        result,
    )
    return result


def _log(logger: StructuredLogger | None, event: str, message: str, result: TuneResult) -> None:
    if logger is not None:
        logger.info(event, message, runtime=result.runtime, precision=result.precision,
                    table=[asdict(m) for m in result.table])  # fmt: skip
    else:
        log.info(message)


def tune_from_config(
    cfg: PipelineConfig,
    model_path: str | os.PathLike[str],
    *,
    threads: int | None = None,
    streams: int = 1,
    frames: Sequence[np.ndarray] | None = None,
    logger: StructuredLogger | None = None,
    force: bool = False,
) -> TuneResult:
    """`tune` with the settings of `cfg.infer` (frames: `sample_frames(cfg)` unless given)."""
    inf = cfg.infer
    return tune(
        model_path,
        frames if frames is not None else (lambda: sample_frames(cfg)),
        runtime=inf.runtime,
        precision=inf.precision,
        provider=inf.provider,
        threads=inf.threads if threads is None else threads,
        streams=streams,
        conf=inf.conf,
        iou=inf.iou,
        max_det=inf.max_det,
        agnostic=inf.agnostic_nms,
        class_map=dict(cfg.class_map) or None,
        options=TuneOptions.from_infer(inf, cfg.run.workdir),
        logger=logger,
        force=force,
    )
