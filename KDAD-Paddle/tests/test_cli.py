"""Mistakes a user can make end with one 'error:' line on stderr and a non-zero exit, no traceback."""
import os

import numpy as np
import pytest
from kdad_testutil import one_line_error, run_script


@pytest.mark.slow
def test_missing_dataset_and_unknown_category(syn_root, tmp_path):
    e = one_line_error(run_script("train.py", "--data_dir", tmp_path / "nowhere", "--category", "brick",
                                  "--pretrained", "none", "--output_dir", tmp_path))
    assert "dataset folder not found" in e
    e = one_line_error(run_script("train.py", "--data_dir", syn_root, "--normal_class", "capsule",
                                  "--pretrained", "none", "--output_dir", tmp_path))
    assert "unknown category 'capsule'" in e and "brick" in e
    assert not os.path.exists(tmp_path / "capsule")


@pytest.mark.slow
def test_foreign_and_missing_checkpoints(syn_root, tmp_path):
    from adcommon.checkpoint import save_checkpoint
    foreign = str(tmp_path / "padim.pdparams")
    save_checkpoint(foreign, "padim", {"backbone": "resnet18"}, {"w": np.zeros(2, np.float32)})
    for script, extra in (("val.py", ["--data_dir", syn_root, "--category", "brick"]),
                          ("export_model.py", []), ("predict.py", ["--img_path", syn_root])):
        e = one_line_error(run_script(script, "--model_path", foreign, *extra))
        assert "padim checkpoint, not kdad" in e
    e = one_line_error(run_script("export_model.py", "--model_path", tmp_path / "none.pdparams"))
    assert "checkpoint not found" in e
    e = one_line_error(run_script("infer.py", "--model_dir", tmp_path, "--img_path", syn_root))
    assert "no inference.yml" in e


@pytest.mark.slow
def test_corrupt_image_bad_config_and_offline_weights(trained, tmp_path):
    root, out = trained
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    e = one_line_error(run_script("predict.py", "--output_dir", out, "--category", "brick", "--img_path", bad,
                                  "--strict", "True"))
    assert "cannot read image" in e
    cfg = tmp_path / "c.yaml"
    cfg.write_text("num_epoch: 3\n")
    e = one_line_error(run_script("train.py", "--config", cfg, "--data_dir", root, "--category", "brick"))
    assert "unknown config key" in e
    e = one_line_error(run_script("train.py", "--data_dir", root, "--category", "brick", "--epochs", 0,
                                  "--pretrained", "none"))
    assert "--epochs" in e
    # ImageNet VGG-16 weights cannot be downloaded here: one line that names the offline options
    env = dict(os.environ, ADCOMMON_DOWNLOAD_TIMEOUT="3", HOME=str(tmp_path))
    e = one_line_error(run_script("train.py", "--data_dir", root, "--category", "brick", "--output_dir",
                                  tmp_path / "o", "--pretrained", "imagenet", env=env))
    assert "vgg16" in e
