"""Offline test session: environment set before any HF import; tiny models built once per session."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

_HF_HOME = tempfile.mkdtemp(prefix="spuriverse-hf-")
os.environ.update({
    "HF_HUB_OFFLINE": "1",              # an accidental hub id fails at once instead of hanging
    "HF_DATASETS_OFFLINE": "1",
    "HF_HOME": _HF_HOME,
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
})
os.environ.pop("OPENAI_API_KEY", None)
sys.path.insert(0, str(Path(__file__).parent))
# `tests` is this folder: kronfluence's wheel installs a top-level `tests` package into site-packages, and
# a regular package anywhere on sys.path wins over this namespace folder, so `from tests.eval...` (two
# test modules share helpers that way) would import kronfluence's tests instead.
_tests = type(sys)("tests")
_tests.__path__ = [str(Path(__file__).parent)]
sys.modules["tests"] = _tests

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED_META = REPO.parent / "shared" / "data" / "spuriverse-reference-meta"


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory) -> Path:
    from helpers.tiny_models import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="session")
def tiny_llava_next(tmp_path_factory) -> Path:
    from helpers.tiny_models import build_tiny_llava_next

    return build_tiny_llava_next(tmp_path_factory.mktemp("tiny-llava-next"))


@pytest.fixture(scope="session")
def small_benchmark(tmp_path_factory) -> Path:
    """A local dataset folder: 6 groups (anchor + 3 spurious + 1 counter) + 6 controls = 36 items."""
    from helpers.bench_data import write_long_dataset

    return write_long_dataset(tmp_path_factory.mktemp("bench"), n_groups=6, n_controls=6)


@pytest.fixture(scope="session")
def tiny_paligemma(tmp_path_factory) -> Path:
    from helpers.tiny_models import build_tiny_paligemma

    return build_tiny_paligemma(tmp_path_factory.mktemp("tiny-paligemma"))


@pytest.fixture(scope="session")
def tiny_idefics3(tmp_path_factory) -> Path:
    from helpers.tiny_models import build_tiny_idefics3

    return build_tiny_idefics3(tmp_path_factory.mktemp("tiny-idefics3"))


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> Path:
    from helpers.tiny_diffusion import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_inpaint(tmp_path_factory) -> Path:
    from helpers.tiny_diffusion import build_tiny_inpaint

    return build_tiny_inpaint(tmp_path_factory.mktemp("tiny-inpaint"))


@pytest.fixture(scope="session")
def tiny_pix2pix(tmp_path_factory) -> Path:
    from helpers.tiny_diffusion import build_tiny_instruct_pix2pix

    return build_tiny_instruct_pix2pix(tmp_path_factory.mktemp("tiny-pix2pix"))
