"""The LLM answer parser and the prompt: the coordinate convention, fences, validation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vision_core.llm import LLMParseError, build_prompt, extract_json, parse_answer
from vision_core.llm.prompt import COORDINATES, answer_schema

IDS = {"circle": 0, "square": 1, "triangle": 2}


def _answer(*objects: dict[str, object]) -> str:
    return json.dumps({"objects": list(objects)})


def test_boxes_are_normalised_xyxy_scaled_to_the_image_pixels() -> None:
    # 200 wide, 100 high: x fractions scale by 200, y fractions by 100
    text = _answer({"label": "square", "box": [0.1, 0.2, 0.5, 0.9]})
    parsed = parse_answer(text, IDS, 200, 100)
    (det,) = parsed.detections
    assert det.class_id == 1 and det.class_name == "square" and det.score == 1.0
    assert det.xyxy == pytest.approx((20.0, 20.0, 100.0, 90.0))


def test_prompt_states_the_convention_and_lists_the_classes() -> None:
    prompt = build_prompt(["circle", "square"], "Shapes are flat colours.")
    assert COORDINATES in prompt
    assert '"circle", "square"' in prompt and "fractions from 0 to 1" in prompt
    assert prompt.endswith("Shapes are flat colours.")
    schema = answer_schema(["circle"])
    assert schema["type"] == "json_schema"
    items = schema["json_schema"]["schema"]["properties"]["objects"]["items"]
    assert items["properties"]["label"]["enum"] == ["circle"]


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"objects": [{"label": "circle", "box": [0, 0, 0.5, 0.5]}]}\n```',
        'Sure, here it is:\n```\n{"objects": [{"label": "circle", "box": [0, 0, 0.5, 0.5]}]}\n```\nBye',
        'The answer is {"objects": [{"label": "circle", "box": [0, 0, 0.5, 0.5]}]} as asked.',
        '[{"class": "Circle", "bbox": [0, 0, 0.5, 0.5]}]',
        '{"detections": [{"name": " circle ", "xyxy": ["0", "0", "0.5", "0.5"]}]}',
    ],
)
def test_json_is_found_in_fences_prose_and_variants(text: str) -> None:
    (det,) = parse_answer(text, IDS, 100, 100).detections
    assert det.class_name == "circle" and det.xyxy == pytest.approx((0, 0, 50, 50))


def test_unknown_classes_are_dropped_with_a_warning() -> None:
    text = _answer(
        {"label": "dog", "box": [0.1, 0.1, 0.2, 0.2]},
        {"label": "triangle", "box": [0.1, 0.1, 0.2, 0.2]},
    )
    parsed = parse_answer(text, IDS, 10, 10)
    assert [d.class_name for d in parsed.detections] == ["triangle"]
    assert parsed.dropped_unknown == 1 and "unknown class 'dog'" in parsed.warnings[0]


def test_coordinates_are_clipped_and_swapped_corners_ordered() -> None:
    text = _answer(
        {"label": "circle", "box": [-0.2, 0.5, 1.3, 1.1]},
        {"label": "square", "box": [0.8, 0.6, 0.2, 0.1]},
    )
    parsed = parse_answer(text, IDS, 100, 100)
    assert parsed.detections[0].xyxy == pytest.approx((0, 50, 100, 100))
    assert parsed.detections[1].xyxy == pytest.approx((20, 10, 80, 60))
    assert parsed.clipped == 1


@pytest.mark.parametrize(
    "box",
    [
        [0.5, 0.5, 0.5, 0.9],  # zero width
        [1.2, 0.1, 1.5, 0.3],  # wholly outside: nothing left after clipping
        [0.1, 0.1, 0.2],  # three numbers
        ["a", 0, 1, 1],  # not numbers
        None,
        [0, 0, float("nan"), 1],
    ],
)
def test_degenerate_or_bad_boxes_are_dropped(box: object) -> None:
    text = json.dumps({"objects": [{"label": "circle", "box": box}]}, allow_nan=True)
    parsed = parse_answer(text, IDS, 100, 100)
    assert parsed.detections == [] and parsed.dropped_degenerate == 1


def test_score_is_optional_and_clamped() -> None:
    text = _answer(
        {"label": "circle", "box": [0, 0, 1, 1], "confidence": 0.4},
        {"label": "circle", "box": [0, 0, 1, 1], "score": 7},
    )
    assert [d.score for d in parse_answer(text, IDS, 10, 10).detections] == [0.4, 1.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("I see a circle in the corner.", "no valid JSON"),
        ('{"objects": [{"label": "circle", "box": [0, 0', "no valid JSON"),
        ('{"boxes": 3}', "no 'objects' list"),
        ("", "no valid JSON"),
    ],
)
def test_malformed_or_partial_answers_raise(text: str, message: str) -> None:
    with pytest.raises(LLMParseError, match=message):
        parse_answer(text, IDS, 10, 10)


def test_extract_json_prefers_the_whole_text() -> None:
    assert extract_json('{"a": 1}') == {"a": 1}


def test_importing_without_openai_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['openai'] = None\n"
        "from vision_core.errors import MissingDependencyError\n"
        "try:\n    import vision_core.llm\n"
        "except MissingDependencyError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert 'pip install "vision-core[llm]"' in out.stdout, out.stderr
