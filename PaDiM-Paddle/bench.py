"""PaDiM benchmarks (run by scripts/benchmark.py; nothing here is a test).

    python bench.py [--quick]
Rows: fit peak memory for 100 vs 400 training images, batched Mahalanobis vs the reference's
per-position loop, exported-predictor throughput (batch 1/8, oneDNN on/off), post-processing share,
and the hardware share (backbone FLOPs x images/s / measured float32 GEMM rate).
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402


def _fit_peak_mb(data_dir, out, backbone="resnet18", holdout_ratio=0):
    r = subprocess.run([sys.executable, os.path.join(HERE, "train.py"), "--data_dir", data_dir, "--category", "brick",
                        "--output_dir", out, "--backbone", backbone, "--pretrained", "none",
                        "--holdout_ratio", str(holdout_ratio)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-500:])

    from adcommon import pdfile
    ck = pdfile.load(os.path.join(out, "brick", "model.pdparams"))
    return ck["fit"]["peak_rss_mb"], ck["fit"]["fit_seconds"]


def fit_memory(quick=False):
    from shared_data.synthetic import generate
    sizes = (20, 80) if quick else (100, 400)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        peaks = {}
        for n in sizes:
            root = os.path.join(tmp, f"n{n}")
            generate(root, ["brick"], seed=0, n_train=n, n_test_good=1, n_test_defect=1)
            peaks[n], secs = _fit_peak_mb(root, os.path.join(tmp, f"out{n}"))
            rows.append({"method": "PaDiM", "what": f"fit peak RSS, R18 d=100, {n} train images",
                         "value": f"{peaks[n]:.0f} MB", "note": f"fit {secs:.1f} s"})
        a, b = peaks[sizes[0]], peaks[sizes[1]]
        rows.append({"method": "PaDiM", "what": f"fit memory growth {sizes[0]} -> {sizes[1]} images",
                     "value": f"{100 * (b - a) / a:+.1f} %", "note": "goal: within 15 % (flat in N)"})
        if not quick:
            # The paper's best configuration: 3136 Gaussians of dim 550 (one (P, d, d) float32 array is 3.8 GB).
            root = os.path.join(tmp, "wrn")
            generate(root, ["brick"], seed=0, n_train=40, n_test_good=1, n_test_defect=1)
            peak, secs = _fit_peak_mb(root, os.path.join(tmp, "outwrn"), "wide_resnet50_2", 0.2)
            rows.append({"method": "PaDiM", "what": "fit peak RSS, Wide-ResNet-50 d=550, 40 train images (8 held out)",
                         "value": f"{peak / 1024:.1f} GB", "note": f"fit {secs:.0f} s (two float64 inversions)"})
    return rows


def scaling(quick=False, processes=(1, 2)):
    """PaDiM's fit (R18 d=100, 256 -> crop 224, random init) on the same images with 1 and N processes
    under paddle.distributed.launch: wall time of the whole train.py, the fit's own time, and each
    process's peak memory."""
    import time

    from adcommon.distributed import launch_command
    from shared_data.synthetic import generate
    n = 40 if quick else 160
    rows, base = [], None
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "data")
        generate(root, ["brick"], seed=0, n_train=n, n_test_good=1, n_test_defect=1)
        for k in processes:
            out = os.path.join(tmp, f"out{k}")
            flags = ["--data_dir", root, "--category", "brick", "--output_dir", out, "--pretrained", "none",
                     "--crop_size", "224"]
            launch, env = launch_command(k, os.path.join(tmp, f"log{k}"))
            t0 = time.perf_counter()
            r = subprocess.run(launch + [os.path.join(HERE, "train.py")] + flags, cwd=HERE, capture_output=True,
                               text=True, env=env)
            wall = time.perf_counter() - t0
            if r.returncode != 0:
                raise RuntimeError((r.stdout + r.stderr)[-800:])
            from adcommon import pdfile
            fit = pdfile.load(os.path.join(out, "brick", "model.pdparams"))["fit"]
            peaks = fit.get("peak_rss_mb_per_process") or [fit["peak_rss_mb"]]
            base = base or fit["fit_seconds"]
            rows.append({"method": "PaDiM", "what": f"fit, R18 d=100 at 224, {n} images, {k} process(es) "
                                                    f"on {os.cpu_count()} cores",
                         "value": f"{fit['fit_seconds']:.1f} s",
                         "note": f"x{base / fit['fit_seconds']:.2f} vs 1 process; train.py {wall:.1f} s; peak RSS "
                                 f"per process {', '.join(f'{v:.0f}' for v in peaks)} MB"})
    return rows


def _reference_loop(cov, mean, emb, n_pos):
    """The reference as the original code runs it: the covariance kept as a float64 (d, d, P) array, and
    for each of the first ``n_pos`` positions np.linalg.inv, then scipy's mahalanobis for each image.
    (distances (N, n_pos), seconds)."""
    import time

    from scipy.spatial.distance import mahalanobis
    cov_ref = np.ascontiguousarray(cov.astype(np.float64).transpose(1, 2, 0))   # (d, d, P)
    mean_ref = np.ascontiguousarray(mean.T)                                     # (d, P)
    t0 = time.perf_counter()
    ref = np.empty((len(emb), n_pos))
    for p in range(n_pos):
        inv = np.linalg.inv(cov_ref[:, :, p])
        ref[:, p] = [mahalanobis(sample[:, p], mean_ref[:, p], inv) for sample in emb]
    return ref, time.perf_counter() - t0


def _exported_scoring(model, emb, quick):
    """The scoring part of the deployed graph (the same PaDiM.distance code and buffers) exported and run
    through Paddle Inference with oneDNN: (distances (N, P), seconds per call)."""
    import paddle

    from adcommon import cli
    from adcommon.deploy.export import export_inference
    from adcommon.deploy.predictor import Predictor
    from adcommon.tools.benchmark import time_per_call
    from padim.model import PaDiM

    class Scorer(paddle.nn.Layer):
        def __init__(self, m):
            super().__init__()
            self.grid = m.grid
            self.register_buffer("mean", m.mean)
            self.register_buffer("inv_cov", m.inv_cov)

        def forward(self, x):
            return PaDiM.distance(self, x)

    n_img, d, P = emb.shape
    with tempfile.TemporaryDirectory() as tmp:
        export_inference(Scorer(model), os.path.join(tmp, "inference"), [None, d, P], {"method": "padim"},
                         input_name="embedding")
        pred = Predictor(os.path.join(tmp, "inference"), use_mkldnn=True, cpu_threads=cli.cpu_threads(),
                         check=False)  # a scoring graph over embeddings, not an image model
        t_graph = time_per_call(lambda: pred.run(emb), repeats=5 if quick else 15, warmup=2)
        return pred.run(emb)[0].reshape(n_img, P), t_graph


def scoring_speed(quick=False):
    """In-graph Mahalanobis (eager, and exported through Paddle Inference) vs the reference's loop
    (np.linalg.inv + scipy mahalanobis per position, as the original code scores a test set)."""
    import paddle

    from adcommon import cli
    from adcommon.tools.benchmark import time_per_call
    from padim.model import PaDiM

    cli.set_device("cpu")                             # as val.py: every core for Paddle's math library
    rng = np.random.default_rng(0)
    model = PaDiM("resnet18", pretrained="none", image_size=256, crop_size=224)
    model.eval()
    P, d = model.mean.shape
    n_img = 8
    a = rng.standard_normal((P, d, 2 * d)).astype(np.float32)
    cov = (a @ a.transpose(0, 2, 1) / (2 * d) + 0.01 * np.eye(d, dtype=np.float32)).astype(np.float32)
    mean = rng.standard_normal((P, d)).astype(np.float32)
    emb = rng.standard_normal((n_img, d, P)).astype(np.float32)
    model.mean.set_value(paddle.to_tensor(mean))
    model.inv_cov.set_value(paddle.to_tensor(np.linalg.inv(cov.astype(np.float64)).astype(np.float32)))
    # The loop runs first: Paddle's math-library threads, once started, would compete with it.
    n_pos = 300 if quick else P                       # --quick times a share of the positions and scales up
    ref, t_loop = _reference_loop(cov, mean, emb, n_pos)
    t_loop *= P / n_pos
    e = paddle.to_tensor(emb)
    with paddle.no_grad():
        t_eager = time_per_call(lambda: model.distance(e).numpy(), repeats=5 if quick else 15, warmup=2)
        eager = model.distance(e).numpy().reshape(n_img, P)
    graph, t_graph = _exported_scoring(model, emb, quick)
    diff = max(float(np.abs(eager[:, :n_pos] - ref).max()), float(np.abs(graph[:, :n_pos] - ref).max()))
    what = f"Mahalanobis, {n_img} images x {P} positions, d={d}"
    return [{"method": "PaDiM", "what": f"{what}: reference loop (np.linalg.inv + scipy per position)",
             "value": f"{1000 * t_loop:.0f} ms",
             "note": "as the original code scores a test set (float64 covariance, inverted at test time)"},
            {"method": "PaDiM", "what": f"{what}: batched matmul, eager Paddle (val.py)",
             "value": f"{1000 * t_eager:.1f} ms",
             "note": f"{t_loop / t_eager:.0f}x faster than the loop; max |diff| {diff:.1e}", "max_abs_diff": diff},
            {"method": "PaDiM", "what": f"{what}: same graph exported, Paddle Inference + oneDNN (infer.py)",
             "value": f"{1000 * t_graph:.1f} ms",
             "note": f"{t_loop / t_graph:.0f}x faster than the loop (goal >= 50x)"}]


def predictor_throughput(quick=False):
    """Exported R18 PaDiM through Paddle Inference: images/s, post-processing share, hardware share."""
    import paddle

    from adcommon.deploy.export import export_inference
    from adcommon.deploy.predictor import Predictor
    from adcommon.method import contract
    from adcommon.tools.benchmark import count_flops, gemm_flops_per_s, predictor_speed
    from padim import engine
    from padim.model import PaDiM
    rows = []
    gemm = gemm_flops_per_s()
    model = PaDiM("resnet18", pretrained="none", image_size=256, crop_size=224)
    model.eval()
    P, d = model.mean.shape
    model.inv_cov.set_value(paddle.to_tensor(np.broadcast_to(np.eye(d, dtype=np.float32), (P, d, d)).copy()))
    flops = count_flops(model.backbone, [1, 3, 224, 224])
    spec = engine.postprocess_spec(224)
    with tempfile.TemporaryDirectory() as tmp:
        export_inference(model, os.path.join(tmp, "inference"), [None, 3, 224, 224],
                         contract.bind(engine).deploy_meta({"model_args": dict(model.model_args, postprocess=spec)}))
        for bs in (1, 8):
            x = np.random.default_rng(0).standard_normal((bs, 3, 224, 224)).astype(np.float32)
            for mkl in (False, True):
                pred = Predictor(os.path.join(tmp, "inference"), use_mkldnn=mkl)
                ips, post = predictor_speed(pred, x, spec, repeats=3 if quick else 10, warmup=2)
                rows.append({"method": "PaDiM",
                             "what": f"predictor R18 224px, batch {bs}, oneDNN {'on' if mkl else 'off'}",
                             "value": f"{ips:.1f} img/s",
                             "note": f"post-processing {100 * post:.1f} % of inference; "
                                     f"hardware share {100 * flops * ips / gemm:.0f} %"})
    rows.append({"method": "PaDiM", "what": "R18 backbone to layer3 at 224", "value": f"{flops / 1e9:.2f} GFLOP",
                 "note": f"float32 GEMM rate {gemm / 1e9:.0f} GFLOP/s (numpy 2048^2)"})
    return rows


def run(quick=False):
    return scoring_speed(quick) + predictor_throughput(quick) + fit_memory(quick)


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(f"{r['what']:<75} {r['value']:>12}  {r['note']}")
