"""Root conftest: shared fixtures for every package's tests and the end-to-end tests."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.models",
    "tests.fixtures.trained",
    "tests.fixtures.llm_server",
    "tests.fixtures.services",
    "tests.fixtures.fake_stats",
    "tests.fixtures.mqtt",
]

# fixtures that train or export a real model (seconds to minutes): a test that uses one,
# directly or through another fixture, is slow whatever its own body does
TRAINING_FIXTURES = frozenset(
    {"tiny_yolo_pt", "tiny_yolo_onnx", "tiny_yolo_onnx_dynamic", "tiny_faster_rcnn", "trained_yolo"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`slow` is true by construction: every test that needs a training fixture has it."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & TRAINING_FIXTURES and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)
