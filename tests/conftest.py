import os
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (ROOT, os.path.dirname(os.path.abspath(__file__))):
    if _p not in sys.path:
        sys.path.insert(0, _p)


def _png(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def tiny_mvtec(tmp_path):
    """A hand-made MVTec-layout category 'widget': 4 train, 2 test good, 2 'scratch' with masks."""
    rng = np.random.default_rng(0)
    root = tmp_path / "mvtec"
    c = root / "widget"
    for i in range(4):
        _png(str(c / "train" / "good" / f"{i:03d}.png"), rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    for i in range(2):
        _png(str(c / "test" / "good" / f"{i:03d}.png"), rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
        img = rng.integers(0, 255, (40, 40), dtype=np.uint8)  # greyscale like MVTec grid/screw/zipper
        _png(str(c / "test" / "scratch" / f"{i:03d}.png"), img)
        m = np.zeros((40, 40), np.uint8)
        m[10:20, 5 + i:15 + i] = 255
        _png(str(c / "ground_truth" / "scratch" / f"{i:03d}_mask.png"), m)
    return str(root)
