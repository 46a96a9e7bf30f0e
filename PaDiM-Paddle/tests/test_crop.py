"""What PaDiM inspects: the whole image on any data by default; the paper's centre crop (224 of 256, i.e.
7/8 of --image_size, a multiple of 16) on an MVTec AD category, recorded in args.yml, model_args and inference.yml, and
said in one line with the inspected area framed in the pictures."""
import os
import shutil

import numpy as np
import pytest
import yaml
from padim_testutil import run_script


def _fit(data, category, out, *flags):
    r = run_script("train.py", "--data_dir", data, "--category", category, "--output_dir", out,
                   "--pretrained", "none", "--image_size", 64, "--batch_size", 6, *flags)
    assert r.returncode == 0, r.stderr
    r = run_script("export_model.py", "--output_dir", out, "--category", category)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(out, category, "args.yml")) as f:
        args = yaml.safe_load(f)
    with open(os.path.join(out, category, "inference", "inference.yml")) as f:
        meta = yaml.safe_load(f)
    return args, meta


@pytest.mark.slow
def test_own_data_is_inspected_whole(syn_root, tmp_path):
    args, meta = _fit(syn_root, "brick", str(tmp_path / "out"))
    assert args["crop_size"] is None and meta["preprocess"]["crop_size"] is None
    assert meta["model_args"]["crop_size"] is None and meta["postprocess"]["out_size"] == 64
    r = run_script("val.py", "--data_dir", syn_root, "--category", "brick", "--output_dir", tmp_path / "out")
    assert r.returncode == 0 and "centre crop" not in r.stderr


@pytest.mark.slow
def test_an_mvtec_category_keeps_the_papers_crop_and_says_so(syn_root, tmp_path):
    from PIL import Image
    data = tmp_path / "mvtec"
    shutil.copytree(os.path.join(syn_root, "brick"), data / "carpet")   # an MVTec AD category name
    out = str(tmp_path / "out")
    args, meta = _fit(str(data), "carpet", out)
    assert args["crop_size"] == 48 and meta["preprocess"]["crop_size"] == 48 and meta["model_args"]["crop_size"] == 48
    r = run_script("val.py", "--data_dir", data, "--category", "carpet", "--output_dir", out, "--save_vis", "True")
    assert r.returncode == 0, r.stderr
    assert "note: the centre crop (48 of 64 px) inspects 56 % of each image" in r.stderr
    pic = np.asarray(Image.open(os.path.join(out, "carpet", "vis", "good+000.png_vis.png")))
    assert pic.shape[1] == 4 * 64   # four tiles of the whole resized image, the crop framed inside
    r = run_script("predict.py", "--output_dir", out, "--category", "carpet", "--img_path",
                   data / "carpet" / "test" / "good")
    assert r.returncode == 0 and "centre crop (48 of 64 px)" in r.stderr
    # and the user can ask for the whole image on MVTec too
    args, meta = _fit(str(data), "carpet", str(tmp_path / "whole"), "--crop_size", "none")
    assert args["crop_size"] is None and meta["preprocess"]["crop_size"] is None
