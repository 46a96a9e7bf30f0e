import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PAPER = os.path.dirname(HERE)                     # SSPCAB-Paddle/: the sspcab package and the scripts
ROOT = os.path.dirname(PAPER)                     # repo root: shared_data, adcommon
sys.path[:0] = [p for p in (ROOT, PAPER, HERE) if p not in sys.path]

from sspcab_helpers import SIZE, TINY_TRAIN, run_script  # noqa: E402

from adcommon.tools.testing import tiny_synthetic  # noqa: E402


@pytest.fixture(scope="session")
def syn_root(tmp_path_factory):
    """Synthetic MVTec-layout 'brick' at 128 px: 10 train, 4 good + 4 defective test images with masks."""
    return tiny_synthetic(tmp_path_factory, SIZE, 10, 4, 4, ("brick",), name="syn")


@pytest.fixture(scope="session")
def trained(syn_root, tmp_path_factory):
    """A tiny trained model (3 updates of a random ResNet-18 + SSPCAB) and where it lives."""
    out = str(tmp_path_factory.mktemp("out"))
    r = run_script("train.py", "--data_dir", syn_root, "--category", "brick", "--output_dir", out, *TINY_TRAIN)
    assert r.returncode == 0, r.stderr[-3000:]
    return {"data_dir": syn_root, "output_dir": out, "ckpt": os.path.join(out, "brick", "model.pdparams")}
