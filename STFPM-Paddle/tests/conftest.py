"""Shared fixtures: a tiny synthetic MVTec-layout category and one tiny trained model per session.

Puts STFPM-Paddle/ (package ``stfpm``) and the repo root (``adcommon``, ``shared_data``) on sys.path;
the repo's pytest runs with --import-mode=importlib, so nothing else does.
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PAPER = os.path.dirname(HERE)            # STFPM-Paddle/
ROOT = os.path.dirname(PAPER)            # repo root
sys.path[:0] = [p for p in (ROOT, PAPER, HERE) if p not in sys.path]

from stfpm_helpers import CATEGORY, IMAGE_SIZE, load_script  # noqa: E402

from adcommon.tools.testing import tiny_synthetic  # noqa: E402


@pytest.fixture(scope="session")
def syn_root(tmp_path_factory):
    """brick at 64 px: 10 train (8 fit + 2 held out), 3 test good, 4 defective with masks."""
    return tiny_synthetic(tmp_path_factory, IMAGE_SIZE, 10, 3, 4, (CATEGORY,), name="syn")


@pytest.fixture(scope="session")
def trained(syn_root, tmp_path_factory):
    """output_dir of a 2-epoch ResNet-18 run (random teacher: no weights are downloadable here)."""
    out = str(tmp_path_factory.mktemp("out"))
    train = load_script("train")
    assert train.main(["--data_dir", syn_root, "--category", CATEGORY, "--output_dir", out, "--pretrained", "none",
                       "--image_size", str(IMAGE_SIZE), "--epochs", "2", "--batch_size", "4", "--seed", "0"]) == 0
    return out
