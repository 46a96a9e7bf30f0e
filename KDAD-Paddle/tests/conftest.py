import os
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
HERE = os.path.dirname(TESTS)   # KDAD-Paddle/
ROOT = os.path.dirname(HERE)
sys.path[:0] = [p for p in (TESTS, HERE, ROOT) if p not in sys.path]

from kdad_testutil import TRAIN_ARGS, run_script  # noqa: E402

from adcommon.tools.testing import tiny_synthetic  # noqa: E402


@pytest.fixture(scope="session")
def syn_root(tmp_path_factory):
    """Small synthetic MVTec-layout data: one texture category at 64 px."""
    return tiny_synthetic(tmp_path_factory, 64, 10, 3, 5, ("brick",), name="kdad_syn")


@pytest.fixture(scope="session")
def trained(syn_root, tmp_path_factory):
    """A KDAD model trained 2 epochs on the tiny data with a random VGG-16 expert."""
    out = str(tmp_path_factory.mktemp("kdad_out"))
    r = run_script("train.py", "--data_dir", syn_root, "--category", "brick", "--output_dir", out,
                   "--epochs", 2, *TRAIN_ARGS)
    assert r.returncode == 0, r.stderr[-3000:]
    return syn_root, out
