"""One benchmark table for the whole suite: metrics speed, each method's training / inference speed,
memory, post-processing share and hardware share, on the machine it runs on.

    python scripts/benchmark.py [--quick] [--methods a,b (default: all of methods.tsv)] [--out output/benchmark.md]
                                [--readme README.md]

Hardware share = the backbone's FLOPs x images/s / this machine's float32 matrix-multiply rate
(measured in the same run), i.e. how close to the hardware limit a predictor runs. Speed goals are
checked here, never with timed assertions in tests.
"""
import argparse
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from adbase import ArgumentParser, run_cli, write_text_atomic  # noqa: E402
from adcommon import methods  # noqa: E402


def scaling_rows(quick):
    """The scale-out table: each method's own rows (``scaling(quick)`` in its folder's bench.py: 1 and
    2 processes under paddle.distributed.launch, gloo on CPU), and what is not measured here."""
    from adcommon.tools.testing import load_script
    rows = []
    for m in methods.table():
        sys.path.insert(0, m.path)
        try:
            bench = load_script(os.path.join(m.path, "bench.py"))
            if hasattr(bench, "scaling"):
                rows += bench.scaling(quick)
        finally:
            sys.path.remove(m.path)
    rows.append({"method": "all", "what": "1 and N GPUs", "value": "not measured here",
                 "note": "no GPU on this machine"})
    return rows


def make_benchmark_maps(n=150, size=256, seed=0):
    """Half good, half with 1-3 elliptic defects (~2.7 % anomalous pixels); blurred-noise maps + 0.05 inside."""
    import cv2
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n // 2, n):
        for _ in range(rng.integers(1, 4)):
            c = tuple(int(v) for v in rng.integers(40, size - 40, 2))
            ax = tuple(int(v) for v in rng.integers(8, 41, 2))
            cv2.ellipse(masks[i], c, ax, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    maps = np.stack([cv2.GaussianBlur(rng.random((size, size), dtype=np.float32), (0, 0), 2) for _ in range(n)])
    maps += 0.05 * masks
    labels = (masks.reshape(n, -1).max(1) > 0).astype(int)
    return labels, masks.astype(bool), maps


def metrics_rows():
    from adcommon.evaluate.metrics import all_metrics, aupro, pixel_auroc
    from adcommon.tools.benchmark import time_per_call
    labels, masks, maps = make_benchmark_maps()
    rows = []
    for name, fn, goal in (("pixel AUROC", lambda: pixel_auroc(masks, maps), "goal < 1 s"),
                           ("AUPRO (FPR<=0.3)", lambda: aupro(masks, maps), "goal < 2 s"),
                           ("all_metrics()", lambda: all_metrics(labels, maps.reshape(len(maps), -1).max(1),
                                                                       masks, maps), "")):
        t = time_per_call(fn, repeats=3, warmup=1)
        rows.append({"method": "metrics", "what": f"{name}, 150 maps of 256x256", "value": f"{t:.2f} s",
                     "note": goal})
    return rows


def machine_rows():
    import paddle

    from adcommon.provenance import cpu_name
    from adcommon.tools.benchmark import gemm_flops_per_s
    return [{"method": "machine", "what": f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                                           f"Paddle {paddle.__version__}",
             "value": f"{gemm_flops_per_s() / 1e9:.0f} GFLOP/s", "gemm_gflop_per_s": gemm_flops_per_s() / 1e9,
             "note": f"float32 GEMM (numpy, 2048^2); load average at start {os.getloadavg()[0]:.2f}"}]


def training_shares(rows):
    """Note each training-throughput row with its share of the GEMM rate measured in this run:
    GFLOP per training image (the method's own count, the same for every mode) x images/s / GEMM rate.
    The GFLOP rows themselves are folded into those notes."""
    gemm = next((r["gemm_gflop_per_s"] for r in rows if "gemm_gflop_per_s" in r), None)
    key = lambda r: tuple(r.get(k) for k in ("method", "backbone", "image_size", "batch_size", "mode"))  # noqa: E731
    flops = {key(r): r["value"] for r in rows if r.get("name") == "train_gflop_per_image"}
    out = []
    for r in rows:
        if r.get("name") == "train_gflop_per_image":
            continue
        if r.get("name") == "train_images_per_s" and key(r) in flops and gemm:
            g = flops[key(r)]
            r = dict(r, note=f"{100 * g * r['value'] / gemm:.0f} % of the GEMM rate ({g:.2f} GFLOP/image, "
                             f"{gemm:.0f} GFLOP/s)")
        out.append(r)
    return out


def method_rows(method, quick):
    path = os.path.join(methods.get(method).path, "bench.py")
    if not os.path.isfile(path):
        return [{"method": method, "what": "no bench.py yet", "value": "—", "note": ""}]
    sys.path.insert(0, os.path.dirname(path))
    try:
        from adcommon.tools.testing import load_script
        rows = load_script(path).run(quick=quick)
    finally:
        sys.path.remove(os.path.dirname(path))
    for r in rows:
        r["method"] = r.get("method") or method
    return rows


def _cells(r):
    """(what, value, note) of a row. Rows name 'what'/'value'/'note' directly, or carry a 'name' with
    a numeric 'value' and 'unit', or a figure such as 'images_per_s', plus detail fields (backbone,
    image_size, batch_size, mode, ...)."""
    skip = {"method", "name", "what", "value", "unit", "note", "paddle", "cpu", "device", "gemm_gflop_per_s"}
    if "value" in r:
        v, unit = r["value"], r.get("unit", "")
        value = f"{v:.4g} {unit}".strip() if isinstance(v, (int, float)) else f"{v} {unit}".strip()
    else:
        fig = next((k for k in ("images_per_s", "steps_per_s", "ms_per_batch") if k in r), None)
        value = f"{r[fig]:.4g} {fig.replace('_per_', '/').replace('images', 'img')}" if fig else ""
        skip |= {fig}
    name = r.get("what") or r.get("name") or ""
    details = ", ".join(f"{k} {r[k]}" for k in r if k not in skip)
    if "what" in r and "value" in r:     # already a sentence
        return r["what"], value, r.get("note", "")
    return (f"{name} ({details})" if details else name), value, r.get("note", "")


def to_markdown(rows, cmd, seconds):
    out = [f"_Measured by `{cmd}` on {time.strftime('%Y-%m-%d')} ({seconds:.0f} s)._", "",
           "| method | what | value | note |", "|---|---|---|---|"]
    out += ["| {} | {} | {} | {} |".format(r.get("method", ""), *_cells(r)) for r in rows]
    return "\n".join(out) + "\n"


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    p.add_argument("--methods", default=",".join(methods.names()))
    p.add_argument("--out", default=os.path.join("output", "benchmark.md"))
    p.add_argument("--readme", default=None, help="replace the benchmark block of this Markdown file")
    p.add_argument("--from_json", default=None, help="format rows saved by an earlier run instead of measuring")
    p.add_argument("--deploy", action="store_true",
                   help="only the deployment table: infer.py end to end per backend and batch, memory for 100 and "
                        "1000 images, the stages, and the peer's OpenVINO deployment; --readme fills its deploy block")
    p.add_argument("--peer_python", default=None,
                   help="--deploy / --train_step: the python of a venv with ../shared/peer's requirements "
                        "(anomalib 2.7, torch, timm)")
    p.add_argument("--serve", action="store_true",
                   help="only the service table: serve.py under 1, 4 and 16 concurrent clients against infer.py on "
                        "the same images and runtime, and its memory over 5000 requests; --readme fills its serve "
                        "block")
    p.add_argument("--train_step", action="store_true",
                   help="only the training-step table: STFPM's Lite0 step at 256 px under each CPU setting, and "
                        "PyTorch on the same step (--peer_python); --readme fills its trainstep block")
    p.add_argument("--scaling", action="store_true",
                   help="only the scale-out table (1 vs 2 processes); --readme fills its scaling block")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    import json

    from adcommon.files import replace_block
    t0 = time.perf_counter()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    for mode in _single_tables(args):
        if getattr(args, mode[0]):
            return _single_table(args, mode, t0)
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as f:
            saved = json.load(f)
        rows, seconds = saved["rows"], saved["seconds"]
    else:
        rows = _suite_rows(args)
        seconds = time.perf_counter() - t0
    cmd = "python scripts/benchmark.py" + (" --quick" if args.quick else "") + \
          (f" --methods {args.methods}" if args.methods != ",".join(methods.names()) else "")
    if not args.from_json:
        write_text_atomic(os.path.splitext(args.out)[0] + ".json",
                          json.dumps({"rows": rows, "seconds": seconds}, indent=1, default=str))
    md = to_markdown(training_shares(rows), cmd, seconds)
    write_text_atomic(args.out, md)
    print(md)
    if args.readme:
        replace_block(args.readme, "bench", md)
    return 0


def _single_tables(args):
    """The one-table modes: (flag, README block, rows, what the command line adds, a copy under output/)."""
    peer = " --peer_python PEER_VENV/bin/python" if args.peer_python else ""
    return [("deploy", "deploy", lambda: __import__("bench_deploy").deploy_rows(args.quick, args.peer_python), peer,
             os.path.join("output", "benchmark_deploy.md")),
            ("train_step", "trainstep",
             lambda: __import__("bench_train_step").train_step_rows(args.quick, args.peer_python), peer, None),
            ("serve", "serve", lambda: __import__("bench_serve").serve_rows(args.quick), "", None),
            ("scaling", "scaling", lambda: scaling_rows(args.quick), "", None)]


def _single_table(args, mode, t0):
    """Measure and write one table of ``mode`` (an entry of _single_tables); the run started at ``t0``."""
    from adcommon.files import replace_block
    flag, block, rows_of, more, copy = mode
    rows = machine_rows() + rows_of()
    cmd = f"python scripts/benchmark.py --{flag}" + (" --quick" if args.quick else "") + more
    md = to_markdown(rows, cmd, time.perf_counter() - t0)
    if copy:
        write_text_atomic(copy, md)
    print(md)
    if args.readme:
        replace_block(args.readme, block, md)
    return 0


def _suite_rows(args):
    """The suite's table rows, measured: the machine, the metrics, then each method of --methods."""
    rows = machine_rows() + metrics_rows()
    from adcommon import cli
    cli.set_device("cpu")  # eager rows use every core, as the training/val scripts do
    for m in [m for m in args.methods.split(",") if m]:
        print(f"== {m}", flush=True)
        rows += method_rows(m, args.quick)
    return rows

if __name__ == "__main__":
    run_cli(main)
