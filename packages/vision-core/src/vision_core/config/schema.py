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

# Renamed keys: the old path is still accepted until the next minor version (0.3), with a
# warning naming the new key. Several old keys may map to one new key (they meant one thing).
RENAMED_KEYS: dict[str, str] = {
    "deploy.edge.flush_timeout_sec": "deploy.stats.flush_timeout_sec",
    "deploy.remote.stats_flush_sec": "deploy.stats.flush_timeout_sec",
    "deploy.edge.stream_api_key_env": "deploy.remote.api_key_env",
    "deploy.remote.ingest_api_key_env": "deploy.remote.api_key_env",
    "deploy.stats.api_key_env": "stats.api_key_env",
    "autolabel.conf": "infer.conf",
    "autolabel.iou": "infer.iou",
    "autolabel.model_path": "infer.model_path",
    "train.faster_rcnn.num_workers": "train.faster_rcnn.workers",
    "deploy.edge.fps_limit": "deploy.edge.max_frames_per_sec",
    "autolabel.llm.qps_limit": "autolabel.llm.max_requests_per_sec",
}

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
    workers: int = opt(0, "DataLoader workers", ge=0)
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
    openvino_int8: bool = opt(
        False,
        "YOLO: also write model-int8.xml, an OpenVINO IR INT8 (NNCF, same gate as above; "
        "needs vision-train[openvino])",
    )


@dataclass(**FROZEN)
class InferSection:
    """Model inference (ONNX Runtime or OpenVINO), shared by autolabel, edge, server, eval."""

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
    runtime: Literal["auto", "onnxruntime", "openvino"] = opt(
        "onnxruntime",
        "what runs the model; openvino needs the openvino extra; auto = the fastest installed "
        "one whose detections pass the check (measured once per model and device, cached)",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = opt(
        "fp32",
        "fp32 = the model as given; bf16/fp16 = OpenVINO on CPUs that have them; int8 = the "
        "<stem>-int8.onnx/.xml beside the model; auto = tuned like runtime",
    )
    tune_seconds: float = opt(
        2.0, "auto: seconds each runtime x precision candidate is timed", gt=0, le=600
    )
    tune_frames: int = opt(16, "auto: sample frames compared with fp32", ge=1, le=1000)
    tune_images: str = opt(
        "",
        "auto: folder of sample images; empty = the val split of data.yolo_dataset_dir, "
        "else the edge's images/video, else synthetic frames",
        path_like=True,
    )
    tune_min_agreement: float = opt(
        0.95,
        "auto: share of fp32 detections a candidate must match one-to-one (IoU >= 0.9, same class)",
        ge=0,
        le=1,
    )
    tune_val_dataset: str = opt(
        "",
        "auto: a YOLO dataset dir; when set, a candidate must instead keep mAP50 on its val "
        "split within tune_max_map_drop of fp32",
        path_like=True,
    )
    tune_max_map_drop: float = opt(
        0.01, "auto: largest mAP50 loss accepted (with tune_val_dataset)", ge=0, le=1
    )
    tune_cache: str = opt(
        "",
        "auto: JSON file of measured choices (key: model hash, CPU, runtime versions); "
        "empty = <workdir>/tune-cache.json",
        path_like=True,
    )


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
    max_requests_per_sec: float = opt(2.0, "requests per second, shared by all workers", gt=0)
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
    merge_iou: float = opt(
        0.5, "merge: new box added only if IoU with every same-class box is below", gt=0, le=1
    )
    visualize: bool = opt(False, "save annotated previews beside the labels")
    workers: int = opt(2, "decode threads (the model backend's thresholds are infer.*)", ge=1)
    llm: LLMSection = section(LLMSection)


@dataclass(**FROZEN)
class EdgeSection:
    """vision-edge: the device runtime."""

    mode: Literal["local", "stream", "llm"] = opt("local", "where inference happens")
    source: Literal["camera", "video", "images"] = opt("images", "frame source")
    camera: str = opt("0", "camera device index or an RTSP/HTTP URL (no password in it: see next)")
    camera_credentials_env: str = opt(
        "",
        "env var holding user:password for a camera URL (empty = none); kept out of every "
        "file and log",
        env_name=True,
    )
    video_path: str = opt("", "video file (source = video)", path_like=True)
    images_dir: str = opt("", "image folder (source = images)", path_like=True)
    max_frames_per_sec: float = opt(0.0, "frames taken per second at most (0 = unlimited)", ge=0)
    max_frames: int = opt(0, "stop after this many frames (0 = until the source ends)", ge=0)
    device_id: str = opt("edge-01", "source id recorded in every stats event")
    stream_endpoint: str = opt(
        "http://127.0.0.1:8000/api/v1/frame", "vision-server frame URL (stream mode)"
    )
    jpeg_quality: int = opt(85, "JPEG quality of streamed frames", ge=1, le=100)
    timeout_sec: float = opt(5.0, "HTTP timeout for frames", gt=0)
    on_stream_failure: Literal["local", "skip"] = opt(
        "skip", "server down or 5xx: run locally or drop the frame"
    )
    events: Literal["frames", "summaries", "both"] = opt(
        "frames",
        "stats the edge sends: one StatsEvent per frame, one summary per track.summary_sec "
        "(what a fleet of thousands sends), or both; crossings and zone events go with any",
    )
    save_annotated: bool = opt(False, "write annotated frames to the run's outputs/")
    annotate_every: int = opt(10, "save every Nth annotated frame", ge=1)
    annotated_video: Literal["", "mp4", "avi"] = opt(
        "", "also write every processed frame, annotated, to outputs/annotated.<mp4|avi>"
    )
    save_tracks: bool = opt(
        False,
        "tracking: write the confirmed tracks to outputs/tracks.txt (MOT format), for "
        "vision-edge score-tracking",
    )
    reconnect_max_backoff_sec: float = opt(30.0, "cap of the camera reopen backoff", gt=0)
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
    api_key_env: str = opt(
        "VISION_INGEST_API_KEY",
        "env var with the X-API-Key the server requires (and stream-mode edges send)",
        env_name=True,
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
    runners: int = opt(
        0,
        "model runs in flight at once, each on its own thread (Triton's instance count); "
        "0 = auto: min(4, CPU cores) on CPU, 2 on CUDA",
        ge=0,
        le=64,
    )


@dataclass(**FROZEN)
class MqttBroker:
    """An MQTT broker connection (the fields deploy.stats.mqtt and stats.mqtt share)."""

    host: str = opt("127.0.0.1", "broker host name or address")
    port: int = opt(1883, "broker port (1883; 8883 is the usual TLS port)", ge=1, le=65535)
    tls: bool = opt(False, "connect with TLS (server checked against the system CAs or ca_file)")
    ca_file: str = opt(
        "", "PEM CA bundle for the broker's certificate (empty = system CAs)", path_like=True
    )
    cert_file: str = opt("", "PEM client certificate, for brokers that require one (empty = none)")
    key_file: str = opt("", "PEM private key of cert_file (empty = in cert_file)")
    username: str = opt("", "broker user name (empty = anonymous)")
    password_env: str = opt(
        "VISION_MQTT_PASSWORD",
        "env var holding the broker password (never written in a file or a log)",
        env_name=True,
    )
    topic_prefix: str = opt("vision", "topics are <prefix>/<device_id>/events/<kind>")
    keepalive_sec: int = opt(30, "MQTT keepalive: a silent link is declared dead after 1.5x", ge=5)


@dataclass(**FROZEN)
class MqttPublish(MqttBroker):
    """deploy.stats.mqtt: the broker an edge or server publishes its events to (QoS >= 1)."""

    client_id: str = opt(
        "vision-{device_id}",
        "MQTT client id, unique per connection ({device_id}: the edge's device_id, a "
        "vision-server worker's server-<host>-<slot>)",
    )
    qos: int = opt(
        1, "1 (at least once) or 2; an event leaves the outbox on the broker's ack", ge=1, le=2
    )
    max_inflight: int = opt(8, "messages published and not yet acked by the broker", ge=1, le=1000)


@dataclass(**FROZEN)
class MqttIngest(MqttBroker):
    """stats.mqtt: the broker `vision-stats ingest-mqtt` workers take events from."""

    client_id: str = opt(
        "vision-stats-ingest",
        "MQTT client id with a persistent session: give each ingest worker its own "
        "(--client-id); the broker keeps a stopped worker's share until it returns",
    )
    group: str = opt("vision-stats", "shared-subscription group: its workers split the stream")
    session_expiry_sec: int = opt(
        86_400, "how long the broker keeps a disconnected worker's session and queue", ge=0
    )
    receive_maximum: int = opt(
        5000,
        "messages the broker sends before the worker's acks (bounds its memory)",
        ge=1,
        le=65535,
    )
    batch_size: int = opt(
        10_000,
        "most events per store transaction (rollups cost per source per batch: a busy "
        "fleet needs big batches)",
        ge=1,
        le=100_000,
    )
    max_batch_wait_ms: float = opt(
        100.0, "longest a received message waits for its batch to fill", ge=0
    )


@dataclass(**FROZEN)
class StatsSink:
    """Where an edge or server sends its StatsEvents (through the durable outbox)."""

    transport: Literal["http", "mqtt", "both"] = opt(
        "http",
        "how events leave the outbox: http (to endpoint), mqtt (to deploy.stats.mqtt; needs "
        "the mqtt extra), both (a second outbox for MQTT)",
    )
    endpoint: str = opt(
        "http://127.0.0.1:8100/api/v1/stats/events", "stats ingest URL; empty = keep locally"
    )
    outbox_max_events: int = opt(100_000, "outbox cap", ge=1)
    outbox_policy: Literal["drop_oldest", "drop_newest"] = opt(
        "drop_oldest", "what goes when the outbox is full"
    )
    batch_size: int = opt(100, "events per POST or MQTT message", ge=1, le=10_000)
    max_backoff_sec: float = opt(30.0, "cap of the resend backoff", gt=0)
    flush_timeout_sec: float = opt(
        3.0,
        "on shutdown, time to flush the outbox (the rest stays on disk for the next start); "
        "keep it under the 10 s a container runtime waits after SIGTERM",
        ge=0,
    )
    mqtt: MqttPublish = section(MqttPublish)


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
        "VISION_STATS_API_KEY",
        "env var with the ingest X-API-Key (the service requires it, edges and servers send it)",
        env_name=True,
    )
    allow_anonymous: bool = opt(False, "accept events without a key when the key is empty")
    max_body_mb: float = opt(8.0, "largest ingest body (413 above)", gt=0)
    retention_days: int = opt(0, "delete events older than this at start (0 = keep)", ge=0)
    refresh_sec: float = opt(5.0, "dashboard refresh period", gt=0)
    max_ts_skew_days: float = opt(
        3650.0,
        "event/frame timestamps further than this from now are refused (422); also "
        "vision-server's window for frame ts_utc",
        gt=0,
        le=36500,
    )
    mqtt: MqttIngest = section(MqttIngest)


@dataclass(**FROZEN)
class TrackLine:
    """One counting line: an item of the `[[track.lines]]` array of tables."""

    name: str = opt("", "line name, unique among lines and zones; every crossing event carries it")
    points: tuple[tuple[float, float], ...] = opt(
        (), "start and end as two [x, y] points, in track.coords units"
    )
    in_side: Literal["left", "right"] = opt(
        "left",
        "the side that is 'in', as seen on the image from the start point looking at the end",
    )
    classes: tuple[str, ...] = opt((), "class names counted; empty = every class")


@dataclass(**FROZEN)
class TrackZone:
    """One polygon zone: an item of the `[[track.zones]]` array of tables."""

    name: str = opt("", "zone name, unique among lines and zones; every zone event carries it")
    points: tuple[tuple[float, float], ...] = opt(
        (), "3 or more [x, y] corners of a simple polygon, in track.coords units"
    )
    classes: tuple[str, ...] = opt((), "class names counted; empty = every class")


@dataclass(**FROZEN)
class TrackSection:
    """Object tracking, line crossings and zone visits (vision_core.track)."""

    enabled: bool = opt(False, "track objects and count line crossings and zone visits")
    high_thresh: float = opt(
        0.5, "detections at or above this score are matched first (ByteTrack stage 1)", ge=0, le=1
    )
    low_thresh: float = opt(
        0.1,
        "detections from this score up to high_thresh only keep tracks alive (stage 2)",
        ge=0,
        le=1,
    )
    new_track_thresh: float = opt(0.6, "score a detection needs to start a new track", ge=0, le=1)
    match_iou: float = opt(
        0.2, "least IoU of a track's predicted box and a high-score detection", gt=0, le=1
    )
    low_match_iou: float = opt(
        0.5, "least IoU of a track's predicted box and a low-score detection", gt=0, le=1
    )
    low_lost_frames: int = opt(
        2,
        "low-score detections also keep tracks lost for up to this many frames (0: only "
        "tracks seen on the last frame, as ByteTrack)",
        ge=0,
    )
    min_hits: int = opt(
        3,
        "matched frames in a row before a track is confirmed (tentative ones count nothing)",
        ge=1,
    )
    lost_frames: int = opt(
        30, "frames a lost track waits to be found again before it expires", ge=0
    )
    class_consistent: bool = opt(True, "a track only takes detections of its own class")
    fill_gaps: bool = opt(
        True,
        "tracks file (deploy.edge.save_tracks): also write a track's tentative frames once it "
        "is confirmed and, when a lost track is found again, boxes interpolated over the "
        "frames it was missed (score 0); live counts and events never wait for this",
    )
    max_tracks: int = opt(1000, "most tracks held at once (the oldest lost ones go first)", ge=1)
    coords: Literal["normalized", "pixels"] = opt(
        "normalized", "units of line and zone points: 0..1 of the frame, or pixels"
    )
    anchor: Literal["center", "bottom_center", "top_center", "left_center", "right_center"] = opt(
        "center", "the point of a box that crosses lines and enters zones"
    )
    min_frames_on_side: int = opt(
        3,
        "frames in a row an anchor must be seen on the new side of a line (or in or out of a "
        "zone) before it counts",
        ge=1,
    )
    summary_sec: float = opt(
        60.0, "length of a per-interval summary (frames, detections and tracks per class)", gt=0
    )
    lines: tuple[TrackLine, ...] = opt((), "counting lines ([[track.lines]] tables)")
    zones: tuple[TrackZone, ...] = opt((), "polygon zones ([[track.zones]] tables)")


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
    track: TrackSection = section(TrackSection)
