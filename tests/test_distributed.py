"""Scale-out on two CPU processes (gloo) under `python -m paddle.distributed.launch`: PaDiM's fit shared by
two processes is the single-process model, only rank 0 writes, and a lost rank ends the job fast."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PADIM = os.path.join(ROOT, "PaDiM-Paddle")


def _launch(args, log_dir, cwd, timeout=600, env=None):
    from adcommon.distributed import launch_command
    cmd, base = launch_command(2, log_dir)
    return subprocess.run(cmd + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(base, **(env or {})))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from shared_data.synthetic import generate
    root = str(tmp_path_factory.mktemp("dist_data"))
    generate(root, ["brick"], seed=0, image_size=64, n_train=23, n_test_good=2, n_test_defect=2)
    return root


@pytest.mark.slow
def test_padim_fit_on_two_processes_is_the_single_process_model(data, tmp_path):
    from adcommon.checkpoint import load_checkpoint
    flags = ["--data_dir", data, "--category", "brick", "--pretrained", "none", "--image_size", 64,
             "--batch_size", 4]
    r = subprocess.run([sys.executable, "train.py", "--output_dir", tmp_path / "one", *map(str, flags)], cwd=PADIM,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = _launch(["train.py", "--output_dir", tmp_path / "two", *flags], tmp_path / "log", PADIM)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    one = load_checkpoint(str(tmp_path / "one" / "brick" / "model.pdparams"), "padim")
    two = load_checkpoint(str(tmp_path / "two" / "brick" / "model.pdparams"), "padim")
    for key in ("mean", "inv_cov"):   # float32 buffers from float64 sums: equal to their rounding
        a, b = (np.asarray(c["state_dict"][key], np.float64) for c in (one, two))
        assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max(), key
    assert two["fit"]["processes"] == 2 and len(two["fit"]["peak_rss_mb_per_process"]) == 2
    assert abs(one["threshold"] - two["threshold"]) <= 1e-6 * abs(one["threshold"])   # every rank's held-out scores
    np.testing.assert_allclose(one["fit"]["holdout_scores"], two["fit"]["holdout_scores"], rtol=1e-5)
    # rank 0 alone wrote: one log, one checkpoint, no temporaries
    log = (tmp_path / "two" / "brick" / "train.log").read_text()
    assert log.count("fitted 256 Gaussians") == 1 and "(2 processes)" in log
    assert sorted(os.listdir(tmp_path / "two" / "brick")) == [".adsuite.json", "args.yml", "model.pdparams",
                                                               "train.log"]


@pytest.mark.slow
def test_a_lost_rank_ends_the_job_fast_with_a_nonzero_code(tmp_path):
    t0 = time.time()
    r = _launch([os.path.join(ROOT, "tests", "dist_rank_dies.py")], tmp_path / "log", ROOT, timeout=300,
                env={"ADCOMMON_DIST_TIMEOUT": "60"})
    assert r.returncode != 0
    assert "the collective returned without rank 1" not in r.stderr + r.stdout
    assert time.time() - t0 < 120   # the launcher stops rank 0 at once; the watchdog at the latest after 60 s


def test_one_process_is_rank_0_of_1_and_the_helpers_do_nothing():
    from adcommon import distributed as D
    a = np.arange(4.0)
    assert D.init() == (0, 1) and D.is_main() and D.shard(3) == [0, 1, 2]
    assert D.all_sum(a) is a and a.tolist() == [0, 1, 2, 3] and D.all_gather("x") == ["x"]


STFPM = os.path.join(ROOT, "STFPM-Paddle")
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
                        *map(str, flags)], cwd=STFPM, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = _launch(["train.py", "--output_dir", tmp_path / "two", *flags], tmp_path / "log", STFPM)
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
        r = _launch(["train.py", "--output_dir", out, *flags, "--epochs", epochs], tmp_path / log, STFPM)
        assert r.returncode == 0, r.stdout[-3000:]
    r = _launch(["train.py", "--output_dir", resumed, *flags, "--epochs", 2, "--resume"], tmp_path / "l3", STFPM)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "resumed after epoch 1" in (resumed / "brick" / "train.log").read_text()
    (_, a), (_, b) = _student(straight / "brick" / "model.pdparams"), _student(resumed / "brick" / "model.pdparams")
    assert np.linalg.norm(a - b) <= 1e-5 * np.linalg.norm(a)


@pytest.mark.slow
def test_kdad_data_parallel_is_the_single_process_global_batch(data, tmp_path):
    """KDAD's cloner (batch norm after its convolutions) under 2 processes vs one. Adam moves every
    weight by about the learning rate whatever the gradient's size, so float noise in near-zero
    gradients is not damped: compared at lr 1e-5, where the cloners agree to ~5e-6 after 5 steps."""
    from adcommon.checkpoint import load_checkpoint
    kdad = os.path.join(ROOT, "KDAD-Paddle")
    flags = ["--data_dir", data, "--category", "brick", "--pretrained", "none", "--image_size", 64, "--batch_size", 4,
             "--epochs", 1, "--lr", 1e-5]
    r = subprocess.run([sys.executable, "train.py", "--output_dir", tmp_path / "one", "--compile", "False",
                        *map(str, flags)], cwd=kdad, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = _launch(["train.py", "--output_dir", tmp_path / "two", *flags], tmp_path / "log", kdad)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    one, two = (load_checkpoint(str(tmp_path / d / "brick" / "model.pdparams"), "kdad") for d in ("one", "two"))
    keys = sorted(k for k in one["state_dict"] if k.startswith("cloner"))
    a, b = (np.concatenate([np.asarray(c["state_dict"][k], np.float64).ravel() for k in keys]) for c in (one, two))
    assert np.linalg.norm(a - b) <= 1e-4 * np.linalg.norm(a)
    assert abs(one["train"]["history"][0]["loss"] - two["train"]["history"][0]["loss"]) <= 1e-5 * 3
    assert abs(one["threshold"] - two["threshold"]) <= 1e-4 * abs(one["threshold"])
    assert two["train"]["processes"] == 2


def _alone_and_launched(script, tmp_path):
    """tests/<script> OUT.npz run by one process and by two under the launcher: the two npz files."""
    script = os.path.join(ROOT, "tests", script)
    r = subprocess.run([sys.executable, script, tmp_path / "one.npz"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = _launch([script, tmp_path / "two.npz"], tmp_path / "log", ROOT)
    assert r.returncode == 0, r.stdout[-3000:]
    return np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")


@pytest.mark.slow
def test_synchronised_batch_norm_on_cpu_is_the_global_batch(tmp_path):
    """The CPU batch norm over processes (Paddle has no sync_batch_norm kernel there): 2 processes with
    3 images each give one process's gradients and running statistics on all 6 (float rounding)."""
    one, two = _alone_and_launched("dist_sync_bn.py", tmp_path)
    for key in ("grads", "stats"):
        assert np.abs(one[key] - two[key]).max() <= 1e-5 * np.abs(one[key]).max(), key


@pytest.mark.slow
def test_cutpaste_sspcab_data_parallel_is_the_single_process_global_batch(tmp_path):
    """Two updates of sspcab.engine.train (ResNet-18, random start, batch 4 x 3 views, SSPCAB) in two
    processes against one, in float64: in float32 this network's updates move by ~0.4 % from rounding
    alone (dist_sspcab_step.py), so only float64 can tell a wrong step from noise. Measured: the weight
    changes agree to 1.9e-7 (the running statistics: Paddle's kernel keeps the momentum in float32) and
    the losses to 1e-15; without synchronised batch norm they differ by 120 %."""
    one, two = _alone_and_launched("dist_sspcab_step.py", tmp_path)
    assert int(one["_world"]) == 1 and int(two["_world"]) == 2
    np.testing.assert_allclose(one["_loss"], two["_loss"], rtol=1e-9)
    keys = sorted(k for k in one.files if not k.startswith("_"))
    a, b = (np.concatenate([f[k].ravel() for k in keys]) for f in (one, two))
    assert np.linalg.norm(a) > 0 and np.linalg.norm(a - b) <= 1e-5 * np.linalg.norm(a)


@pytest.mark.slow
def test_cutpaste_sspcab_trains_under_the_launcher_and_rank_0_writes(data, tmp_path):
    sspcab = os.path.join(ROOT, "SSPCAB-Paddle")
    r = _launch(["train.py", "--data_dir", data, "--category", "brick", "--output_dir", tmp_path / "two",
                 "--pretrained", "none", "--image_size", 128, "--batch_size", 4, "--steps", 2, "--log_interval", 1],
                tmp_path / "log", sspcab)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    from adcommon.checkpoint import load_checkpoint
    ck = load_checkpoint(str(tmp_path / "two" / "brick" / "model.pdparams"), "sspcab")
    assert ck["train"]["processes"] == 2 and ck["threshold"] is not None
    log = (tmp_path / "two" / "brick" / "train.log").read_text()
    assert "data parallel over 2 processes: global batch 4, 2 images per process" in log
    assert log.count("step 2/2 loss") == 1      # rank 0 alone logs and writes
    assert sorted(os.listdir(tmp_path / "two" / "brick")) == [".adsuite.json", "args.yml", "model.pdparams",
                                                               "train.log"]
