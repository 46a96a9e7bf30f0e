"""Benchmark helpers: FLOPs of a network, the machine's matrix-multiply rate, time per call, and the
speed of an exported model with its post-processing (scripts/benchmark.py and each folder's bench.py).
The auto_log-format timing logger is adcommon.deploy.autolog."""
import time

import numpy as np


def count_flops(layer, input_shape):
    """Floating-point operations (2 x multiply-adds) of conv and linear layers in one forward of
    ``layer`` on a float32 input of ``input_shape`` (batch included). Element-wise ops are ignored:
    they are not what a matrix-multiply peak measures."""
    import paddle
    import paddle.nn as nn
    total = [0]

    def conv_hook(m, inp, out):
        cin = inp[0].shape[1]
        kh, kw = m._kernel_size
        n, cout, h, w = out.shape
        total[0] += 2 * n * cout * h * w * (cin // m._groups) * kh * kw

    def linear_hook(m, inp, out):
        total[0] += 2 * int(np.prod(out.shape)) * m.weight.shape[0]

    hooks = []
    for sub in layer.sublayers(include_self=True):
        if isinstance(sub, nn.Conv2D):
            hooks.append(sub.register_forward_post_hook(conv_hook))
        elif isinstance(sub, nn.Linear):
            hooks.append(sub.register_forward_post_hook(linear_hook))
    was_training = layer.training
    layer.eval()
    with paddle.no_grad():
        layer(paddle.zeros(list(input_shape), "float32"))
    for h in hooks:
        h.remove()
    if was_training:
        layer.train()
    return int(total[0])


def gemm_flops_per_s(n=2048, repeats=10):
    """The machine's float32 matrix-multiply rate (numpy/BLAS, all cores): best of ``repeats``
    (the best run is the least disturbed by other processes; a loaded machine still reads low)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.T.copy()
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2.0 * n ** 3 / best


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_per_call(fn, repeats=5, warmup=1):
    """Median seconds of ``fn()`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    return float(np.median([_timed(fn) for _ in range(repeats)]))


def predictor_speed(pred, x, spec, repeats=5, warmup=1):
    """(images/s of ``pred.run(x)``, post-processing time as a share of it) for an exported model:
    the predictor's median time per batch, then adcommon.evaluate.maps.postprocess on its outputs."""
    from adcommon.evaluate.maps import postprocess
    t_inf = time_per_call(lambda: pred.run(x), repeats=repeats, warmup=warmup)
    outs = pred.run(x)
    t_post = time_per_call(lambda: postprocess(outs, spec), repeats=3, warmup=1)
    return len(x) / t_inf, t_post / t_inf


def train_scaling(folder, method, flags, schedule, what, n):
    """Training images/s of the paper folder ``folder``'s train.py with 1 process and with 2 (data
    parallel, paddle.distributed.launch, global batch 8) on the same ``n`` synthetic 128 px images
    (train.py's own measurement, in its checkpoint): one row of the scale-out table. ``flags``: the
    architecture, ``schedule``: --epochs / --steps, ``what``: the schedule in words."""
    import os
    import subprocess
    import tempfile

    from adcommon.distributed import launch_command
    from shared_data.synthetic import generate
    speed = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        generate(data, ["brick"], seed=0, image_size=128, n_train=n, n_test_good=1, n_test_defect=1)
        for k in (1, 2):
            out = os.path.join(tmp, f"out{k}")
            launch, env = launch_command(k, os.path.join(tmp, f"log{k}"))
            cmd = launch + ["train.py", "--data_dir", data, "--category", "brick", "--output_dir", out,
                            "--batch_size", "8"] + list(schedule) + list(flags)
            r = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=env)
            if r.returncode != 0:
                raise RuntimeError((r.stdout + r.stderr)[-800:])
            from adcommon.pdfile import load as _load
            speed[k] = _load(os.path.join(out, "brick", "model.pdparams"))["train"]["train_images_per_s"]
    return [{"method": method, "what": f"training, {' '.join(flags[:2])} 128 px, global batch 8, {what}",
             "value": f"{speed[1]:.3g} / {speed[2]:.3g} img/s",
             "note": f"1 / 2 processes (x{speed[2] / speed[1]:.2f}) on {os.cpu_count()} cores"}]
