"""KDAD benchmarks (run by scripts/benchmark.py; nothing here is a test).

    python bench.py [--quick]
Rows: training images/s (the reference's step, the expert's features cached, and the compiled cloner),
exported-predictor throughput at batch 1 and 8 for the gradient graph
(oneDNN off: it cannot run it) and the discrepancy graph (oneDNN on/off), post-processing share and
hardware share (conv FLOPs x images/s / measured float32 GEMM rate). The expert is random: weights do
not change the speed.
"""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

S = 128  # the paper's input size


def _model():
    import paddle

    from kdad.model import KDAD, Architecture
    paddle.seed(0)
    return KDAD(Architecture("vgg16", S), "none")


def training_speed(quick=False):
    """Images/s of the cloner's Adam step on a batch (paper batch 64; quick: 16), three ways: the
    reference's (expert run every step, eager), the expert's features cached, and both with the
    compiled cloner (engine.train's default on a CPU). GFLOP per image counted the same for all:
    expert forward + cloner forward and backward (~2 x forward)."""
    import paddle

    from adcommon.method.compiled import CompiledForward, available
    from adcommon.tools.benchmark import count_flops, time_per_call
    from kdad.engine import expert_targets
    from kdad.loss import distill_loss
    from kdad.model import TRAIN_LAYERS
    bs = 16 if quick else 64
    model = _model()
    flops = count_flops(model.expert, [1, 3, S, S]) + 3 * count_flops(model.cloner, [1, 3, S, S])
    opt = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.cloner.parameters())
    x_np = np.random.default_rng(0).random((bs, 3, S, S)).astype(np.float32)
    x = paddle.to_tensor(x_np)
    targets = [paddle.to_tensor(t) for t in expert_targets(model, x_np, bs)]
    model.cloner.train()

    def step(fwd, cached):
        outs = fwd(x)
        pred = [outs[k] for k in TRAIN_LAYERS]
        if cached:
            real = targets
        else:
            with paddle.no_grad():
                real = model.expert(x)
        loss = distill_loss(pred, real, model.lamda)
        fwd.backward(loss)
        opt.step()
        opt.clear_grad()

    eager = CompiledForward(model.cloner, enabled=False)
    modes = [("eager, expert every step (reference)", eager, False), ("eager, expert cached", eager, True)]
    if available():
        modes.append(("compiled cloner, expert cached", CompiledForward(model.cloner, enabled=True), True))
    rows = []
    for mode, fwd, cached in modes:
        t = time_per_call(lambda: step(fwd, cached), repeats=2 if quick else 5, warmup=1)
        base = {"method": "KDAD", "backbone": "vgg16 expert + cloner B", "image_size": S, "batch_size": bs,
                "mode": mode}
        rows.append(dict(base, name="train_images_per_s", value=round(bs / t, 2), unit="img/s"))
        rows.append(dict(base, name="train_gflop_per_image", value=round(flops / 1e9, 3), unit="GFLOP/image"))
    return rows


def predictor_throughput(quick=False):
    """Exported KDAD through Paddle Inference: images/s for both maps, batch 1 and 8."""
    from adcommon.deploy.export import export_inference
    from adcommon.deploy.predictor import Predictor
    from adcommon.tools.benchmark import count_flops, gemm_flops_per_s, predictor_speed
    from kdad import engine
    rows = []
    gemm = gemm_flops_per_s()
    model = _model()
    model.eval()
    fwd = count_flops(model.expert, [1, 3, S, S]) + count_flops(model.cloner, [1, 3, S, S])
    ck = {"model_args": dict(model.model_args), "threshold": 1.0}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, onednn in (("gradients", [False]), ("discrepancy", [False, True])):
            model.deploy_map = kind
            d = os.path.join(tmp, kind)
            engine.LocalizationRun(kind).configure(ck)
            export_inference(model, d, [None, 3, S, S], engine.deploy_meta(ck))
            # the gradient graph runs the forward, then the backward of both networks (~2x the forward)
            flops = fwd * (3 if kind == "gradients" else 1)
            spec = engine.postprocess_spec(kind, S)
            for bs in (1, 8):
                x = np.random.default_rng(0).random((bs, 3, S, S)).astype(np.float32)
                for mkl in onednn:
                    pred = Predictor(d, use_mkldnn=mkl)  # threads: adcommon.cli.cpu_threads()
                    ips, post = predictor_speed(pred, x, spec, repeats=2 if quick else 5)
                    rows.append({"method": "KDAD",
                                 "what": f"predictor {kind} map, {S}px, batch {bs}, oneDNN {'on' if mkl else 'off'}",
                                 "value": f"{ips:.2f} img/s",
                                 "note": f"post-processing {100 * post:.1f} % of inference; "
                                         f"hardware share {100 * flops * ips / gemm:.0f} %"})
    rows.append({"method": "KDAD", "what": f"VGG-16 expert + cloner B forward at {S}px",
                 "value": f"{fwd / 1e9:.2f} GFLOP", "note": f"float32 GEMM rate {gemm / 1e9:.0f} GFLOP/s"})
    return rows


def scaling(quick=False):
    """The scale-out row (scripts/benchmark.py): training images/s with 1 and 2 processes, eager (the
    compiled step does not run under the launcher)."""
    from adcommon.tools.benchmark import train_scaling
    n, epochs = (24, 1) if quick else (64, 2)
    flags = ["--backbone", "efficientnet_lite0", "--image_size", "128", "--compile", "False"]
    return train_scaling(HERE, "KDAD", flags, ["--epochs", str(epochs)], f"{n} images x {epochs} epochs, eager", n)


def run(quick=False):
    from adcommon import cli
    cli.set_device("cpu")  # every core, as the scripts
    return training_speed(quick) + predictor_throughput(quick)


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        what = r.get("what") or f"{r['name']} ({r['mode']}, batch {r['batch_size']})"
        print(f"{what:<75} {r['value']!s:>12} {r.get('unit', '')}  {r.get('note', '')}")
