import os
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
HERE = os.path.dirname(TESTS)   # PaDiM-Paddle/
ROOT = os.path.dirname(HERE)
sys.path[:0] = [p for p in (TESTS, HERE, ROOT) if p not in sys.path]

from padim_testutil import run_script  # noqa: E402

from adcommon.tools.testing import tiny_synthetic  # noqa: E402


@pytest.fixture(scope="session")
def syn_root(tmp_path_factory):
    """Small synthetic MVTec-layout data: one texture category at 64 px."""
    return tiny_synthetic(tmp_path_factory, 64, 12, 4, 6, ("brick",), name="syn")



@pytest.fixture(scope="session")
def trained(syn_root, tmp_path_factory):
    """A PaDiM model fitted on the tiny data with a random ResNet-18 (no weights needed)."""
    out = str(tmp_path_factory.mktemp("padim_out"))
    r = run_script("train.py", "--data_dir", syn_root, "--category", "brick", "--output_dir", out,
                   "--pretrained", "none", "--image_size", 64, "--crop_size", 64, "--batch_size", 5)
    assert r.returncode == 0, r.stderr
    return syn_root, out
