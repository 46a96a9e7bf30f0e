import os
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
HERE = os.path.dirname(TESTS)   # PaDiM-Paddle/
ROOT = os.path.dirname(HERE)
for p in (TESTS, HERE, ROOT):
    if p not in sys.path:
        sys.path.insert(0, p)

from padim_testutil import run_script  # noqa: E402


@pytest.fixture(scope="session")
def syn_root(tmp_path_factory):
    """Small synthetic MVTec-layout data: one texture category at 64 px."""
    from shared_data.synthetic import generate
    root = str(tmp_path_factory.mktemp("syn"))
    generate(root, ["brick"], seed=0, image_size=64, n_train=12, n_test_good=4, n_test_defect=6)
    return root



@pytest.fixture(scope="session")
def trained(syn_root, tmp_path_factory):
    """A PaDiM model fitted on the tiny data with a random ResNet-18 (no weights needed)."""
    out = str(tmp_path_factory.mktemp("padim_out"))
    r = run_script("train.py", "--data_dir", syn_root, "--category", "brick", "--output_dir", out,
                   "--pretrained", "none", "--image_size", 64, "--crop_size", 64, "--batch_size", 5)
    assert r.returncode == 0, r.stderr
    return syn_root, out
