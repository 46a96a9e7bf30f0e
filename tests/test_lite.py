"""shared_data.lite: deterministic subsets that keep every defect kind and its masks."""
import os

import pytest

from adbase import UserError, run_cli
from adcommon.tools.testing import file_bytes
from shared_data.lite import main, make_lite

KINDS = {"good": 5, "crack": 3, "hole": 4, "scratch": 2}


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture
def src(tmp_path):
    """Two categories in MVTec layout. Files hold their own path as bytes, so copies are checkable;
    the lite code never decodes images."""
    root = tmp_path / "full"
    _write(str(root / "license.txt"), b"CC BY-NC-SA 4.0\n")
    for cat in ("bottle", "capsule"):
        for i in range(12):
            _write(str(root / cat / "train" / "good" / f"{i:03d}.png"), f"{cat}/train/{i}".encode())
        for kind, n in KINDS.items():
            for i in range(n):
                _write(str(root / cat / "test" / kind / f"{i:03d}.png"), f"{cat}/{kind}/{i}".encode())
                if kind != "good":
                    _write(str(root / cat / "ground_truth" / kind / f"{i:03d}_mask.png"),
                           f"{cat}/{kind}/{i}/mask".encode())
    return str(root)


_files = file_bytes


def test_same_seed_same_files(tmp_path, src):
    make_lite(src, tmp_path / "a", ["bottle", "capsule"], n_train=4, n_test=6, seed=3)
    make_lite(src, tmp_path / "b", ["bottle", "capsule"], n_train=4, n_test=6, seed=3)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a == b
    train = [k for k in a if k.startswith(os.path.join("bottle", "train", "good"))]
    assert len(train) == 4
    # The train draw is a sample, not the first files; a different seed gives another one.
    make_lite(src, tmp_path / "c", ["bottle", "capsule"], n_train=4, n_test=6, seed=4)
    assert set(_files(tmp_path / "c")) != set(a)


def test_every_kind_kept_with_masks_and_bytes(tmp_path, src):
    summary = make_lite(src, tmp_path / "lite", ["bottle"], n_train=2, n_test=5, seed=0)
    # Round-robin over good, crack, hole, scratch, then good again.
    assert summary["bottle"]["test"] == {"good": 2, "crack": 1, "hole": 1, "scratch": 1}
    assert summary["bottle"]["masks"] == 3
    lite = _files(tmp_path / "lite")
    full = _files(src)
    for rel, data in lite.items():
        assert full[rel] == data  # byte for byte, same name
    defects = [k for k in lite if k.split(os.sep)[1:3] in (["test", "crack"], ["test", "hole"], ["test", "scratch"])]
    assert len(defects) == 3
    for k in defects:
        cat, _, kind, name = k.split(os.sep)
        assert os.path.join(cat, "ground_truth", kind, name[:-4] + "_mask.png") in lite
    assert "license.txt" in lite
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temp dir left


def test_fewer_test_images_than_kinds(tmp_path, src):
    summary = make_lite(src, tmp_path / "lite", ["capsule"], n_train=1, n_test=2)
    assert sum(summary["capsule"]["test"].values()) == 2


def test_n_larger_than_available_takes_all(tmp_path, src):
    summary = make_lite(src, tmp_path / "lite", ["capsule"], n_train=100, n_test=100)
    assert summary["capsule"]["train"] == 12
    assert summary["capsule"]["test"] == KINDS
    assert summary["capsule"]["masks"] == sum(KINDS.values()) - KINDS["good"]


def test_refuses_non_empty_dst_unless_force(tmp_path, src):
    dst = tmp_path / "lite"
    dst.mkdir()
    make_lite(src, dst, ["bottle"], n_train=1, n_test=4)  # an empty dst is fine
    before = _files(dst)
    with pytest.raises(UserError, match="not empty; pass --force"):
        make_lite(src, dst, ["capsule"], n_train=1, n_test=4)
    assert _files(dst) == before  # untouched
    make_lite(src, dst, ["capsule"], n_train=1, n_test=4, force=True)
    assert sorted(os.listdir(dst)) == ["capsule", "license.txt"]


def test_dst_holding_src_is_refused(tmp_path, src):
    with pytest.raises(UserError, match="contains --src"):
        make_lite(src, tmp_path, ["bottle"], n_train=1, n_test=1, force=True)
    assert os.path.isdir(src)


def test_errors_are_one_line(tmp_path, src, capsys):
    cases = [
        (["--src", str(tmp_path / "nope")], "does not exist"),
        (["--src", src, "--categories", "sofa"], "unknown category 'sofa'"),
        (["--src", src, "--categories", "screw"], "python -m shared_data.download"),
    ]
    for extra, msg in cases:
        argv = ["--dst", str(tmp_path / "out"), "--categories", "bottle", "--n_train", "1", "--n_test", "1"] + extra
        with pytest.raises(SystemExit) as e:
            run_cli(main, argv)
        err = capsys.readouterr().err.splitlines()
        assert e.value.code != 0 and len(err) == 1 and msg in err[0], (extra, err)
    assert not os.path.exists(tmp_path / "out")


def test_cli_comma_categories(tmp_path, src, capsys):
    assert main(["--src", src, "--dst", str(tmp_path / "out"), "--categories", "bottle,capsule",
                 "--n_train", "2", "--n_test", "4", "--seed", "1"]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["bottle", "capsule", "license.txt"]
    assert "bottle: 2 train" in capsys.readouterr().out
