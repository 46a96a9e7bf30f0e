"""shared_data.synthetic: MVTec layout, exact masks, determinism, CLI errors."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from adbase import UserError
from shared_data import synthetic as syn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 64
COUNTS = dict(n_train=3, n_test_good=2, n_test_defect=6)


def _hashes(d):
    out = {}
    for root, _, files in os.walk(d):
        for n in files:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, d)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _load(path):
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "a"
    dirs = syn.generate(str(root), None, seed=0, image_size=SIZE, **COUNTS)
    return str(root), dirs


def test_constants():
    assert set(syn.TEXTURE_CATEGORIES) | set(syn.OBJECT_CATEGORIES) == set(syn.SYNTHETIC_CATEGORIES)
    assert len(syn.TEXTURE_CATEGORIES) >= 3 and len(syn.OBJECT_CATEGORIES) >= 2
    assert set(syn.GREYSCALE_CATEGORIES) <= set(syn.SYNTHETIC_CATEGORIES)
    assert all(len(syn.DEFECT_KINDS[c]) >= 3 for c in syn.SYNTHETIC_CATEGORIES)
    d = syn.DEFAULT_COUNTS
    assert 120 <= d["n_train"] <= 200 and d["n_test_good"] >= 20 and d["n_test_defect"] >= 40


def test_layout_and_counts(tree):
    root, dirs = tree
    assert dirs == [os.path.join(root, c) for c in syn.SYNTHETIC_CATEGORIES]
    assert sorted(os.listdir(root)) == sorted(syn.SYNTHETIC_CATEGORIES)  # no temp dirs left
    for cat, d in zip(syn.SYNTHETIC_CATEGORIES, dirs):
        kinds = syn.DEFECT_KINDS[cat]
        assert sorted(os.listdir(d)) == ["ground_truth", "readme.txt", "test", "train"]
        assert os.listdir(os.path.join(d, "train")) == ["good"]
        assert sorted(os.listdir(os.path.join(d, "train", "good"))) == ["000.png", "001.png", "002.png"]
        assert sorted(os.listdir(os.path.join(d, "test", "good"))) == ["000.png", "001.png"]
        assert sorted(os.listdir(os.path.join(d, "test"))) == sorted(["good"] + kinds)
        assert sorted(os.listdir(os.path.join(d, "ground_truth"))) == sorted(kinds)
        n_def = 0
        for k in kinds:
            imgs = sorted(os.listdir(os.path.join(d, "test", k)))
            masks = sorted(os.listdir(os.path.join(d, "ground_truth", k)))
            assert imgs == [f"{i:03d}.png" for i in range(len(imgs))]
            assert masks == [f"{i:03d}_mask.png" for i in range(len(imgs))]
            n_def += len(imgs)
        assert n_def == COUNTS["n_test_defect"]
        readme = open(os.path.join(d, "readme.txt"), encoding="utf-8").read()
        assert "SYNTHETIC" in readme and "seed=0" in readme


def test_masks_binary_and_nonempty(tree):
    root, _ = tree
    for cat in syn.SYNTHETIC_CATEGORIES:
        for k in syn.DEFECT_KINDS[cat]:
            for n in os.listdir(os.path.join(root, cat, "test", k)):
                img = _load(os.path.join(root, cat, "test", k, n))
                m = _load(os.path.join(root, cat, "ground_truth", k, n[:-4] + "_mask.png"))
                assert m.ndim == 2 and m.dtype == np.uint8
                assert m.shape == img.shape[:2] == (SIZE, SIZE)
                assert set(np.unique(m)) <= {0, 255}
                assert (m == 255).any(), (cat, k, n)


def test_greyscale_files_are_single_channel(tree):
    root, _ = tree
    for cat in syn.SYNTHETIC_CATEGORIES:
        for sub in ("train/good/000.png", "test/good/000.png", f"test/{syn.DEFECT_KINDS[cat][0]}/000.png"):
            mode = Image.open(os.path.join(root, cat, sub)).mode
            assert mode == ("L" if cat in syn.GREYSCALE_CATEGORIES else "RGB"), (cat, sub, mode)


def test_same_seed_byte_identical_other_seed_differs(tree, tmp_path):
    root, _ = tree
    cats = ["brick", "hexnut"]
    syn.generate(str(tmp_path / "b"), cats, seed=0, image_size=SIZE, **COUNTS)
    syn.generate(str(tmp_path / "c"), cats, seed=1, image_size=SIZE, **COUNTS)
    for cat in cats:
        a = _hashes(os.path.join(root, cat))
        b = _hashes(str(tmp_path / "b" / cat))
        c = _hashes(str(tmp_path / "c" / cat))
        assert a == b
        pngs = [p for p in a if p.endswith(".png") and "ground_truth" not in p]
        # Another seed may put defects of other kinds elsewhere, but no image may repeat.
        assert all(a[p] != c.get(p) for p in pngs)


def test_counts_do_not_reshuffle(tree, tmp_path):
    root, _ = tree
    syn.generate(str(tmp_path), ["tablet"], seed=0, image_size=SIZE, n_train=2, n_test_good=1,
                 n_test_defect=3)
    a = _hashes(os.path.join(root, "tablet"))
    b = _hashes(str(tmp_path / "tablet"))
    common = [p for p in b if p != "readme.txt"]
    assert len(common) == 2 + 1 + 3 * 2
    assert all(a[p] == b[p] for p in common)


def test_normal_images_differ(tree):
    root, _ = tree
    for cat in syn.SYNTHETIC_CATEGORIES:
        d = os.path.join(root, cat, "train", "good")
        imgs = [_load(os.path.join(d, n)).astype(np.float32) for n in sorted(os.listdir(d))]
        imgs += [_load(os.path.join(root, cat, "test", "good", "000.png")).astype(np.float32)]
        for i in range(len(imgs)):
            for j in range(i + 1, len(imgs)):
                assert np.abs(imgs[i] - imgs[j]).mean() > 2.0, (cat, i, j)


@pytest.mark.parametrize("cat", syn.SYNTHETIC_CATEGORIES)
def test_defect_changes_exactly_the_mask(cat):
    for i in range(2 * len(syn.DEFECT_KINDS[cat])):
        d = syn.render_defect(cat, 3, i, 96)
        assert d["kind"] == syn.DEFECT_KINDS[cat][i % len(syn.DEFECT_KINDS[cat])]
        m = d["mask"] > 0
        img, ref = d["image"].astype(np.int16), d["normal"].astype(np.int16)
        diff = np.abs(img - ref)
        if diff.ndim == 3:
            diff = diff.max(2)
        assert m.any()
        assert diff[m].mean() >= 1.0, (cat, d["kind"], i)  # the defect is really there
        assert not diff[~m].any(), (cat, d["kind"], i)    # and nowhere else


def test_files_match_render_functions(tree):
    root, _ = tree
    cat = "mesh"
    k = syn.DEFECT_KINDS[cat]
    d = syn.render_defect(cat, 0, len(k) + 0, SIZE)  # second image of the first kind
    assert np.array_equal(_load(os.path.join(root, cat, "test", k[0], "001.png")), d["image"])
    assert np.array_equal(_load(os.path.join(root, cat, "ground_truth", k[0], "001_mask.png")), d["mask"])
    n = syn.render_normal(cat, 0, "train", 2, SIZE)
    assert np.array_equal(_load(os.path.join(root, cat, "train", "good", "002.png")), n)


def test_existing_category_skipped_unless_force(tmp_path, capsys):
    kw = dict(image_size=SIZE, n_train=1, n_test_good=1, n_test_defect=3)
    syn.generate(str(tmp_path), "gravel", seed=0, **kw)
    before = _hashes(str(tmp_path / "gravel"))
    syn.generate(str(tmp_path), ["gravel"], seed=1, **kw)
    assert "skipped" in capsys.readouterr().out
    assert _hashes(str(tmp_path / "gravel")) == before
    syn.generate(str(tmp_path), ["gravel"], seed=1, force=True, **kw)
    assert _hashes(str(tmp_path / "gravel")) != before
    assert os.listdir(str(tmp_path)) == ["gravel"]


@pytest.mark.parametrize("kw", [dict(categories=["carpet"]), dict(n_train=0), dict(n_test_defect=-1),
                                dict(seed=-1), dict(image_size=8)])
def test_bad_arguments(tmp_path, kw):
    with pytest.raises(UserError):
        syn.generate(str(tmp_path), **kw)
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("args,words", [
    (["--categories", "brick", "nope"], ["nope", "brick", "hexnut"]),
    (["--n_train", "0"], ["n_train"]),
])
def test_cli_errors_one_line(tmp_path, args, words):
    p = subprocess.run([sys.executable, "-m", "shared_data.synthetic", "--data_dir", str(tmp_path / "d")]
                       + args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), p.stderr
    assert all(w in lines[0] for w in words)
    assert not os.path.exists(tmp_path / "d" / "brick")


def test_cli_writes(tmp_path):
    p = subprocess.run([sys.executable, "-m", "shared_data.synthetic", "--data_dir", str(tmp_path),
                        "--categories", "tablet,hexnut", "--image_size", "48", "--n_train", "2",
                        "--n_test_good", "1", "--n_test_defect", "2"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(str(tmp_path))) == ["hexnut", "tablet"]
    assert Image.open(str(tmp_path / "hexnut" / "train" / "good" / "001.png")).size == (48, 48)
