"""PaDiM's fit shared by two CPU processes (gloo) under `python -m paddle.distributed.launch` is the
single-process model, and only rank 0 writes."""
import os
import subprocess
import sys

import numpy as np
import pytest

from adcommon.tools.testing import distributed_data, launch

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the paper folder


@pytest.mark.slow
def test_padim_fit_on_two_processes_is_the_single_process_model(tmp_path_factory, tmp_path):
    data = distributed_data(tmp_path_factory)
    from adcommon.checkpoint import load_checkpoint
    flags = ["--data_dir", data, "--category", "brick", "--pretrained", "none", "--image_size", 64,
             "--batch_size", 4]
    r = subprocess.run([sys.executable, "train.py", "--output_dir", tmp_path / "one", *map(str, flags)], cwd=HERE,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = launch(["train.py", "--output_dir", tmp_path / "two", *flags], tmp_path / "log", HERE)
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
