"""STFPM data parallel on two CPU processes (gloo): the single-process global batch, and a resumed
data-parallel run."""
import os
import subprocess
import sys

import numpy as np
import pytest

from adcommon.tools.testing import distributed_data, launch

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the paper folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return distributed_data(tmp_path_factory)


STFPM_FLAGS = ["--category", "brick", "--pretrained", "none", "--image_size", 64, "--batch_size", 4, "--lr", 0.01]


def _student(path):
    from adcommon.checkpoint import load_checkpoint
    ck = load_checkpoint(str(path), "stfpm")
    return ck, np.concatenate([np.asarray(v, np.float64).ravel() for k, v in sorted(ck["state_dict"].items())
                               if k.startswith("student")])


@pytest.mark.slow
def test_stfpm_data_parallel_is_the_single_process_global_batch(data, tmp_path):
    """2 processes x 2 images = the global batch 4 of one process: batch norm synchronised (all_reduce
    in forward and backward on CPU), gradients added. Float tolerance: one step's gradients agree to
    ~4e-6; training at this learning rate grows that to ~1e-4 of the weights after 5 steps."""
    flags = ["--data_dir", data, *STFPM_FLAGS, "--epochs", 1]
    r = subprocess.run([sys.executable, "train.py", "--output_dir", tmp_path / "one", "--compile", "False",
                        *map(str, flags)], cwd=HERE, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = launch(["train.py", "--output_dir", tmp_path / "two", *flags], tmp_path / "log", HERE)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (one, a), (two, b) = _student(tmp_path / "one" / "brick" / "model.pdparams"), \
        _student(tmp_path / "two" / "brick" / "model.pdparams")
    assert two["train"]["processes"] == 2
    la, lb = one["train"]["history"][0]["loss"], two["train"]["history"][0]["loss"]
    assert abs(la - lb) <= 1e-5 * la
    assert np.linalg.norm(a - b) <= 5e-4 * np.linalg.norm(a)
    np.testing.assert_allclose(one["holdout_scores"], two["holdout_scores"], rtol=1e-3)
    log = (tmp_path / "two" / "brick" / "train.log").read_text()
    assert "data parallel over 2 processes: global batch 4, 2 images per process" in log
    assert log.count("epoch 1/1:") == 1          # rank 0 alone logs and writes


@pytest.mark.slow
def test_stfpm_resumes_a_data_parallel_run(data, tmp_path):
    flags = ["--data_dir", data, *STFPM_FLAGS]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for out, epochs, log in ((straight, 2, "l1"), (resumed, 1, "l2")):
        r = launch(["train.py", "--output_dir", out, *flags, "--epochs", epochs], tmp_path / log, HERE)
        assert r.returncode == 0, r.stdout[-3000:]
    r = launch(["train.py", "--output_dir", resumed, *flags, "--epochs", 2, "--resume"], tmp_path / "l3", HERE)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "after epoch 1/2" in (resumed / "brick" / "train.log").read_text()
    (_, a), (_, b) = _student(straight / "brick" / "model.pdparams"), _student(resumed / "brick" / "model.pdparams")
    assert np.linalg.norm(a - b) <= 1e-5 * np.linalg.norm(a)


@pytest.mark.slow
def test_stfpm_data_parallel_with_batch_norm_per_process(data, tmp_path):
    """--sync_bn False: each process normalises over its own share (a different training from one
    process), the gradients are still added; a resumed run must keep that choice."""
    flags = ["--data_dir", data, *STFPM_FLAGS, "--epochs", 1, "--sync_bn", "False"]
    r = launch(["train.py", "--output_dir", tmp_path / "local", *flags], tmp_path / "log", HERE)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    log = (tmp_path / "local" / "brick" / "train.log").read_text()
    assert "batch norm over each process share" in log
    ck, _ = _student(tmp_path / "local" / "brick" / "model.pdparams")
    assert ck["train"]["processes"] == 2 and ck["threshold"] is not None
    r = launch(["train.py", "--output_dir", tmp_path / "local", *flags[:-2], "--epochs", 2, "--resume"],
               tmp_path / "log2", HERE)
    assert r.returncode != 0 and "sync_bn" in r.stdout + r.stderr
