"""Root conftest: shared fixtures for every package's tests and the end-to-end tests."""

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.models",
    "tests.fixtures.trained",
    "tests.fixtures.llm_server",
    "tests.fixtures.services",
]
