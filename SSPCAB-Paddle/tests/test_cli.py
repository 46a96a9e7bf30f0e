"""Errors a user can cause end with one line on stderr and a non-zero exit, no traceback."""
import os

import numpy as np
import pytest
from sspcab_helpers import SIZE, run_script


def _one_line_error(r, *needles):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0, r.stdout[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-3000:]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_missing_dataset(tmp_path):
    r = run_script("train.py", "--data_dir", tmp_path / "nope", "--category", "brick")
    _one_line_error(r, "dataset folder not found", "shared_data.synthetic")


def test_unknown_category(syn_root, tmp_path):
    r = run_script("train.py", "--data_dir", syn_root, "--type", "bottle", "--output_dir", tmp_path)
    _one_line_error(r, "unknown category 'bottle'", "brick")


def test_image_too_small_for_sspcab(syn_root, tmp_path):
    r = run_script("train.py", "--data_dir", syn_root, "--category", "brick", "--output_dir", tmp_path,
                   "--pretrained", "none", "--image_size", "64")
    _one_line_error(r, "too small for SSPCAB")


def test_missing_checkpoint(syn_root, tmp_path):
    r = run_script("val.py", "--data_dir", syn_root, "--category", "brick", "--output_dir", tmp_path)
    _one_line_error(r, "checkpoint not found", "train.py")


def test_checkpoint_of_another_method(syn_root, tmp_path):
    import paddle  # noqa: F401

    from adcommon.checkpoint import save_checkpoint
    path = str(tmp_path / "padim.pdparams")
    save_checkpoint(path, "padim", {"backbone": "resnet18"}, {})
    for script, args in (("val.py", ["--data_dir", syn_root, "--category", "brick"]),
                         ("export_model.py", []), ("predict.py", ["--img_path", syn_root])):
        r = run_script(script, "--model_path", path, *args)
        _one_line_error(r, "is a padim checkpoint, not sspcab")


def test_training_state_is_not_a_model(syn_root, tmp_path):
    import paddle  # noqa: F401

    from adcommon.checkpoint import save_checkpoint
    path = str(tmp_path / "last.pdparams")
    save_checkpoint(path, "sspcab", {"backbone": "resnet18"}, {}, kind="train_state", progress={"step": 5})
    r = run_script("export_model.py", "--model_path", path)
    _one_line_error(r, "training state (step 5)", "--resume")


@pytest.mark.slow
def test_corrupt_image(trained, tmp_path):
    (tmp_path / "imgs").mkdir()
    bad = tmp_path / "imgs" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    r = run_script("predict.py", "--model_path", trained["ckpt"], "--img_path", bad, "--save_dir", tmp_path / "p",
                   "--strict", "True")
    _one_line_error(r, "cannot read image")
    assert not (tmp_path / "p").exists()
    r = run_script("predict.py", "--model_path", trained["ckpt"], "--img_path", bad, "--save_dir", tmp_path / "p")
    assert r.returncode == 3 and "warning: cannot read image" in r.stderr, r.stderr   # recorded, not fatal


def test_no_images(tmp_path):
    r = run_script("predict.py", "--model_path", tmp_path / "model.pdparams", "--img_path", tmp_path / "empty*.png")
    _one_line_error(r, "no images found")


def test_seed_flags_that_cannot_work(syn_root, tmp_path):
    r = run_script("val.py", "--data_dir", syn_root, "--category", "brick", "--density", "sklearn")
    _one_line_error(r, "--density sklearn")
    r = run_script("infer.py", "--data_type", "brick", "--img-path", syn_root, "--dist_th", "1.1")
    _one_line_error(r, "--dist_th", "export_model.py")


def test_resume_with_other_flags(syn_root, tmp_path):
    import paddle

    from adcommon.checkpoint import load_checkpoint
    from adcommon.outputs import claim
    from sspcab import engine
    from sspcab.model import ProjectionNet
    m = ProjectionNet("resnet18", "none", image_size=SIZE)
    opt = paddle.optimizer.Momentum(learning_rate=0.1, parameters=m.parameters())
    out = tmp_path / "o"
    targs = engine.CutPasteTrainer(m, [], engine.TrainSettings(steps=50, batch_size=2)).settings
    claim(str(out / "brick"), "category", "--output_dir")   # the training folder of the run to resume
    from adcommon.checkpoint import save_training_state
    save_training_state(str(out / "brick" / "last.pdparams"), engine.METHOD, m, opt, m, targs,
                        {"step": 1, "history": []})
    r = run_script("train.py", "--data_dir", syn_root, "--category", "brick", "--output_dir", out,
                   "--pretrained", "none", "--image_size", SIZE, "--steps", "3", "--batch_size", "2", "--resume")
    _one_line_error(r, "cannot resume", "steps=50")
    assert not os.path.exists(out / "brick" / "model.pdparams")
    np.testing.assert_equal(load_checkpoint(str(out / "brick" / "last.pdparams"), "sspcab")["progress"]["step"], 1)
