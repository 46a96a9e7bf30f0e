"""Speed of STFPM on this machine: training and inference throughput, post-processing share, GFLOPs.

    python bench.py [--quick] [--json bench.json]
``run(quick=False)`` returns a list of rows {"name", "value", "unit", "backbone", "image_size",
"batch_size", "mode", ...}. GFLOPs are counted by adcommon.tools.benchmark.count_flops (conv layers,
teacher + student up to layer3, one image at 256), so throughput x GFLOPs gives the share of the hardware's peak in use.
Timings use random inputs and random weights: speed does not depend on the weights' values.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))                   # stfpm

import numpy as np  # noqa: E402


def _timed(fn, reps):
    from adcommon.tools.benchmark import time_per_call
    return time_per_call(fn, repeats=reps, warmup=1)   # warm-up: allocations, oneDNN primitives


def _row(rows, name, value, unit, **settings):
    rows.append(dict(name=name, value=round(float(value), 4), unit=unit, **settings))


def train_speeds(model, data, batch):
    """Seconds per pass over ``data`` (N, 3, S, S) for each way of training the student."""
    import paddle
    import paddle.nn.functional as F

    from adcommon.method.compiled import CompiledForward, available
    from stfpm.loss import stfpm_loss
    opt = paddle.optimizer.Momentum(learning_rate=0.4, momentum=0.9, parameters=model.student.parameters(),
                                    weight_decay=1e-4)
    n = len(data)
    with paddle.no_grad():
        cache = [np.concatenate(p) for p in zip(*[[F.normalize(t, axis=1).numpy() for t in model.teacher(
            paddle.to_tensor(data[i:i + batch]))] for i in range(0, n, batch)])]

    def epoch(cached, fwd):
        model.train()
        for i in range(0, n, batch):
            x = paddle.to_tensor(data[i:i + batch])
            if cached:
                loss = stfpm_loss([paddle.to_tensor(t[i:i + batch]) for t in cache], fwd(x), teacher_normalized=True)
            else:
                loss = stfpm_loss(*model.features(x))   # teacher and student, every step
            opt.clear_grad()
            fwd.backward(loss) if cached else loss.backward()
            opt.step()

    eager = CompiledForward(model.student, enabled=False)
    out = {"eager, teacher every step (before)": _timed(lambda: epoch(False, eager), 2),
           "eager, teacher cached": _timed(lambda: epoch(True, eager), 2)}
    if available():
        fast = CompiledForward(model.student, enabled=True)
        out["compiled student, teacher cached"] = _timed(lambda: epoch(True, fast), 2)
    return out


def bench_backbone(backbone, image_size, n_train, train_batch, reps, rows):
    import paddle

    from adcommon.deploy.export import export_inference
    from adcommon.deploy.predictor import Predictor
    from adcommon.evaluate.maps import postprocess
    from adcommon.method import contract
    from stfpm import engine
    from stfpm.model import STFPM

    paddle.seed(0)
    model = STFPM(backbone, pretrained="none", image_size=image_size)
    base = {"backbone": backbone, "image_size": image_size, "device": paddle.device.get_device()}
    from adcommon.tools.benchmark import count_flops
    model.eval()
    flops = count_flops(model, [1, 3, 256, 256])   # the paper's input size, whatever the timing size
    macs = flops / 2
    note = f"2 x multiply-adds of the conv layers; GMACs {macs / 1e9:.3f}"
    _row(rows, "gflops_teacher_student_to_layer3", 2 * macs / 1e9, "GFLOP/image",
         **dict(base, image_size=256, mode="analytic", note=note))

    # training, three ways on the same images: the loop before the teacher cache and the compiled
    # student (teacher and student every step, eager), the teacher cached, and both (engine.train's)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((n_train, 3, image_size, image_size)).astype(np.float32)
    for mode, t in train_speeds(model, data, train_batch).items():
        s = dict(base, batch_size=train_batch, mode=mode)
        _row(rows, "train_images_per_s", n_train / t, "img/s", **s)
        # what a step does, counted the same way for every mode: teacher forward + student forward and
        # backward (~2 x forward); the cached mode skips the teacher's share, so it can beat the count
        _row(rows, "train_gflop_per_image", 2 * macs / 1e9 * 2 * (image_size / 256) ** 2, "GFLOP/image",
             **dict(s, note="teacher forward + student forward and backward, counted as 4 forwards"))

    spec = engine.postprocess_spec(image_size)
    run = contract.forward_runner(model)
    with tempfile.TemporaryDirectory() as d:
        export_inference(model, os.path.join(d, "inference"), [None, 3, image_size, image_size],
                         contract.bind(engine).deploy_meta({"model_args": dict(model.model_args, postprocess=spec)}))
        runners = {"dygraph": run}
        for mk in (False, True):
            p = Predictor(os.path.join(d, "inference"), use_mkldnn=mk)  # threads: cli.cpu_threads()
            runners[f"predictor_onednn_{'on' if mk else 'off'}"] = p.run
        for bs in (1, 8):
            x = data[:bs] if len(data) >= bs else \
                rng.standard_normal((bs, 3, image_size, image_size)).astype(np.float32)
            for mode, fn in runners.items():
                t_model = _timed(lambda: fn(x), reps)
                out = fn(x)
                t_post = _timed(lambda: postprocess(out, spec), reps)
                s = dict(base, batch_size=bs, mode=mode)
                _row(rows, "infer_images_per_s", bs / (t_model + t_post), "img/s", **s)
                _row(rows, "model_ms_per_image", 1000 * t_model / bs, "ms", **s)
                _row(rows, "postprocess_share", t_post / (t_model + t_post), "fraction", **s)


def scaling(quick=False):
    """The scale-out row (scripts/benchmark.py): training images/s with 1 and 2 processes, eager (the
    compiled step does not run under the launcher)."""
    from adcommon.tools.benchmark import train_scaling
    n, epochs = (24, 1) if quick else (64, 2)
    flags = ["--backbone", "resnet18", "--pretrained", "none", "--image_size", "128", "--compile", "False"]
    return train_scaling(os.path.dirname(os.path.abspath(__file__)), "STFPM", flags, ["--epochs", str(epochs)],
                         f"{n} images x {epochs} epochs, eager", n)


def run(quick=False):
    """Benchmark rows (see module docstring). quick: ResNet-18 only, 64 px, 4 images, 1 repetition."""
    import paddle

    from adcommon import cli
    cli.set_device("cpu")  # every core, as the scripts
    cli.set_seed(0)
    rows = []
    if quick:
        bench_backbone("resnet18", 64, n_train=4, train_batch=4, reps=1, rows=rows)
    else:
        bench_backbone("resnet18", 256, n_train=32, train_batch=32, reps=3, rows=rows)   # the paper's setting
        bench_backbone("efficientnet_lite0", 256, n_train=32, train_batch=32, reps=3, rows=rows)
        bench_backbone("efficientnet_lite0", 128, n_train=32, train_batch=8, reps=3, rows=rows)  # quick start
    for r in rows:
        r.update(threads=cli.cpu_threads(), paddle=paddle.__version__)
    return rows


def main(argv=None):
    from adbase import ArgumentParser
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args(argv)
    rows = run(args.quick)
    for r in rows:
        extra = f"bs {r.get('batch_size', '-')}, {r['mode']}"
        print(f"{r['backbone']:<18} {r['image_size']:>4}px {r['name']:<34} {r['value']:>10.4f} {r['unit']:<12} {extra}")
    if args.json:
        from adcommon.files import save_json
        save_json(args.json, rows)
    return 0


if __name__ == "__main__":
    from adcommon.cli import run_cli
    run_cli(main)
