"""Shared test setup: offline, 2 threads, artifacts in a temporary folder."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture
def artifacts_tmp(tmp_path, monkeypatch):
    """Point ``utils.artifacts`` at an empty temporary folder."""
    monkeypatch.setenv("R1LAB_ARTIFACTS", str(tmp_path / "artifacts"))
    return tmp_path / "artifacts"


@pytest.fixture(scope="session")
def char_tokenizer():
    from utils.tokenizer import build_char_tokenizer

    return build_char_tokenizer()


def pytest_configure(config):
    config.addinivalue_line("markers", "after_notebooks: runs after every other item (it needs the notebooks' run)")


def pytest_collection_modifyitems(session, config, items):
    """Items marked ``after_notebooks`` go last: in `make test` they find what nbval's notebook runs saved."""
    items.sort(key=lambda item: item.get_closest_marker("after_notebooks") is not None)
