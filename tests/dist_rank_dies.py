"""Run under paddle.distributed.launch by tests/test_distributed.py: rank 1 is killed (SIGKILL) while
rank 0 waits in a collective, as when a machine or process is lost mid-run."""
import os
import signal
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import paddle  # noqa: E402

from adcommon import distributed  # noqa: E402

paddle.set_device("cpu")
rank, world = distributed.init()
distributed.all_sum(np.ones(4, np.float64))          # both ranks alive: this returns
if rank == 1:
    os.kill(os.getpid(), signal.SIGKILL)
distributed.all_sum(np.ones(4, np.float64))          # rank 0 waits here for a rank that has gone
print("error: the collective returned without rank 1", file=sys.stderr)
sys.exit(0)
