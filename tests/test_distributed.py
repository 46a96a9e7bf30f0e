"""Scale-out on two CPU processes (gloo) under `python -m paddle.distributed.launch`: a lost rank ends
the job fast, one process does nothing different, and the CPU's synchronised batch norm is the global
batch's. Each method's data-parallel training is tested in its folder (tests/test_distributed.py)."""
import os
import time

import numpy as np
import pytest

from adcommon.tools.testing import alone_and_launched, launch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_a_lost_rank_ends_the_job_fast_with_a_nonzero_code(tmp_path):
    t0 = time.time()
    r = launch([os.path.join(ROOT, "tests", "dist_rank_dies.py")], tmp_path / "log", ROOT, timeout=300,
               env={"ADCOMMON_DIST_TIMEOUT": "60"})
    assert r.returncode != 0
    assert "the collective returned without rank 1" not in r.stderr + r.stdout
    assert time.time() - t0 < 120   # the launcher stops rank 0 at once; the watchdog at the latest after 60 s


def test_one_process_is_rank_0_of_1_and_the_helpers_do_nothing():
    from adcommon import distributed as D
    a = np.arange(4.0)
    assert D.init() == (0, 1) and D.is_main() and D.shard(3) == [0, 1, 2]
    assert D.all_sum(a) is a and a.tolist() == [0, 1, 2, 3] and D.all_gather("x") == ["x"]


@pytest.mark.slow
def test_synchronised_batch_norm_on_cpu_is_the_global_batch(tmp_path):
    """The CPU batch norm over processes (Paddle has no sync_batch_norm kernel there): 2 processes with
    3 images each give one process's gradients and running statistics on all 6 (float rounding)."""
    one, two = alone_and_launched(os.path.join(ROOT, "tests", "dist_sync_bn.py"), tmp_path)
    for key in ("grads", "stats"):
        assert np.abs(one[key] - two[key]).max() <= 1e-5 * np.abs(one[key]).max(), key
