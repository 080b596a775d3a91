"""The pipeline config: one typed schema, a section per package, a default for every key.

Every key is documented beside its declaration. `vision_core.config.load_config` turns a
TOML/YAML file plus `--set key.path=value` overrides into a `PipelineConfig`, rejecting
unknown keys and naming the key path of every bad value.

Relative paths are taken relative to the current working directory (as ultralytics does).
Secrets are never written in the config: `*_env` keys hold the NAME of the environment
variable that holds the secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vision_core.config.fields import opt, section

FROZEN = {"frozen": True, "slots": True, "kw_only": True}

# The training backends, spelled once: vision-train registers an object under each name
# (entry points `vision.trainers`) and a test checks that the two lists agree.
TrainBackendName = Literal["yolo", "faster_rcnn"]


@dataclass(**FROZEN)
class RunSection:
    """Run identity and where everything is written."""

    name: str = opt("exp", "run name; run dirs are <workdir>/runs/<name>-<YYYYMMDD-HHMMSS>")
    workdir: str = opt(
        "work-dir", "root of runs/, logs/, outbox/ and generated data", path_like=True
    )
    log_level: Literal["DEBUG", "INFO", "WARN", "ERROR"] = opt(
        "INFO", "minimum level written to the JSONL log"
    )
    seed: int = opt(0, "random seed for data generation and training", ge=0)


@dataclass(**FROZEN)
class DataSection:
    """Where datasets live."""

    yolo_dataset_dir: str = opt(
        "work-dir/data/synth", "YOLO dataset dir holding dataset.yaml", path_like=True
    )
    unlabeled_dir: str = opt(
        "work-dir/data/unlabeled", "images to autolabel (searched recursively)", path_like=True
    )
    labeled_dir: str = opt(
        "work-dir/data/labeled", "where autolabel writes YOLO labels", path_like=True
    )


@dataclass(**FROZEN)
class SynthSection:
    """The synthetic shapes dataset (no dataset can be downloaded here)."""

    train_images: int = opt(120, "images in the train split", ge=1)
    val_images: int = opt(40, "images in the val split", ge=1)
    imgsz: int = opt(320, "square image size in pixels", ge=32, le=4096)
    max_objects: int = opt(4, "most shapes per image", ge=1, le=50)


@dataclass(**FROZEN)
class YoloTrainSection:
    """ultralytics YOLO backend."""

    weights: str = opt(
        "yolo11n.yaml",
        "a model YAML (train from scratch) or a local .pt checkpoint (a fine-tune)",
    )
    imgsz: int = opt(640, "training and export image size (multiple of 32)", ge=32, le=4096)
    batch: int = opt(16, "batch size", ge=1)
    workers: int = opt(2, "dataloader workers", ge=0)
    patience: int = opt(50, "early-stopping patience in epochs", ge=0)
    mosaic: float = opt(
        1.0, "mosaic augmentation probability (0 = off, better on small images)", ge=0, le=1
    )
    lr0: float = opt(0.01, "initial learning rate (from a model YAML)", gt=0)
    optimizer: str = opt(
        "auto", "ultralytics optimizer name (auto, SGD, AdamW, ...) (from a model YAML)"
    )
    finetune_optimizer: str = opt("SGD", "optimizer when weights is a .pt checkpoint")
    finetune_lr0: float = opt(0.003, "initial learning rate when weights is a .pt", gt=0)
    finetune_warmup_epochs: float = opt(0.0, "warmup epochs when weights is a .pt (0 = none)", ge=0)


@dataclass(**FROZEN)
class FasterRCNNTrainSection:
    """torchvision Faster R-CNN backend."""

    variant: Literal["mobilenet_v3", "resnet50_fpn", "resnet50_fpn_v2", "resnet18_fpn"] = opt(
        "mobilenet_v3", "backbone variant"
    )
    weights: str = opt(
        "", "local checkpoint (state dict) to start from; empty = from scratch", path_like=True
    )
    imgsz: int = opt(320, "min/max side the model resizes to", ge=32, le=4096)
    batch: int = opt(4, "batch size", ge=1)
    lr: float = opt(0.01, "SGD learning rate", gt=0)
    momentum: float = opt(0.9, "SGD momentum", ge=0, lt=1)
    weight_decay: float = opt(0.0005, "SGD weight decay (L2)", ge=0)
    num_workers: int = opt(0, "DataLoader workers", ge=0)
    max_samples: int = opt(0, "cap on training images (0 = all)", ge=0)


@dataclass(**FROZEN)
class TrainSection:
    """vision-train."""

    backend: TrainBackendName = opt("yolo", "training backend")
    epochs: int = opt(50, "training epochs", ge=1)
    device: str = opt("cpu", "cpu, 0, 0,1 (multi-GPU) or cuda:0")
    dry_run: bool = opt(False, "validate everything, write artifacts marked dry_run, do not train")
    threads: int = opt(
        0, "CPU threads for training (0 = the backend's choice, recorded in metrics.json)", ge=0
    )
    keep_start_if_worse: bool = opt(
        True, "fine-tune: export the starting weights when training ends below them (mAP50)"
    )
    on_class_mismatch: Literal["error", "use_dataset"] = opt(
        "error", "checkpoint names differ from the dataset's: error, or train on the dataset's"
    )
    yolo: YoloTrainSection = section(YoloTrainSection)
    faster_rcnn: FasterRCNNTrainSection = section(FasterRCNNTrainSection)


@dataclass(**FROZEN)
class ExportSection:
    """ONNX export and INT8 quantization."""

    opset: int = opt(17, "ONNX opset", ge=11, le=23)
    dynamic: bool = opt(False, "YOLO: dynamic input height/width (rectangular inference)")
    quantize: bool = opt(True, "also write model-int8.onnx")
    quantize_mode: Literal["static", "dynamic"] = opt(
        "static", "static = QDQ calibrated (fast on CPU); dynamic"
    )
    calib_samples: int = opt(64, "training images used to calibrate static INT8", ge=1)
    max_map_drop: float = opt(0.02, "largest mAP50 loss accepted for INT8", ge=0, le=1)
    on_regression: Literal["warn", "fallback", "fail"] = opt(
        "warn",
        "INT8 slower or less accurate than allowed: warn, fallback (ship FP32 as int8), fail",
    )


@dataclass(**FROZEN)
class InferSection:
    """ONNX Runtime inference, shared by autolabel, edge and server."""

    model_path: str = opt(
        "",
        "ONNX model; empty: vision-edge takes the newest <workdir>/runs/*/model.onnx, "
        "vision-server and vision-label refuse to start (they need it named)",
        path_like=True,
    )
    conf: float = opt(0.25, "confidence threshold", ge=0, le=1)
    iou: float = opt(0.7, "NMS IoU threshold", gt=0, le=1)
    max_det: int = opt(300, "most detections per image", ge=1)
    agnostic_nms: bool = opt(False, "class-agnostic NMS")
    provider: Literal["cpu", "cuda"] = opt("cpu", "ONNX Runtime execution provider")
    threads: int = opt(0, "intra-op threads (0 = ONNX Runtime default)", ge=0)


@dataclass(**FROZEN)
class LLMSection:
    """OpenAI-compatible vision LLM."""

    base_url: str = opt(
        "https://api.openai.com/v1", "OpenAI-compatible endpoint (OpenAI, vLLM, Ollama)"
    )
    model: str = opt("gpt-4o-mini", "model name")
    api_key_env: str = opt(
        "OPENAI_API_KEY", "environment variable holding the API key", env_name=True
    )
    timeout_sec: float = opt(60.0, "per-request timeout", gt=0)
    max_retries: int = opt(5, "retries on 429/5xx/timeouts", ge=0)
    retry_backoff_sec: float = opt(1.0, "first backoff; doubles each retry, plus jitter", ge=0)
    qps_limit: float = opt(2.0, "requests per second, shared by all workers", gt=0)
    concurrency: int = opt(4, "parallel requests", ge=1)
    max_tokens: int = opt(1024, "answer token cap", ge=1)
    structured_output: bool = opt(True, "ask for JSON via response_format (falls back to text)")
    prompt_extra: str = opt("", "extra instructions appended to the prompt")
    cache: bool = opt(True, "cache answers by (image hash, model, prompt)")


@dataclass(**FROZEN)
class AutolabelSection:
    """vision-label."""

    backend: Literal["model", "llm"] = opt("model", "label with the ONNX model or the vision LLM")
    on_conflict: Literal["skip", "overwrite", "merge"] = opt(
        "skip", "when a label file already exists"
    )
    iou: float = opt(0.7, "NMS IoU threshold of the model backend", gt=0, le=1)
    conf: float = opt(0.25, "confidence threshold of the model backend", ge=0, le=1)
    merge_iou: float = opt(
        0.5, "merge: new box added only if IoU with every same-class box is below", gt=0, le=1
    )
    visualize: bool = opt(False, "save annotated previews beside the labels")
    workers: int = opt(2, "decode threads", ge=1)
    model_path: str = opt(
        "", "ONNX model of the model backend; empty = infer.model_path", path_like=True
    )
    llm: LLMSection = section(LLMSection)


@dataclass(**FROZEN)
class EdgeSection:
    """vision-edge: the device runtime."""

    mode: Literal["local", "stream", "llm"] = opt("local", "where inference happens")
    source: Literal["camera", "video", "images"] = opt("images", "frame source")
    camera: str = opt("0", "camera device index or an RTSP/HTTP URL")
    video_path: str = opt("", "video file (source = video)", path_like=True)
    images_dir: str = opt("", "image folder (source = images)", path_like=True)
    fps_limit: float = opt(0.0, "max frames per second (0 = unlimited)", ge=0)
    max_frames: int = opt(0, "stop after this many frames (0 = until the source ends)", ge=0)
    device_id: str = opt("edge-01", "source id recorded in every stats event")
    stream_endpoint: str = opt(
        "http://127.0.0.1:8000/api/v1/frame", "vision-server frame URL (stream mode)"
    )
    stream_api_key_env: str = opt(
        "VISION_INGEST_API_KEY", "env var with the server's API key", env_name=True
    )
    jpeg_quality: int = opt(85, "JPEG quality of streamed frames", ge=1, le=100)
    timeout_sec: float = opt(5.0, "HTTP timeout for frames", gt=0)
    on_stream_failure: Literal["local", "skip"] = opt(
        "skip", "server down or 5xx: run locally or drop the frame"
    )
    save_annotated: bool = opt(False, "write annotated frames to the run's outputs/")
    annotate_every: int = opt(10, "save every Nth annotated frame", ge=1)
    reconnect_max_backoff_sec: float = opt(30.0, "cap of the camera reopen backoff", gt=0)
    flush_timeout_sec: float = opt(10.0, "on shutdown, time to flush the stats outbox", ge=0)
    runners: int = opt(
        1,
        "local mode: frames in the model at once, each run on cores/runners threads "
        "(2 raises fps on small CPUs, at some latency per frame)",
        ge=1,
        le=16,
    )


@dataclass(**FROZEN)
class RemoteSection:
    """vision-server: the frame inference server."""

    host: str = opt("127.0.0.1", "listen address")
    port: int = opt(8000, "listen port", ge=0, le=65535)
    workers: int = opt(1, "uvicorn worker processes, each with its own model session", ge=1)
    ingest_api_key_env: str = opt(
        "VISION_INGEST_API_KEY", "env var with the X-API-Key clients must send", env_name=True
    )
    allow_anonymous: bool = opt(False, "accept requests without a key when the key is empty")
    max_body_mb: float = opt(16.0, "largest request body (413 above)", gt=0)
    max_image_pixels: int = opt(40_000_000, "largest decoded image (width*height)", ge=1)
    max_batch: int = opt(8, "most frames in one ONNX Runtime call", ge=1)
    max_wait_ms: float = opt(5.0, "longest a frame waits for a batch to fill", ge=0)
    queue_size: int = opt(64, "frames waiting before 503", ge=1)
    rate_limit_per_sec: float = opt(0.0, "per-client requests per second (0 = off)", ge=0)
    record_stats: bool = opt(
        True, "server records one StatsEvent per frame (edge in stream mode does not)"
    )
    stats_flush_sec: float = opt(
        5.0, "on shutdown, time to flush the stats outbox (the rest stays on disk)", ge=0
    )
    runners: int = opt(
        0,
        "model runs in flight at once, each on its own thread (Triton's instance count); "
        "0 = auto: min(4, CPU cores) on CPU, 2 on CUDA",
        ge=0,
        le=64,
    )


@dataclass(**FROZEN)
class StatsSink:
    """Where an edge or server sends its StatsEvents (through the durable outbox)."""

    endpoint: str = opt(
        "http://127.0.0.1:8100/api/v1/stats/events", "stats ingest URL; empty = keep locally"
    )
    api_key_env: str = opt("VISION_STATS_API_KEY", "env var with the stats API key", env_name=True)
    outbox_max_events: int = opt(100_000, "outbox cap", ge=1)
    outbox_policy: Literal["drop_oldest", "drop_newest"] = opt(
        "drop_oldest", "what goes when the outbox is full"
    )
    batch_size: int = opt(100, "events per POST", ge=1, le=10_000)
    max_backoff_sec: float = opt(30.0, "cap of the resend backoff", gt=0)


@dataclass(**FROZEN)
class DeploySection:
    """vision-edge and vision-server."""

    edge: EdgeSection = section(EdgeSection)
    remote: RemoteSection = section(RemoteSection)
    stats: StatsSink = section(StatsSink)


@dataclass(**FROZEN)
class StatsSection:
    """vision-stats: the statistics service."""

    db: str = opt("work-dir/stats.db", "SQLite file path or postgresql:// DSN", dsn=True)
    host: str = opt("127.0.0.1", "listen address")
    port: int = opt(8100, "listen port", ge=0, le=65535)
    api_key_env: str = opt(
        "VISION_STATS_API_KEY", "env var with the ingest X-API-Key", env_name=True
    )
    allow_anonymous: bool = opt(False, "accept events without a key when the key is empty")
    max_body_mb: float = opt(8.0, "largest ingest body (413 above)", gt=0)
    retention_days: int = opt(0, "delete events older than this at start (0 = keep)", ge=0)
    refresh_sec: float = opt(5.0, "dashboard refresh period", gt=0)


@dataclass(**FROZEN)
class PipelineConfig:
    """The whole pipeline file."""

    run: RunSection = section(RunSection)
    data: DataSection = section(DataSection)
    synth: SynthSection = section(SynthSection)
    class_map: dict[int, str] = opt(
        {}, "class id -> name; empty = from the model metadata / dataset.yaml"
    )
    train: TrainSection = section(TrainSection)
    export: ExportSection = section(ExportSection)
    infer: InferSection = section(InferSection)
    autolabel: AutolabelSection = section(AutolabelSection)
    deploy: DeploySection = section(DeploySection)
    stats: StatsSection = section(StatsSection)
