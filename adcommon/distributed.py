"""Several processes, one job: the same train.py under `python -m paddle.distributed.launch` (collective
mode: gloo on CPU, NCCL on GPUs; --nproc_per_node, --gpus, --nnodes/--master). One process alone is
rank 0 of 1, and every helper here is then a no-op, so the scripts read the same either way.

Rank 0 alone writes files (checkpoints, logs, pictures, metrics); the others compute their share and
take part in the reductions. A collective that waits longer than ``ADCOMMON_DIST_TIMEOUT`` seconds
(default 600) for a rank that died ends the job with one line instead of hanging forever.
"""
import os
import sys
import threading

import numpy as np

__all__ = ["launched", "init", "rank", "world_size", "is_main", "all_sum", "all_gather", "barrier", "shard"]

_STATE = {"ready": False}


def launched():
    """True when this process was started by paddle.distributed.launch with more than one process."""
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1") or 1) > 1


def init():
    """Join the process group once (no-op for a single process). Returns (rank, world size)."""
    if launched() and not _STATE["ready"]:
        import paddle.distributed as dist
        dist.init_parallel_env()
        _STATE["ready"] = True
    return rank(), world_size()


def rank():
    return int(os.environ.get("PADDLE_TRAINER_ID", "0") or 0) if launched() else 0


def world_size():
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1") or 1) if launched() else 1


def is_main():
    return rank() == 0


class _Watchdog:
    """Ends this process with one line if a collective has not returned within the timeout (a rank died:
    the others would otherwise wait forever). The launcher then stops the job with a non-zero code."""

    def __init__(self, what):
        self.what = what
        self.timeout = float(os.environ.get("ADCOMMON_DIST_TIMEOUT", "600"))
        self.timer = None

    def __enter__(self):
        def fire():
            print(f"error: rank {rank()} of {world_size()} waited {self.timeout:.0f} s for the other processes "
                  f"({self.what}): one of them has stopped; see the launcher's log of each rank", file=sys.stderr,
                  flush=True)
            os._exit(3)
        self.timer = threading.Timer(self.timeout, fire)
        self.timer.daemon = True
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()


def all_sum(array, chunk_rows=None):
    """Sum a numpy array over all processes, in place (float32/float64/int64), ``chunk_rows`` rows of
    the first axis at a time to bound the temporary copies. Returns the array."""
    if world_size() == 1:
        return array
    import paddle
    import paddle.distributed as dist
    a = array if array.ndim else array.reshape(1)
    step = chunk_rows or len(a)
    with _Watchdog(f"summing an array of shape {tuple(array.shape)}"):
        for i in range(0, len(a), step):
            t = paddle.to_tensor(np.ascontiguousarray(a[i:i + step]))
            dist.all_reduce(t)
            a[i:i + step] = t.numpy()
    return array


def all_gather(obj):
    """[obj of rank 0, obj of rank 1, ...] on every process (picklable objects)."""
    if world_size() == 1:
        return [obj]
    import paddle.distributed as dist
    out = []
    with _Watchdog("gathering results"):
        dist.all_gather_object(out, obj)
    return out


def barrier(what="waiting for the other processes"):
    if world_size() > 1:
        import paddle.distributed as dist
        with _Watchdog(what):
            dist.barrier()


def shard(n):
    """This process's share of items 0..n-1: rank, rank + world, ... (every item in exactly one share)."""
    return list(range(rank(), n, world_size()))
