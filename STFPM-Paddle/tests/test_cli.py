"""User errors end in one line on stderr and a non-zero exit; the seed's flags keep working."""
import json
import os
import shutil

import pytest
from stfpm_helpers import CATEGORY, IMAGE_SIZE, run_script


def _one_line_error(r, *words):
    assert r.returncode != 0, r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error:")
    for w in words:
        assert w in lines[0], lines[0]


def test_missing_dataset(tmp_path):
    r = run_script("train", "--data_dir", tmp_path / "nope", "--category", CATEGORY, "--output_dir", tmp_path)
    _one_line_error(r, "dataset folder not found")


def test_unknown_category(syn_root, tmp_path):
    r = run_script("val", "--data_dir", syn_root, "--category", "carpet", "--output_dir", tmp_path)
    _one_line_error(r, "unknown category", CATEGORY)


def test_checkpoint_of_another_method(syn_root, tmp_path):
    pytest.importorskip("paddle")
    from adcommon.checkpoint import save_checkpoint
    path = str(tmp_path / "padim.pdparams")
    save_checkpoint(path, "padim", {"backbone": "resnet18"}, {})
    r = run_script("val", "--data_dir", syn_root, "--category", CATEGORY, "--checkpoint", path)
    _one_line_error(r, "padim checkpoint, not stfpm")
    _one_line_error(run_script("export_model", "--model_path", path), "padim")


def test_corrupt_image(trained, tmp_path):
    (tmp_path / "imgs").mkdir()
    bad = tmp_path / "imgs" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    r = run_script("predict", "--output_dir", trained, "--category", CATEGORY, "--img_path", bad,
                   "--save_dir", tmp_path / "pred", "--strict", "True")
    _one_line_error(r, "cannot read image", "broken.png")


def test_resume_without_last_checkpoint_starts_from_the_beginning(syn_root, tmp_path):
    """As every method: --resume with no training state yet says so and trains from epoch 1 (scripted
    re-runs need no special first call)."""
    r = run_script("train", "--data_dir", syn_root, "--category", CATEGORY, "--output_dir", tmp_path,
                   "--pretrained", "none", "--image_size", 64, "--batch_size", 4, "--epochs", 1, "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "no " in r.stdout and "starting from the beginning" in r.stdout
    assert os.path.isfile(os.path.join(tmp_path, CATEGORY, "model.pdparams"))


def test_training_state_is_not_a_model(syn_root, trained, tmp_path):
    """last.pdparams (the --resume state) given as a model: one line for every script that loads a model."""
    last = os.path.join(trained, CATEGORY, "last.pdparams")
    for script, extra in (("val", ["--data_dir", syn_root, "--category", CATEGORY]), ("export_model", []),
                          ("predict", ["--img_path", syn_root, "--save_dir", tmp_path / "p"])):
        _one_line_error(run_script(script, "--model_path", last, *extra), "training state (epoch 2)", "--resume")


def test_unfinished_training_is_said(syn_root, trained, tmp_path):
    """model.pdparams is written whenever the held-out score improves; until the run ends it is marked
    unfinished, and the scripts that use it say so (one warning line) instead of using it silently."""
    from adcommon import checkpoint
    ck = checkpoint.load_checkpoint(os.path.join(trained, CATEGORY, "model.pdparams"), "stfpm")
    assert ck["complete"] is True
    r = run_script("export_model", "--output_dir", trained, "--category", CATEGORY, "--save_dir", tmp_path / "e1")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    ck.update(complete=False, progress={"epoch": 1, "epochs": 40})
    part = str(tmp_path / "model.pdparams")
    checkpoint.rewrite_checkpoint(part, ck)
    r = run_script("export_model", "--model_path", part, "--save_dir", tmp_path / "e2")
    warn = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert r.returncode == 0 and len(warn) == 1, r.stderr
    assert "did not finish (kept at epoch 1 of 40)" in warn[0] and "--resume" in warn[0]


def test_bad_image_size_and_export_size(trained, tmp_path):
    _one_line_error(run_script("train", "--category", CATEGORY, "--image_size", 100), "multiple of 32")
    _one_line_error(run_script("export_model", "--output_dir", trained, "--category", CATEGORY, "--img_size", 256),
                    f"trained at {IMAGE_SIZE}")


def test_seed_flags(syn_root, trained, tmp_path):
    """The seed's spellings: positional split, --mvtec_ad, --model_save_path, --depth, --checkpoint,
    --train_val, predict --image_path/--save_path NAME.png, export --img_size/--model_path."""
    out = tmp_path / "seed"
    r = run_script("train", "train", "--depth=18", f"--mvtec_ad={syn_root}", "--category", CATEGORY, "--epochs", 1,
                   "--train_val=False", f"--model_save_path={out}", "--seed", 42, "--pretrained", "none",
                   "--image_size", IMAGE_SIZE, "--batch_size", 8)
    assert r.returncode == 0, r.stderr
    ck = out / CATEGORY / "model.pdparams"
    assert ck.is_file() and not (out / CATEGORY / "metrics.json").exists()  # --train_val=False is False
    r = run_script("train", "test", f"--mvtec_ad={syn_root}", "--category", CATEGORY, f"--checkpoint={ck}",
                   f"--model_save_path={out}")
    assert r.returncode == 0 and "Pixel AUROC" in r.stdout, r.stderr
    assert json.load(open(out / CATEGORY / "metrics.json"))["method"] == "stfpm"
    pic = tmp_path / "predict.png"
    img = os.path.join(syn_root, CATEGORY, "test", "good", "000.png")
    r = run_script("predict", "--depth", 18, f"--checkpoint={ck}", f"--image_path={img}", f"--save_path={pic}")
    assert r.returncode == 0 and pic.is_file(), r.stderr
    same = tmp_path / "same.png"   # --save_path naming the input image itself is refused, the image intact
    shutil.copyfile(img, same)
    before = same.read_bytes()
    r = run_script("predict", "--depth", 18, f"--checkpoint={ck}", f"--image_path={same}", f"--save_path={same}")
    _one_line_error(r, "is the input image itself")
    assert same.read_bytes() == before
    r = run_script("export_model", "--depth", 18, f"--img_size={IMAGE_SIZE}", f"--model_path={ck}",
                   f"--save_dir={tmp_path / 'inference'}")
    assert r.returncode == 0 and (tmp_path / "inference" / "inference.yml").is_file(), r.stderr


def test_gpu_on_a_cpu_build(syn_root, tmp_path):
    paddle = pytest.importorskip("paddle")
    if paddle.device.is_compiled_with_cuda():
        pytest.skip("this Paddle has CUDA")
    r = run_script("train", "--data_dir", syn_root, "--category", CATEGORY, "--output_dir", tmp_path, "--device", "gpu")
    _one_line_error(r, "no CUDA support")
