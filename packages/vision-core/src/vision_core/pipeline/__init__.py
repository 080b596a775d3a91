"""The one frame pipeline of vision-edge and vision-label: engines, jobs, the ordered window.

`Engine` (prepare / infer) with `LocalEngine` and `LLMEngine`; `FramePipeline` runs an
engine over frames or files with work in flight and results in order; `ordered_map` is the
window it is built on. Needs vision-core[infer].
"""

from vision_core.pipeline.engine import Engine, LLMEngine, LocalEngine, Outcome, Where
from vision_core.pipeline.run import FrameJob, FramePipeline
from vision_core.pipeline.window import ordered_map

__all__ = [
    "Engine",
    "FrameJob",
    "FramePipeline",
    "LLMEngine",
    "LocalEngine",
    "Outcome",
    "Where",
    "ordered_map",
]
