"""predict.py / infer.py outputs: one picture per image (no silent overwrite), a run replaces the
previous one in its folder only when it has finished, and the masks, maps and regions are at each image's
own resolution."""
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
    pictures = ["crack_002.png", "lineA_good_001.png", "lineB_good_001.png"]
    masks = [n.replace(".png", "_mask.png") for n in pictures]
    assert sorted(os.listdir(out)) == sorted(pictures + masks + ["predictions.jsonl", "scores.csv"])


def test_a_finished_run_replaces_the_previous_one_and_nothing_else(tmp_path):
    out = str(tmp_path / "pred")
    first = _images(str(tmp_path / "a"), ["good/001.png", "good/002.png"])
    predict_images(first, _run, META, out)
    with open(os.path.join(out, "notes.txt"), "w") as f:      # a file of the user's
        f.write("mine")
    second = _images(str(tmp_path / "b"), ["crack/007.png"])
    predict_images(second, _run, META, out)
    assert sorted(os.listdir(out)) == ["crack_007.png", "crack_007_mask.png", "notes.txt", "predictions.jsonl",
                                       "scores.csv"]
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


def _defect_image(path, w, h, box):
    """A dark w x h image with one bright rectangle ``box`` (x0, y0, x1, y1): the known defect."""
    a = np.full((h, w, 3), 30, np.uint8)
    x0, y0, x1, y1 = box
    a[y0:y1, x0:x1] = 230
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(a).save(path)
    return path


def _iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _brightness(x):   # a "model": the map is the input's brightness at 1/4 resolution, like a feature map
    m = x.mean(axis=1, keepdims=True)
    n, _, h, w = m.shape
    return [m.reshape(n, 1, h // 4, 4, w // 4, 4).mean(axis=(3, 5))]


def _records(out):
    import json
    with open(os.path.join(out, "predictions.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_a_2_to_1_image_gets_its_region_mask_and_map_at_its_own_size(tmp_path):
    box = (250, 40, 330, 100)
    path = _defect_image(str(tmp_path / "img" / "wide.png"), 400, 200, box)
    meta = {"preprocess": {"image_size": 64, "crop_size": None, "mean": None, "std": None},
            "postprocess": {"out_size": 64, "combine": "product", "sigma": None, "map_outputs": [0],
                            "score_output": None}, "threshold": 0.5, "vis_range": [0.0, 1.0]}
    out = str(tmp_path / "pred")
    predict_images([path], _brightness, meta, out, save_maps="npy")
    (rec,) = _records(out)
    assert (rec["width"], rec["height"], rec["verdict"]) == (400, 200, "anomalous")
    assert rec["inspected"] == [0, 0, 400, 200]
    assert len(rec["regions"]) == 1 and _iou(rec["regions"][0]["bbox"], box) >= 0.5
    mask = np.asarray(Image.open(os.path.join(out, rec["files"]["mask"])))
    amap = np.load(os.path.join(out, rec["files"]["map"]))
    assert mask.shape == amap.shape == (200, 400)
    assert rec["regions"][0]["area"] == int((mask > 0).sum())
    assert abs(rec["regions"][0]["peak"] - float(np.nanmax(amap))) < 1e-5
    assert set(np.unique(mask)) <= {0, 255}


def test_a_crop_leaves_the_border_uninspected_and_says_so(tmp_path, capsys):
    path = _defect_image(str(tmp_path / "img" / "sq.png"), 256, 256, (100, 100, 140, 140))
    meta = {"preprocess": {"image_size": 64, "crop_size": 48, "mean": None, "std": None},
            "postprocess": {"out_size": 48, "combine": "product", "sigma": None, "map_outputs": [0],
                            "score_output": None}, "threshold": 0.5, "vis_range": [0.0, 1.0]}
    out = str(tmp_path / "pred")
    predict_images([path], _brightness, meta, out, save_maps="png16")
    (rec,) = _records(out)
    assert rec["inspected"] == [32, 32, 224, 224]
    assert "centre crop (48 of 64 px) inspects 56 %" in capsys.readouterr().err
    amap = np.asarray(Image.open(os.path.join(out, rec["files"]["map"])))
    assert amap.dtype == np.uint16 and amap.shape == (256, 256)
    assert (amap[:32] == 0).all() and (amap[32:224, 32:224] > 0).all()   # 0: not inspected
    assert _iou(rec["regions"][0]["bbox"], (100, 100, 140, 140)) >= 0.5
