"""The backend list is spelled once and every backend is a TrainBackend (import cycles:
tests/test_import_cycles.py checks the whole code base)."""

from __future__ import annotations

import typing
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from vision_core.config.schema import TrainSection
from vision_train.backends.base import TrainBackend, backend_names, get_backend

SRC = Path(__file__).resolve().parents[1] / "src" / "vision_train"


def test_registered_trainers_are_exactly_the_schemas_backend_choices() -> None:
    schema = set(typing.get_args(typing.get_type_hints(TrainSection)["backend"]))
    registered = {ep.name for ep in entry_points(group="vision.trainers")}
    assert registered == schema == set(backend_names())


@pytest.mark.parametrize("name", backend_names())
def test_each_registered_trainer_is_a_backend_object_of_that_name(name: str) -> None:
    backend = get_backend(name)
    assert isinstance(backend, TrainBackend) and backend.name == name
    assert all(s.startswith(".") for s in backend.checkpoint_suffixes)
