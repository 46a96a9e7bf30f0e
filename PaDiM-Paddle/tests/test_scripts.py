"""The train -> val -> predict -> export -> infer chain through the real scripts, and bad inputs."""
import csv
import json
import os

import numpy as np
import pytest
from padim_testutil import one_line_error, run_script


def _close(a, b):
    """Parity: relative 1e-4 (Mahalanobis distances are O(10-100); float32 oneDNN kernels differ at ~1e-6)."""
    return max(abs(a[k] - v) / max(1.0, abs(a[k])) for k, v in b.items()) < 1e-4


def _scores(path):
    with open(path) as f:
        return {os.path.basename(r["path"]) + os.path.basename(os.path.dirname(r["path"])): float(r["score"])
                for r in csv.DictReader(f)}


def test_checkpoint_round_trip(trained):
    from adcommon.method import pipeline
    from padim import engine
    root, out = trained
    model, ck = pipeline.load(engine, os.path.join(out, "brick", "model.pdparams"))
    own = model.state_dict()
    assert set(own) == set(ck["state_dict"])        # no missing / unexpected keys
    assert ck["threshold"] is not None and ck["fit"]["folds"] == 5 and len(ck["fit"]["holdout_scores"]) == 12
    assert ck["model_args"]["postprocess"]["sigma"] == 4.0
    np.testing.assert_array_equal(model.mean.numpy(), ck["state_dict"]["mean"].numpy())


@pytest.mark.slow
@pytest.mark.smoke
def test_val_predict_export_infer_agree(trained, tmp_path):
    root, out = trained
    r = run_script("val.py", "--data_dir", root, "--category", "brick", "--output_dir", out, "--save_vis", "True")
    assert r.returncode == 0, r.stderr
    m = json.load(open(os.path.join(out, "brick", "metrics.json")))
    for k in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "threshold"):
        assert m[k] is not None and np.isfinite(m[k])
    assert os.path.isfile(os.path.join(out, "brick", "vis", "roc.png"))
    val_scores = _scores(os.path.join(out, "brick", "scores.csv"))

    img_dir = os.path.join(root, "brick", "test")
    r = run_script("predict.py", "--output_dir", out, "--category", "brick", "--img_path", img_dir,
                   "--save_dir", tmp_path / "pred")
    assert r.returncode == 0, r.stderr
    pred = _scores(tmp_path / "pred" / "scores.csv")
    assert _close(val_scores, pred)
    assert len([f for f in os.listdir(tmp_path / "pred") if f.endswith(".png") and "_mask" not in f]) == len(pred)

    r = run_script("export_model.py", "--output_dir", out, "--category", "brick")
    assert r.returncode == 0, r.stderr
    for mkl in ("False", "True"):
        r = run_script("infer.py", "--model_dir", os.path.join(out, "brick", "inference"), "--img_path", img_dir,
                       "--use_mkldnn", mkl, "--batch_size", 3, "--save_dir", tmp_path / f"inf{mkl}",
                       "--benchmark", "True", "--save_vis", "False")
        assert r.returncode == 0, r.stderr
        assert "inference_time(ms)" in r.stdout
        inf = _scores(tmp_path / f"inf{mkl}" / "scores.csv")
        assert set(inf) == set(val_scores)
        assert _close(val_scores, inf), mkl




def _jsonl(path):
    with open(path, encoding="utf-8") as f:
        return {r["path"]: r for r in map(json.loads, f)}


@pytest.mark.slow
def test_predict_and_infer_write_equal_results_at_the_original_resolution(trained, tmp_path):
    """2:1 copies of test images: predict.py (dygraph) and infer.py (Paddle Inference) write the same
    predictions.jsonl, masks and maps at 2W x H (float tolerance: the two engines' kernels differ at
    ~1e-6, so a mask pixel may flip only where the map is that close to the threshold)."""
    from PIL import Image
    root, out = trained
    imgs = tmp_path / "wide"
    imgs.mkdir()
    for kind in ("good", "crack"):
        src = os.path.join(root, "brick", "test", kind)
        for name in sorted(os.listdir(src))[:2]:
            im = Image.open(os.path.join(src, name))
            im.resize((im.width * 2, im.height)).save(imgs / f"{kind}_{name}")
    r = run_script("export_model.py", "--output_dir", out, "--category", "brick")
    assert r.returncode == 0, r.stderr
    r = run_script("predict.py", "--output_dir", out, "--category", "brick", "--img_path", imgs,
                   "--save_dir", tmp_path / "pred", "--save_maps", "npy")
    assert r.returncode == 0, r.stderr
    assert "are not square (e.g. 128x64)" in r.stderr and "stretched to 64x64" in r.stderr
    r = run_script("infer.py", "--model_dir", os.path.join(out, "brick", "inference"), "--img_path", imgs,
                   "--save_dir", tmp_path / "inf", "--save_maps", "npy")
    assert r.returncode == 0, r.stderr
    pred, inf = _jsonl(tmp_path / "pred" / "predictions.jsonl"), _jsonl(tmp_path / "inf" / "predictions.jsonl")
    assert set(pred) == set(inf) and len(pred) == len(os.listdir(imgs)) >= 3
    for path, a in pred.items():
        b = inf[path]
        assert (a["width"], a["height"]) == (b["width"], b["height"]) == (128, 64)
        assert a["verdict"] == b["verdict"] and a["threshold"] == b["threshold"] and a["files"] == b["files"]
        assert abs(a["score"] - b["score"]) <= 1e-4 * max(1.0, abs(a["score"]))
        map_a = np.load(tmp_path / "pred" / a["files"]["map"])
        map_b = np.load(tmp_path / "inf" / b["files"]["map"])
        assert map_a.shape == (64, 128) and np.allclose(map_a, map_b, rtol=1e-4, atol=1e-4)
        mask_a = np.asarray(Image.open(tmp_path / "pred" / a["files"]["mask"]))
        mask_b = np.asarray(Image.open(tmp_path / "inf" / b["files"]["mask"]))
        assert mask_a.shape == (64, 128)
        flipped = mask_a != mask_b
        assert np.all(np.abs(map_a[flipped] - a["threshold"]) <= 1e-4 * abs(a["threshold"]))
        if not flipped.any():
            assert [(q["bbox"], q["area"]) for q in a["regions"]] == [(q["bbox"], q["area"]) for q in b["regions"]]
        assert sum(q["area"] for q in a["regions"]) == int((mask_a > 0).sum())


def test_missing_dataset(tmp_path):
    r = run_script("train.py", "--data_dir", tmp_path / "nope", "--category", "brick", "--pretrained", "none",
                   "--output_dir", tmp_path)
    assert "dataset folder not found" in one_line_error(r)


def test_unknown_category(syn_root, tmp_path):
    r = run_script("train.py", "--data_dir", syn_root, "--category", "carpet", "--pretrained", "none",
                   "--output_dir", tmp_path)
    assert "unknown category 'carpet'" in one_line_error(r)
    assert not os.path.exists(tmp_path / "carpet")


def test_checkpoint_of_another_method(syn_root, tmp_path):
    from adcommon.checkpoint import save_checkpoint
    save_checkpoint(str(tmp_path / "brick" / "model.pdparams"), "stfpm", {}, {})
    r = run_script("val.py", "--data_dir", syn_root, "--category", "brick", "--output_dir", tmp_path)
    assert "stfpm checkpoint, not padim" in one_line_error(r)


def test_corrupt_image(trained, tmp_path):
    root, out = trained
    (tmp_path / "imgs").mkdir()
    bad = tmp_path / "imgs" / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = run_script("predict.py", "--output_dir", out, "--category", "brick", "--img_path", bad,
                   "--save_dir", tmp_path / "p", "--strict", "True")
    assert "bad.png" in one_line_error(r)
    assert not (tmp_path / "p").exists()
    r = run_script("predict.py", "--output_dir", out, "--category", "brick", "--img_path", bad,
                   "--save_dir", tmp_path / "p")   # by default: recorded as unreadable, exit code 3
    assert r.returncode == 3 and "recorded as unreadable" in r.stderr, r.stderr[-2000:]
    assert json.loads((tmp_path / "p" / "predictions.jsonl").read_text())["verdict"] == "unreadable"


@pytest.mark.parametrize("workers", [0, 2])
def test_truncated_training_image_with_workers(syn_root, tmp_path, workers):
    """A truncated PNG in train/good: one line naming it, with and without worker processes (Paddle's
    DataLoader with workers printed a traceback and hung here)."""
    import shutil
    data = tmp_path / "data"
    shutil.copytree(syn_root, data)
    victim = sorted((data / "brick" / "train" / "good").iterdir())[5]
    victim.write_bytes(victim.read_bytes()[:200])
    r = run_script("train.py", "--data_dir", data, "--category", "brick", "--output_dir", tmp_path / "out",
                   "--pretrained", "none", "--image_size", 64, "--crop_size", 64, "--batch_size", 2,
                   "--num_workers", workers)
    assert victim.name in one_line_error(r)
    assert not (tmp_path / "out" / "brick" / "model.pdparams").exists()


@pytest.mark.parametrize("flags, words", [
    (["--d", 100000], "--d must be in 1..448 for resnet18"),
    (["--image_size", 100, "--crop_size", 224], "--crop_size 224 is larger than --image_size 100"),
    (["--image_size", 128, "--crop_size", 100], "--crop_size must be a multiple of 16"),
])
def test_impossible_sizes_are_one_line(syn_root, tmp_path, flags, words):
    r = run_script("train.py", "--data_dir", syn_root, "--category", "brick", "--output_dir", tmp_path / "out",
                   "--pretrained", "none", *flags)
    assert words in one_line_error(r)
    assert not (tmp_path / "out" / "brick" / "model.pdparams").exists()


def test_no_weights_offline_is_one_line(syn_root, tmp_path):
    env_home = tmp_path / "home"
    os.makedirs(env_home)
    r = run_script("train.py", "--data_dir", syn_root, "--category", "brick", "--output_dir", tmp_path,
                   "--backbone", "resnet18", "--pretrained", "imagenet",
                   env=dict(os.environ, HOME=str(env_home), ADCOMMON_WEIGHTS_DIR=str(env_home / "w"),
                            ADCOMMON_DOWNLOAD_TIMEOUT="3", https_proxy="http://127.0.0.1:9",
                            http_proxy="http://127.0.0.1:9"))
    msg = one_line_error(r)
    assert "efficientnet_lite0" in msg and "none" in msg


def test_corrupt_training_image_is_an_error_not_a_hang(tmp_path):
    """Paddle's single-process DataLoader hangs when an item raises; fitting must stop with one line."""
    from shared_data.synthetic import generate
    root = tmp_path / "data"
    generate(str(root), ["brick"], seed=0, image_size=64, n_train=6, n_test_good=1, n_test_defect=1)
    (root / "brick" / "train" / "good" / "003.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    r = run_script("train.py", "--data_dir", root, "--category", "brick", "--output_dir", tmp_path / "o",
                   "--pretrained", "none", "--image_size", 64, "--crop_size", 64, "--holdout_ratio", 0)
    assert "003.png" in one_line_error(r)
    assert not (tmp_path / "o" / "brick" / "model.pdparams").exists()


@pytest.mark.slow
def test_the_three_backends_agree(trained, tmp_path):
    """export_model.py --onnx True (the layer2/3 upsampling is an ONNX Expand, not a Tile), then infer.py
    on Paddle Inference, ONNX Runtime and OpenVINO: the same scores and maps (1e-4)."""
    pytest.importorskip("paddle2onnx")
    pytest.importorskip("onnxruntime")
    from adcommon.tools.testing import backends_agree
    root, out = trained
    folder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    backends_agree(folder, os.path.join(out, "brick", "model.pdparams"), os.path.join(root, "brick", "test"), tmp_path)
