"""What a detector adapter needs from a runtime: the graph's inputs, outputs, metadata, run.

The adapters (YOLO, Faster R-CNN) do their pre- and post-processing on NumPy arrays and
hand the runtime a feed; a `Runner` is the one thing that differs between ONNX Runtime
(`OrtRunner`, here) and OpenVINO (`vision_core.infer.openvino.OpenVinoRunner`, imported
only when chosen). Tensor types are spelled as ONNX Runtime spells them
("tensor(float)", "tensor(int64)") whatever the runtime, and a symbolic dimension is
anything that is not a positive int (see `base.static_dim`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import onnxruntime as ort

__all__ = ["OrtRunner", "Runner", "TensorInfo", "as_runner", "describe_io"]


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One graph input or output: its name, shape (int or None/str per dim) and type."""

    name: str
    shape: tuple[int | str | None, ...]
    type: str  # "tensor(float)", "tensor(float16)", "tensor(int64)", ...


@runtime_checkable
class Runner(Protocol):
    """A compiled model graph on one runtime. `run` may be called from several threads."""

    @property
    def runtime(self) -> str:
        """ "onnxruntime" or "openvino"."""
        ...

    @property
    def precision(self) -> str:
        """What it computes in: "fp32", "bf16", "fp16", "int8"."""
        ...

    @property
    def device(self) -> str:
        """The execution provider / device it really uses."""
        ...

    @property
    def model_path(self) -> str:
        """The file it was opened from, or "<in-memory model>"."""
        ...

    @property
    def inputs(self) -> Sequence[TensorInfo]: ...

    @property
    def outputs(self) -> Sequence[TensorInfo]: ...

    @property
    def metadata(self) -> Mapping[str, str]:
        """The model's custom metadata (ONNX metadata_props)."""
        ...

    def run(
        self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        """The named outputs (all, in graph order, for None) for one input feed."""
        ...


def _infos(args: Sequence[ort.NodeArg]) -> tuple[TensorInfo, ...]:
    return tuple(TensorInfo(a.name, tuple(a.shape), a.type) for a in args)


class OrtRunner:
    """An ONNX Runtime InferenceSession as a `Runner` (concurrent `run` calls are safe)."""

    runtime = "onnxruntime"

    def __init__(self, session: ort.InferenceSession, *, precision: str = "fp32") -> None:
        self.session = session
        self.precision = precision
        self.device = str(session.get_providers()[0])
        path = getattr(session, "_model_path", None)
        self.model_path = str(path) if path else "<in-memory model>"
        self.inputs = _infos(session.get_inputs())
        self.outputs = _infos(session.get_outputs())
        self.metadata: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)

    def run(
        self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        names = list(output_names) if output_names is not None else None
        return [np.asarray(o) for o in self.session.run(names, dict(feeds))]

    def __repr__(self) -> str:
        return f"OrtRunner({self.model_path!r}, {self.device}, {self.precision})"


def as_runner(model: object) -> Runner | None:
    """`model` as a Runner when it already is one or is an ONNX Runtime session; else None."""
    if isinstance(model, Runner):
        return model
    import onnxruntime as ort

    if isinstance(model, ort.InferenceSession):
        return OrtRunner(model)
    return None


def describe_io(runner: Runner) -> str:
    """ "inputs name[shape]...; outputs name[shape]:type..." for error messages."""
    ins = ", ".join(f"{i.name}{list(i.shape)}" for i in runner.inputs)
    outs = ", ".join(f"{o.name}{list(o.shape)}:{o.type}" for o in runner.outputs)
    return f"inputs {ins or 'none'}; outputs {outs or 'none'}"
