"""What every user of the vision LLM needs from the config: the class names and the key.

Shared by `vision-label llm` and `vision-edge` llm mode, so both find the names and the key
the same way and say the same thing when they cannot.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from vision_core.errors import ConfigError
from vision_core.secrets import Secret, resolve_secret

if TYPE_CHECKING:
    from vision_core.config.schema import LLMSection, PipelineConfig

__all__ = ["llm_api_key", "llm_class_names"]


def llm_class_names(cfg: PipelineConfig, *, who: str = "the vision LLM") -> dict[int, str]:
    """class_map, else data.yolo_dataset_dir/dataset.yaml's names, else the names in
    infer.model_path's metadata; ConfigError saying what to set otherwise."""
    if cfg.class_map:
        return dict(cfg.class_map)
    yaml_path = Path(cfg.data.yolo_dataset_dir) / "dataset.yaml"
    if yaml_path.is_file():
        from vision_core.synth import read_dataset_names

        names = read_dataset_names(yaml_path)
        if names:
            return names
    if cfg.infer.model_path and Path(cfg.infer.model_path).is_file():
        from vision_core.infer import load_detector

        names = dict(load_detector(cfg.infer.model_path).class_names)
        if names:
            return names
    raise ConfigError(
        f"{who} needs the class names to ask for: set class_map (e.g. [class_map] "
        '0 = "person"), data.yolo_dataset_dir (a dataset with dataset.yaml) or '
        "infer.model_path (an ONNX model with names in its metadata)"
    )


def llm_api_key(llm: LLMSection, key_path: str = "autolabel.llm.api_key_env") -> Secret:
    """The key from the variable `llm.api_key_env` names; required for api.openai.com only
    (local servers such as vLLM and Ollama take none)."""
    host = urlparse(llm.base_url).hostname or ""
    return resolve_secret(llm.api_key_env, key_path=key_path, required=host.endswith("openai.com"))
