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
    from adcommon import pipeline
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
    assert len([f for f in os.listdir(tmp_path / "pred") if f.endswith(".png")]) == len(pred)

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
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    r = run_script("predict.py", "--output_dir", out, "--category", "brick", "--img_path", bad,
                   "--save_dir", tmp_path / "p")
    assert "bad.png" in one_line_error(r)
    assert not (tmp_path / "p" / "scores.csv").exists()


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
    (["--image_size", 100], "--crop_size 224 is larger than --image_size 100"),
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
