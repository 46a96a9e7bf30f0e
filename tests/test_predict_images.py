"""predict.py / infer.py outputs: one picture per image (no silent overwrite), and a run replaces the
previous one in its folder only when it has finished."""
import csv
import os

import numpy as np
import pytest
from PIL import Image

from adcommon.infer import picture_names, predict_images

META = {"preprocess": {"image_size": 16, "crop_size": None, "mean": None, "std": None},
        "postprocess": {"out_size": 16, "combine": "product", "sigma": None, "map_outputs": [0],
                        "score_output": None},
        "threshold": 0.5, "vis_range": [0.0, 1.0]}


def _images(root, names):
    out = []
    for i, n in enumerate(names):
        p = os.path.join(root, n)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(p)
        out.append(p)
    return out


def _run(x):
    return [x.mean(axis=1, keepdims=True)]   # a "map" per image: its mean intensity


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_same_names_from_two_folders_get_two_pictures(tmp_path):
    paths = _images(str(tmp_path / "img"), ["lineA/good/001.png", "lineB/good/001.png", "lineB/crack/002.png"])
    assert picture_names(paths) == ["lineA_good_001.png", "lineB_good_001.png", "crack_002.png"]
    out = str(tmp_path / "pred")
    predict_images(paths, _run, META, out)
    assert sorted(os.listdir(out)) == ["crack_002.png", "lineA_good_001.png", "lineB_good_001.png", "scores.csv"]


def test_a_finished_run_replaces_the_previous_one_and_nothing_else(tmp_path):
    out = str(tmp_path / "pred")
    first = _images(str(tmp_path / "a"), ["good/001.png", "good/002.png"])
    predict_images(first, _run, META, out)
    with open(os.path.join(out, "notes.txt"), "w") as f:      # a file of the user's
        f.write("mine")
    second = _images(str(tmp_path / "b"), ["crack/007.png"])
    predict_images(second, _run, META, out)
    assert sorted(os.listdir(out)) == ["crack_007.png", "notes.txt", "scores.csv"]
    assert [r["path"] for r in _csv(os.path.join(out, "scores.csv"))] == second


def test_a_run_that_fails_half_way_leaves_the_previous_one(tmp_path):
    out = str(tmp_path / "pred")
    first = _images(str(tmp_path / "a"), ["good/001.png", "good/002.png"])
    predict_images(first, _run, META, out)
    before = {n: os.path.getmtime(os.path.join(out, n)) for n in os.listdir(out)}
    calls = []

    def dies_on_second_batch(x):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return _run(x)

    second = _images(str(tmp_path / "b"), ["crack/001.png", "crack/002.png"])
    with pytest.raises(KeyboardInterrupt):
        predict_images(second, dies_on_second_batch, META, out)
    assert {n: os.path.getmtime(os.path.join(out, n)) for n in os.listdir(out)} == before   # no temp left either
    assert [r["path"] for r in _csv(os.path.join(out, "scores.csv"))] == first
