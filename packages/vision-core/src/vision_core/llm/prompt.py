"""The prompt and the JSON schema of the answer.

Coordinate convention (stated in the prompt, relied on by the parser): every box is
``[x1, y1, x2, y2]`` in NORMALISED image coordinates, i.e. fractions 0..1 of the image's
width (x) and height (y), origin at the top-left corner, x to the right, y down; x1 < x2,
y1 < y2. Normalised coordinates do not depend on any resizing the endpoint does before the
model sees the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

COORDINATES = (
    "Coordinates: each box is [x1, y1, x2, y2] as fractions from 0 to 1 of the image width "
    "(x) and height (y), origin at the top-left corner, x to the right, y downwards, "
    "x1 < x2 and y1 < y2."
)


def build_prompt(class_names: Sequence[str], extra: str = "") -> str:
    """The instruction sent with every image (part of the cache key)."""
    classes = ", ".join(f'"{n}"' for n in class_names)
    lines = [
        "You are an object detector. Find every object of these classes in the image: "
        f"{classes}. Use exactly these class names; ignore any other kind of object.",
        COORDINATES,
        'Answer with JSON only, in this form: {"objects": [{"label": "<class name>", '
        '"box": [x1, y1, x2, y2]}]}. An image without such objects gives {"objects": []}.',
    ]
    if extra.strip():
        lines.append(extra.strip())
    return "\n".join(lines)


def answer_schema(class_names: Sequence[str]) -> dict[str, Any]:
    """`response_format` for endpoints with structured output (OpenAI json_schema)."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "detections",
            "strict": True,
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["objects"],
                "properties": {
                    "objects": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["label", "box"],
                            "properties": {
                                "label": {"type": "string", "enum": list(class_names)},
                                "box": {
                                    "type": "array",
                                    "items": {"type": "number"},
                                    "minItems": 4,
                                    "maxItems": 4,
                                },
                            },
                        },
                    }
                },
            },
        },
    }
