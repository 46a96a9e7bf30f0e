"""shared_data.holdout_defects: a label-free validation category from normal training images only."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from adbase import UserError
from shared_data import holdout_defects as hd
from shared_data import synthetic as syn
from shared_data.dataset import list_images, scan_category, split_holdout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(path):
    return np.asarray(Image.open(path))


def _digest(d):
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(d)):
        dirs.sort()
        for n in sorted(files):
            with open(os.path.join(root, n), "rb") as f:
                h.update(os.path.relpath(os.path.join(root, n), d).encode() + f.read())
    return h.hexdigest()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Two synthetic categories as the 'real' data: an object on a plain background and a texture."""
    root = tmp_path_factory.mktemp("src")
    syn.generate(str(root), ["hexnut", "gravel"], seed=0, image_size=96, n_train=20, n_test_good=1,
                 n_test_defect=1)
    return str(root)


@pytest.fixture(scope="module")
def built(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("hd")
    return source, str(out), hd.build(source, "hexnut", str(out), ratio=0.3, seed=0)


def test_layout_and_pairing(built):
    source, _, cat = built
    train = sorted(os.listdir(os.path.join(cat, "train", "good")))
    held = sorted(os.listdir(os.path.join(cat, "test", "good")))
    assert len(train) == 14 and len(held) == 6
    assert not set(train) & set(held)
    assert sorted(train + held) == sorted(os.listdir(os.path.join(source, "hexnut", "train", "good")))
    for n in held:  # held-out normals are the source images, unchanged
        assert np.array_equal(_load(os.path.join(cat, "test", "good", n)),
                              _load(os.path.join(source, "hexnut", "train", "good", n)))
    samples = scan_category(os.path.dirname(cat), "hexnut", "test")
    bad = [s for s in samples if s.label == 1]
    assert len(bad) == 6 and {s.kind for s in bad} == set(hd.KINDS)
    # each defect image is its held-out normal plus a defect exactly where its mask is
    by_kind = {}
    _, order = split_holdout(list_images(os.path.join(source, "hexnut", "train", "good")), 0.3, 0)
    for i, n in enumerate(os.path.basename(p) for p in order):
        kind = hd.KINDS[i % len(hd.KINDS)]
        j = by_kind.setdefault(kind, 0)
        by_kind[kind] += 1
        img = _load(os.path.join(cat, "test", kind, f"{j:03d}.png")).astype(int)
        normal = _load(os.path.join(cat, "test", "good", n)).astype(int)
        mask = _load(os.path.join(cat, "ground_truth", kind, f"{j:03d}_mask.png")) > 0
        assert img.shape == normal.shape and mask.any()
        assert np.array_equal(img[~mask], normal[~mask])
        assert np.abs(img[mask] - normal[mask]).mean() >= 1.0


def test_deterministic_and_source_untouched(built, tmp_path):
    source, _, cat = built
    before = _digest(source)
    again = hd.build(source, "hexnut", str(tmp_path), ratio=0.3, seed=0)
    assert _digest(again) == _digest(cat)
    assert _digest(source) == before


def test_refuses_to_replace(built):
    source, out, _ = built
    with pytest.raises(UserError, match="exists"):
        hd.build(source, "hexnut", out)
    with pytest.raises(UserError, match="must not be --data_dir"):
        hd.build(source, "hexnut", source)
    assert sorted(os.listdir(out)) == ["hexnut"]  # no temp folder left behind


def test_foreground(source):
    nut = _load(os.path.join(source, "hexnut", "train", "good", "000.png"))
    nut = np.repeat(nut[..., None], 3, 2) if nut.ndim == 2 else nut
    fg = hd.foreground(nut)
    assert fg.shape == nut.shape[:2] and 0.05 < fg.mean() < 0.6  # the nut, not the plate
    tex = _load(os.path.join(source, "gravel", "train", "good", "000.png"))
    assert hd.foreground(tex).mean() == 1.0  # a texture: anywhere


def test_defect_stays_in_region():
    rng = np.random.default_rng(0)
    img = np.full((120, 90, 3), 128, np.uint8)
    img += rng.integers(0, 20, img.shape, dtype=np.uint8)
    region = np.zeros((120, 90), np.float32)
    region[30:90, 20:70] = 1
    for i, kind in enumerate(hd.KINDS):
        out, mask = hd.draw(img, region, kind, np.random.default_rng([0, i]))
        assert out.shape == img.shape and mask.any()
        assert not mask[region == 0].any()


def test_cli_errors(source, tmp_path):
    def run(*a):
        return subprocess.run([sys.executable, "-m", "shared_data.holdout_defects", *a], cwd=ROOT,
                              capture_output=True, text=True)
    r = run("--data_dir", source, "--category", "nope", "--out_dir", str(tmp_path / "o"))
    assert r.returncode != 0 and "unknown category 'nope'" in r.stderr and "Traceback" not in r.stderr
    r = run("--data_dir", source, "--category", "hexnut", "--out_dir", str(tmp_path / "o"), "--ratio", "0")
    assert r.returncode == 2 and "--ratio" in r.stderr
    assert not os.path.exists(tmp_path / "o")
