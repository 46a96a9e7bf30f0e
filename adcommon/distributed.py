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

from adbase import UserError

__all__ = ["launched", "init", "rank", "world_size", "is_main", "all_sum", "all_gather", "gather_shares", "barrier",
           "shard", "launch_command", "batch_share", "data_parallel", "broadcast_parameters", "all_sum_gradients",
           "backward_share", "check_finite_loss", "sync_batch_norm"]

_STATE = {"ready": False}


def launch_command(nproc, log_dir, python=sys.executable):
    """The command prefix that runs a script in ``nproc`` processes on this machine (the launcher's
    logs in ``log_dir``), or plain ``python`` for one; and the environment that gives each process its
    share of the cores. Returns (argv prefix, env)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // nproc)))
    if nproc == 1:
        return [python], env
    return [python, "-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc), "--log_dir",
            str(log_dir)], env


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


def gather_shares(n, mine, values):
    """The (n,) array whose items ``mine`` (this process's share, see shard) are ``values``, filled with
    every process's share: the same array on every process."""
    out = np.zeros(n, np.asarray(values).dtype)
    for where, vals in all_gather((list(mine), np.asarray(values))):
        out[where] = vals
    return out


def barrier(what="waiting for the other processes"):
    if world_size() > 1:
        import paddle.distributed as dist
        with _Watchdog(what):
            dist.barrier()


def shard(n):
    """This process's share of items 0..n-1: rank, rank + world, ... (every item in exactly one share)."""
    return list(range(rank(), n, world_size()))


# ----------------------------------------------------------------------------- data-parallel training


def batch_share(idx):
    """(this process's items of the global batch ``idx``, their weight in the batch's mean loss): items
    rank, rank + world, ...; a batch smaller than the number of processes is done whole by each,
    weighted 1 / processes. One process: (idx, 1.0)."""
    world = world_size()
    if world == 1:
        return idx, 1.0
    if len(idx) < world:
        return idx, 1.0 / world
    share = idx[rank()::world]
    return share, len(share) / len(idx)


def data_parallel(layer, batch_size, compiled, log, name="student", sync_bn=True):
    """Make ``layer`` (the trained network) ready for data-parallel training when several processes run:
    rank 0's weights everywhere, batch norm over the global batch (``sync_bn``; else over each process's
    share, as PyTorch's DistributedDataParallel does by default). Returns whether the compiled training
    step may be used (not under the launcher: the static graph has no synchronised batch norm)."""
    world = world_size()
    if world == 1:
        return compiled
    if compiled:
        log(f"data-parallel training runs the {name} eagerly")
    if sync_bn:
        sync_batch_norm(layer)
    broadcast_parameters(layer)
    log(f"data parallel over {world} processes: global batch {batch_size}, {-(-batch_size // world)} images per "
        f"process, batch norm over {'the global batch' if sync_bn else 'each process share'}")
    return False


def broadcast_parameters(layer):
    """Every process starts from rank 0's weights and buffers (whatever each one initialised)."""
    if world_size() == 1:
        return layer
    import paddle
    import paddle.distributed as dist
    with _Watchdog("copying rank 0's weights"), paddle.no_grad():
        for t in list(layer.parameters()) + list(layer.buffers()):
            dist.broadcast(t, src=0)
    return layer


def all_sum_gradients(parameters):
    """Add every process's gradients (each process's loss is its share of the global batch's loss, so
    the sum is the global batch's gradient). Parameters outside the graph (no gradient: the same ones in
    every process, which all run the same graph) are left alone, as the optimizer leaves them."""
    if world_size() == 1:
        return
    import paddle
    import paddle.distributed as dist
    with _Watchdog("adding the gradients"), paddle.no_grad():
        for p in parameters:
            if not p.stop_gradient and p.grad is not None:
                dist.all_reduce(p.grad)


def check_finite_loss(loss):
    """Stop a diverged training (a NaN or infinite loss: too large a --lr, a broken image) with one line,
    before its backward: NaN weights are never saved, and native kernels never see NaN gradients (KDAD's
    once crashed with 'double free or corruption' and hung)."""
    import math
    value = float(loss)
    if not math.isfinite(value):
        raise UserError(f"training diverged: the loss is {value} (lower --lr, or check the images and "
                        "settings); model.pdparams is not written")


def backward_share(loss, weight, parameters, backward=None):
    """The backward of one training step on this process's share of the global batch (``weight``: its part
    of the batch's mean loss, batch_share), then the gradients added over the processes: every process
    holds the global batch's gradient. One process: the plain backward of ``loss``. ``backward``: the
    function that runs it (a compiled step's own), else ``loss.backward()``."""
    check_finite_loss(loss)
    run = backward or (lambda t: t.backward())
    run(loss * weight if world_size() > 1 else loss)
    all_sum_gradients(parameters)


def _all_sum_tensor(t):
    import paddle.distributed as dist
    with _Watchdog("batch-norm statistics"):
        dist.all_reduce(t)
    return t


def _sync_bn_function():
    from paddle.autograd import PyLayer

    class SyncBatchNormFunction(PyLayer):
        """Batch norm with the global batch's (every process's share) mean and inverse standard deviation,
        computed beforehand; backward uses the global sums of dy and dy * x_hat, as one process on the
        whole batch would. The weight and bias gradients stay local: all_sum_gradients adds them."""

        @staticmethod
        def forward(ctx, x, weight, bias, mean, inv_std, n):
            shape = [1, -1] + [1] * (x.ndim - 2)   # (N, C) or (N, C, H, W): statistics per channel
            x_hat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
            ctx.save_for_backward(x_hat, inv_std, weight)
            ctx.n = n
            return x_hat * weight.reshape(shape) + bias.reshape(shape)

        @staticmethod
        def backward(ctx, dy):
            import paddle
            x_hat, inv_std, weight = ctx.saved_tensor()
            n, axes, shape = ctx.n, [0] + list(range(2, dy.ndim)), [1, -1] + [1] * (dy.ndim - 2)
            d_bias = dy.sum(axis=axes)
            d_weight = (dy * x_hat).sum(axis=axes)
            g = _all_sum_tensor(paddle.concat([d_bias, d_weight]))
            c = d_bias.shape[0]
            g_bias, g_weight = g[:c].reshape(shape), g[c:].reshape(shape)
            dx = (weight * inv_std).reshape(shape) / n * (n * dy - g_bias - x_hat * g_weight)
            return dx, d_weight, d_bias, None, None

    return SyncBatchNormFunction


def sync_batch_norm(layer):
    """The batch-norm layers (1D, 2D, 3D) of ``layer`` normalise over the global batch in training: Paddle's
    SyncBatchNorm on GPUs; on CPU (where Paddle has no sync_batch_norm kernel) the same computation with
    all_reduce in forward and backward. Parameter and buffer names are kept, so checkpoints are the
    single-process ones. No-op for one process."""
    if world_size() == 1:
        return layer
    import types

    import paddle
    if paddle.device.get_device().startswith("gpu"):
        return paddle.nn.SyncBatchNorm.convert_sync_batchnorm(layer)
    fn = _sync_bn_function()

    kinds = (paddle.nn.BatchNorm1D, paddle.nn.BatchNorm2D, paddle.nn.BatchNorm3D)

    def forward(bn, x):
        if not bn.training:
            return type(bn).forward(bn, x)
        axes, shape = [0] + list(range(2, x.ndim)), [1, -1] + [1] * (x.ndim - 2)
        with paddle.no_grad():   # the global batch's mean and biased variance (two passes, as one process)
            count = paddle.to_tensor([float(np.prod([x.shape[a] for a in axes]))], dtype=x.dtype)
            total = _all_sum_tensor(paddle.concat([x.sum(axis=axes), count]))
            n = float(total[-1])
            mean = total[:-1] / n
            var = _all_sum_tensor((x - mean.reshape(shape)).pow(2).sum(axis=axes)) / n
            inv_std = 1.0 / paddle.sqrt(var + bn._epsilon)
            m = bn._momentum   # running statistics as paddle's BatchNorm2D updates them
            bn._mean.set_value(bn._mean * m + mean * (1 - m))
            bn._variance.set_value(bn._variance * m + var * (1 - m))
        return fn.apply(x, bn.weight, bn.bias, mean, inv_std, n)

    for sub in layer.sublayers(include_self=True):
        if isinstance(sub, kinds):
            sub.forward = types.MethodType(forward, sub)
    return layer
