"""Answer text -> validated boxes.

Accepted: a JSON object ``{"objects": [...]}`` (or a bare list of objects), optionally in a
Markdown code fence or surrounded by prose. Each object needs a class (``label``, ``class``
or ``name``) and a ``box`` (``bbox``/``xyxy``) of four numbers in the normalised convention
of `vision_core.llm.prompt`; an optional ``score``/``confidence`` in 0..1 (default 1.0).
Unknown class names are dropped with a warning, coordinates are clipped to the image,
degenerate boxes (no area after clipping) are dropped.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vision_core.llm.errors import LLMParseError
from vision_core.types import Detection

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
MIN_SIDE = 1e-4  # a normalised side below this is degenerate


@dataclass
class ParsedAnswer:
    detections: list[Detection]
    warnings: list[str] = field(default_factory=list)
    dropped_unknown: int = 0
    dropped_degenerate: int = 0
    clipped: int = 0


def extract_json(text: str) -> Any:
    """The JSON value in `text`: whole text, a fenced block, or the first {...}/[...] span."""
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    for open_ch, close_ch in (("{", "}"), ("[", "]")):
        start, end = text.find(open_ch), text.rfind(close_ch)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    for cand in candidates:
        if not cand:
            continue
        try:
            return json.loads(cand)
        except ValueError:
            continue
    raise LLMParseError(f"answer holds no valid JSON: {text[:120]!r}")


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(value)
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(value)
    return out


def parse_answer(text: str, class_ids: Mapping[str, int], width: int, height: int) -> ParsedAnswer:
    """Validated detections (pixels of a `width` x `height` image) from an answer text.

    `class_ids`: class name -> id; names match case-insensitively. Raises LLMParseError when
    the answer has no JSON or not the expected shape; single bad objects are dropped with a
    warning instead.
    """
    data = extract_json(text)
    if isinstance(data, Mapping):
        objects = data.get("objects", data.get("detections"))
    else:
        objects = data
    if not isinstance(objects, list):
        raise LLMParseError(f"answer JSON has no 'objects' list: {text[:120]!r}")
    lookup = {name.strip().lower(): (cid, name) for name, cid in class_ids.items()}
    out = ParsedAnswer(detections=[])
    for i, obj in enumerate(objects):
        if not isinstance(obj, Mapping):
            out.warnings.append(f"object {i}: not a JSON object, dropped")
            continue
        label = obj.get("label", obj.get("class", obj.get("name")))
        box = obj.get("box", obj.get("bbox", obj.get("xyxy")))
        key = str(label).strip().lower() if label is not None else ""
        if key not in lookup:
            out.dropped_unknown += 1
            out.warnings.append(f"object {i}: unknown class {label!r}, dropped")
            continue
        try:
            if not isinstance(box, (list, tuple)) or len(box) != 4:
                raise ValueError(box)
            x1, y1, x2, y2 = (_number(v) for v in box)
            raw_score = obj.get("score", obj.get("confidence", 1.0))
            score = min(max(_number(raw_score), 0.0), 1.0)
        except ValueError:
            out.warnings.append(f"object {i}: box is not four numbers ({box!r}), dropped")
            out.dropped_degenerate += 1
            continue
        x1, x2 = min(x1, x2), max(x1, x2)
        y1, y2 = min(y1, y2), max(y1, y2)
        clipped = [min(max(v, 0.0), 1.0) for v in (x1, y1, x2, y2)]
        if clipped != [x1, y1, x2, y2]:
            out.clipped += 1
        x1, y1, x2, y2 = clipped
        if x2 - x1 < MIN_SIDE or y2 - y1 < MIN_SIDE:
            out.dropped_degenerate += 1
            out.warnings.append(f"object {i}: degenerate box {box!r}, dropped")
            continue
        cid, name = lookup[key]
        out.detections.append(
            Detection(
                class_id=cid,
                class_name=name,
                score=score,
                xyxy=(x1 * width, y1 * height, x2 * width, y2 * height),
            )
        )
    return out
