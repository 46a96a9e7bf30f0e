"""predict.py / infer.py outputs: one set of files per image whatever the paths (no collision), results
written batch by batch (a stopped run keeps whole lines and --resume continues it), unreadable images
recorded instead of fatal, and the masks, maps and regions at each image's own resolution."""
import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from adbase import UserError
from adcommon.deploy.scoring import ScoringOptions, predict_images
from adcommon.outputs import result_name
from adcommon.tools.testing import file_bytes

META = {"preprocess": {"image_size": 16, "crop_size": None, "mean": None, "std": None},
        "postprocess": {"out_size": 16, "combine": "product", "sigma": None, "map_outputs": [0],
                        "score_output": None},
        "threshold": 0.5, "vis_range": [0.0, 1.0]}


def _images(root, names):
    out = []
    for i, n in enumerate(names):
        p = os.path.join(root, n)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        Image.fromarray(np.full((16, 16, 3), (40 * i) % 256, np.uint8)).save(p)
        out.append(p)
    return out


def _run(x):
    return [x.mean(axis=1, keepdims=True)]   # a "map" per image: its mean intensity


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _records(out):
    with open(os.path.join(out, "predictions.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_result_names_never_collide():
    root = "/data"
    pairs = [("lineA/cam/000.png", "lineA/cam_000.png"), ("a+b/x.png", "a/b/x.png"), ("a%2Fb.png", "a/b.png"),
             ("x.png", "x.jpg"), ("a/b/c.png", "a+b+c.png")]
    for a, b in pairs:
        na, nb = result_name(os.path.join(root, a), root), result_name(os.path.join(root, b), root)
        assert na != nb, (a, b, na)
    assert result_name("/data/lineA/cam/000.png", "/data") == "lineA+cam+000.png"
    assert result_name("/data/lineA/cam_000.png", "/data") == "lineA+cam_000.png"
    odd = os.fsdecode(b"/data/img\xff/000.png")   # a folder name that is not UTF-8
    assert result_name(odd, "/data") == "img%FF+000.png"
    long = "/data/" + "d" * 150 + "/" + "e" * 150 + ".png"
    assert len(result_name(long, "/data").encode()) <= 200


def test_the_colliding_pair_gets_one_set_of_files_each(tmp_path):
    """lineA/cam/000.png and lineA/cam_000.png once shared lineA_cam_000.png, so the normal image's record
    pointed to the anomalous image's mask."""
    root = str(tmp_path / "img")
    normal = _images(root, ["lineA/cam/000.png"])[0]
    Image.fromarray(np.full((16, 16, 3), 250, np.uint8)).save(os.path.join(root, "lineA", "cam_000.png"))
    bright = os.path.join(root, "lineA", "cam_000.png")
    out = str(tmp_path / "pred")
    predict_images([normal, bright], _run, META, out, root)
    recs = {r["path"]: r for r in _records(out)}
    assert recs[normal]["verdict"] == "normal" and recs[bright]["verdict"] == "anomalous"
    assert recs[normal]["files"]["mask"] == "lineA+cam+000.png_mask.png"
    assert recs[bright]["files"]["mask"] == "lineA+cam_000.png_mask.png"
    for path, rec in recs.items():   # each record's files are its own image's
        mask = np.asarray(Image.open(os.path.join(out, rec["files"]["mask"])))
        assert (mask > 0).all() == (rec["verdict"] == "anomalous"), path
    names = set(os.listdir(out))
    assert {f for r in recs.values() for f in r["files"].values()} <= names
    assert len({f for r in recs.values() for f in r["files"].values()}) == 4


def test_a_new_run_replaces_the_previous_runs_files(tmp_path):
    out = str(tmp_path / "pred")
    first = _images(str(tmp_path / "a"), ["good/001.png", "good/002.png"])
    predict_images(first, _run, META, out, str(tmp_path / "a"))
    second = _images(str(tmp_path / "b"), ["crack/007.png"])
    predict_images(second, _run, META, out, str(tmp_path / "b"))
    assert sorted(os.listdir(out)) == ["crack+007.png_mask.png", "crack+007.png_vis.png", "predictions.jsonl",
                                       "run.json", "scores.csv", "summary.json"]
    assert [r["path"] for r in _csv(os.path.join(out, "scores.csv"))] == second


def test_a_stopped_run_keeps_whole_lines_and_resume_finishes_it(tmp_path):
    """Killed during the third batch: the first two batches' lines and files are there, no summary.json
    (not finished); --resume scores only the rest, and the folder then equals an uninterrupted run's."""
    paths = _images(str(tmp_path / "img"), [f"good/{i:03d}.png" for i in range(6)])
    root = str(tmp_path / "img")
    whole = str(tmp_path / "whole")
    predict_images(paths, _run, META, whole, root, ScoringOptions(batch_size=2))
    calls = []

    def dies_on_third_batch(x):
        calls.append(len(x))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return _run(x)

    out = str(tmp_path / "pred")
    with pytest.raises(KeyboardInterrupt):
        predict_images(paths, dies_on_third_batch, META, out, root, ScoringOptions(batch_size=2, workers=1))
    assert not os.path.exists(os.path.join(out, "summary.json"))
    assert [r["path"] for r in _records(out)] == paths[:4]
    seen = []
    summary = predict_images(paths, lambda x: seen.append(len(x)) or _run(x), META, out, root,
                             ScoringOptions(batch_size=2, resume=True))
    assert seen == [2] and summary["images"] == 6 and summary["complete"]
    assert _records(out) == _records(whole)
    assert [r["path"] for r in _csv(os.path.join(out, "scores.csv"))] == paths


def test_resume_refuses_other_settings(tmp_path):
    paths = _images(str(tmp_path / "img"), ["good/000.png"])
    out = str(tmp_path / "pred")
    predict_images(paths, _run, META, out, options=ScoringOptions(settings={"threshold": 0.5}))
    with pytest.raises(UserError, match="threshold=0.5"):
        predict_images(paths, _run, META, out, options=ScoringOptions(settings={"threshold": 0.7}, resume=True))


def test_an_unreadable_image_is_recorded_and_the_rest_scored(tmp_path, capsys):
    paths = _images(str(tmp_path / "img"), [f"good/{i:02d}.png" for i in range(20)])
    with open(paths[7], "rb") as f:
        head = f.read(60)
    with open(paths[7], "wb") as f:   # a camera's half-written file
        f.write(head)
    out = str(tmp_path / "pred")
    summary = predict_images(paths, _run, META, out, options=ScoringOptions(batch_size=4))
    recs = _records(out)
    assert len(recs) == 20 and sum(r.get("score") is not None for r in recs) == 19
    assert recs[7]["verdict"] == "unreadable" and "cannot read image" in recs[7]["error"]
    assert _csv(os.path.join(out, "scores.csv"))[7]["verdict"] == "unreadable"
    assert (summary["unreadable"], summary["scored"]) == (1, 19)
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning")]
    assert len(err) == 1 and paths[7] in err[0]


def test_strict_stops_at_an_unreadable_image_and_keeps_nothing(tmp_path):
    paths = _images(str(tmp_path / "img"), [f"good/{i:02d}.png" for i in range(8)])
    with open(paths[5], "wb") as f:
        f.write(b"not a png")
    out = str(tmp_path / "pred")
    with pytest.raises(UserError, match="cannot read image"):
        predict_images(paths, _run, META, out, options=ScoringOptions(batch_size=2, strict=True))
    assert not os.path.exists(out) or sorted(os.listdir(out)) == []


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


def test_a_2_to_1_image_gets_its_region_mask_and_map_at_its_own_size(tmp_path):
    box = (250, 40, 330, 100)
    path = _defect_image(str(tmp_path / "img" / "wide.png"), 400, 200, box)
    meta = {"preprocess": {"image_size": 64, "crop_size": None, "mean": None, "std": None},
            "postprocess": {"out_size": 64, "combine": "product", "sigma": None, "map_outputs": [0],
                            "score_output": None}, "threshold": 0.5, "vis_range": [0.0, 1.0]}
    out = str(tmp_path / "pred")
    predict_images([path], _brightness, meta, out, options=ScoringOptions(save_maps="npy"))
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
    predict_images([path], _brightness, meta, out, options=ScoringOptions(save_maps="png16"))
    (rec,) = _records(out)
    assert rec["inspected"] == [32, 32, 224, 224]
    assert "centre crop (48 of 64 px) inspects 56 %" in capsys.readouterr().err
    amap = np.asarray(Image.open(os.path.join(out, rec["files"]["map"])))
    assert amap.dtype == np.uint16 and amap.shape == (256, 256)
    assert (amap[:32] == 0).all() and (amap[32:224, 32:224] > 0).all()   # 0: not inspected
    assert _iou(rec["regions"][0]["bbox"], (100, 100, 140, 140)) >= 0.5


def test_overlapped_stages_write_what_one_thread_writes(tmp_path):
    """The pipeline (decode ahead, write behind, several threads) changes when things happen, never what
    is written: the same lines in the same order as every step in turn in one thread (--workers 0)."""
    paths = _images(str(tmp_path / "img"), [f"k{i % 3}/{i:03d}.png" for i in range(23)])
    root = str(tmp_path / "img")
    predict_images(paths, _run, META, str(tmp_path / "seq"), root, ScoringOptions(batch_size=4, workers=0))
    predict_images(paths, _run, META, str(tmp_path / "par"), root, ScoringOptions(batch_size=4, workers=3))
    assert _records(str(tmp_path / "seq")) == _records(str(tmp_path / "par"))
    assert [r["path"] for r in _records(str(tmp_path / "par"))] == paths
    for name in os.listdir(tmp_path / "seq"):
        if name.endswith(".png"):
            assert (tmp_path / "seq" / name).read_bytes() == (tmp_path / "par" / name).read_bytes(), name


_tree = file_bytes


@pytest.mark.parametrize("resume", [False, True])
def test_a_refused_strict_run_leaves_the_previous_results_untouched(tmp_path, resume):
    """--strict meeting an unreadable image after some batches were written: the earlier run's results
    (finished, with --resume or without) are byte for byte what they were."""
    paths = _images(str(tmp_path / "img"), [f"good/{i:02d}.png" for i in range(6)])
    out = str(tmp_path / "pred")
    predict_images(paths, _run, META, out, options=ScoringOptions(batch_size=2, save_vis=True, save_maps="npy"))
    before = _tree(out)
    assert "summary.json" in before and len(before) > 6
    more = _images(str(tmp_path / "img"), [f"new/{i:02d}.png" for i in range(6)])
    with open(more[4], "wb") as f:
        f.write(b"not a png")
    with pytest.raises(UserError, match="cannot read image"):
        predict_images(paths + more, _run, META, out, options=ScoringOptions(batch_size=2, save_vis=True,
                                                                              save_maps="npy", strict=True,
                                                                              resume=resume))
    assert _tree(out) == before


def test_special_files_are_skipped_with_a_warning_and_never_opened(tmp_path, capsys):
    """A FIFO named like an image: opening it would block until a writer comes."""
    from adcommon.files import find_images
    paths = _images(str(tmp_path / "img"), ["a.png", "b.png"])
    fifo = str(tmp_path / "img" / "cam.png")
    os.mkfifo(fifo)
    for arg in (str(tmp_path / "img"), str(tmp_path / "img" / "*.png")):
        assert find_images(arg) == sorted(paths)
        err = capsys.readouterr().err
        assert "warning: skipping" in err and "cam.png" in err
    with pytest.raises(UserError, match="not a regular file"):
        find_images(fifo)


def test_an_unreadable_subfolder_is_a_warning_and_with_strict_an_error(tmp_path, capsys, monkeypatch):
    """Simulated (the tests may run as root, who reads any folder): os.scandir refuses one subfolder."""
    from adcommon.files import find_images
    paths = _images(str(tmp_path / "img"), ["a.png", "locked/b.png"])
    locked = os.path.dirname(paths[1])
    real = os.scandir

    def scandir(path="."):
        if os.path.abspath(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real(path)
    monkeypatch.setattr(os, "scandir", scandir)
    assert find_images(str(tmp_path / "img")) == [paths[0]]
    assert "cannot read the folder" in capsys.readouterr().err
    with pytest.raises(UserError, match="cannot read the folder"):
        find_images(str(tmp_path / "img"), strict=True)
