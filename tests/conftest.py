"""Shared fixtures: the real benchmark files, small random-init models, a study config in tmp.

The fixtures are thin wrappers; what they build is in tests/factories.py (plain functions, usable outside
a fixture). The names tests import from here (`from conftest import REPO, run_ilr, ...`) are re-exported.
"""

from __future__ import annotations

import os

import pytest
import yaml

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from factories import (  # noqa: E402  (re-exported for `from conftest import ...`)
    REPO,
    SHARED_DATA,
    build_warm_models,
    load_tiny_config,
    make_llama3_style_model,
    make_random_model,
    make_random_models,
    make_study,
    make_warm_study,
    mixed_questions,
    run_ilr,
    train_args,
)

# The tiny study's numerics (config `numerics`: one thread, AVX2 code paths), before anything imports torch:
# the models the tests build and train come out bit-identical on any x86-64 machine (ilr/numerics.py).
from ilr import numerics  # noqa: E402

numerics.pin(yaml.safe_load((REPO / "config" / "config.yaml").read_text())["numerics"])

__all__ = ["REPO", "SHARED_DATA", "make_llama3_style_model", "make_random_model", "mixed_questions", "run_ilr",
           "train_args"]


def pytest_collection_modifyitems(config, items):
    """Tests marked `vllm` run where vLLM is importable (`make test-vllm`'s .venv-vllm), skip elsewhere."""
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        return
    skip = pytest.mark.skip(reason="vllm is not importable here: `make test-vllm` builds .venv-vllm (vLLM's CPU "
                                   "build) and runs the tests marked vllm")
    for item in items:
        if item.get_closest_marker("vllm"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the real benchmark files are expected in {SHARED_DATA} (../shared/data beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    return load_tiny_config()


@pytest.fixture(scope="session")
def random_models(tmp_path_factory):
    return make_random_models(tmp_path_factory.mktemp("models"))


@pytest.fixture
def study(tmp_path, tiny_config, random_models):
    """A small study config in tmp whose models are the random-init ones; returns (config, path)."""
    return make_study(tmp_path, tiny_config, random_models)


@pytest.fixture(scope="session")
def warm_models(tmp_path_factory, tiny_config):
    """Two tiny models really built by the build-model stage, with a short warm-up."""
    return build_warm_models(tmp_path_factory.mktemp("warm"), tiny_config)


@pytest.fixture
def warm_study(tmp_path, tiny_config, warm_models):
    """A study config in tmp over the warm models, with easy one-step training questions."""
    return make_warm_study(tmp_path, tiny_config, warm_models)
