"""Throughput of CutPaste + SSPCAB on this machine: training updates/s (images/s) and the exported
predictor's images/s at batch 1 and 8 with oneDNN on and off.

    python bench.py [--quick] [--json bench.json]
``run(quick)`` returns the rows (list of dicts); random inputs, random GDE buffers: timing only.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # shared_data, adcommon

import numpy as np  # noqa: E402

# (backbone, pretrained, image size, per-class batch): quick = one small case, full = paper backbone too
CASES = {True: [("efficientnet_lite0", "none", 128, 2)],
         False: [("efficientnet_lite0", "imagenet", 128, 16), ("resnet18", "none", 256, 8)]}


def _train_row(backbone, pretrained, size, batch, steps, sspcab=True):
    from adcommon import cli
    from sspcab import engine
    from sspcab.model import ProjectionNet
    cli.set_seed(0)
    model = ProjectionNet(backbone, pretrained, image_size=size, sspcab=sspcab)
    images = np.random.default_rng(0).integers(0, 255, (max(batch, 4), size, size, 3), dtype=np.uint8)
    def quiet(n):
        return engine.TrainSettings(n, batch, freeze_steps=0, log_interval=10 ** 9)
    engine.train(model, images, quiet(1), log=lambda s: None)                   # warm-up (allocations, kernels)
    t0 = time.perf_counter()
    engine.train(model, images, quiet(steps), log=lambda s: None)
    secs = time.perf_counter() - t0
    return {"what": "train", "backbone": backbone, "image_size": size, "batch_size": batch,
            "images_per_step": 3 * batch, "sspcab": sspcab, "steps_per_s": round(steps / secs, 3),
            "images_per_s": round(3 * batch * steps / secs, 2)}, model


def _predictor_rows(model, size, repeats, threads):
    from adcommon.deploy.export import export_inference
    from adcommon.deploy.predictor import Predictor
    from adcommon.method import contract
    from sspcab import engine
    rows = []
    rng = np.random.default_rng(0)
    for mean, prec, d in ((model.density_mean, model.density_precision, model.model_args["embed_dim"]),
                          (model.patch_mean, model.patch_precision, model.model_args["patch_dim"])):
        mean.set_value(rng.standard_normal(d).astype(np.float32) * 0.01)
        prec.set_value(np.eye(d, dtype=np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        a = model.model_args
        spec = engine.postprocess_spec(size, a["image_score"])
        meta = contract.bind(engine).deploy_meta({"model_args": dict(a, postprocess=spec)})
        export_inference(model, os.path.join(tmp, "inference"), [None, 3, size, size], meta)
        for onednn in (True, False):
            pred = Predictor(os.path.join(tmp, "inference"), use_mkldnn=onednn, cpu_threads=threads)
            for bs in (1, 8):
                x = rng.standard_normal((bs, 3, size, size)).astype(np.float32)
                pred.run(x)                                          # warm-up
                t0 = time.perf_counter()
                for _ in range(repeats):
                    pred.run(x)
                secs = time.perf_counter() - t0
                rows.append({"what": "predictor", "backbone": model.model_args["backbone"], "image_size": size,
                             "batch_size": bs, "onednn": onednn, "cpu_threads": threads,
                             "ms_per_batch": round(1000 * secs / repeats, 2),
                             "images_per_s": round(bs * repeats / secs, 2)})
    return rows


def scaling(quick=False):
    """The scale-out row (scripts/benchmark.py): training images/s with 1 and 2 processes."""
    from adcommon.tools.benchmark import train_scaling
    n, steps = (24, 4) if quick else (64, 16)
    return train_scaling(os.path.dirname(os.path.abspath(__file__)), "CutPaste + SSPCAB",
                         ["--backbone", "resnet18", "--pretrained", "none", "--image_size", "128"],
                         ["--steps", str(steps)], f"{steps} updates x 3 views", n)


def run(quick=False):
    """Timing rows for this machine (no assertions: numbers depend on the hardware and its load)."""
    from adcommon import cli
    from adcommon.provenance import machine
    cli.set_device("cpu")  # every core, as the scripts
    steps, repeats = (2, 2) if quick else (5, 10)
    info = machine()
    rows = []
    for backbone, pretrained, size, batch in CASES[bool(quick)]:
        row, model = _train_row(backbone, pretrained, size, batch, steps)
        rows.append(row)
        if not quick:  # the same without SSPCAB: what the block costs
            rows.append(_train_row(backbone, pretrained, size, batch, steps, sspcab=False)[0])
        model.eval()
        rows += _predictor_rows(model, size, repeats, threads=cli.cpu_threads())
    for r in rows:
        r.update(paddle=info["paddle"], cpu=info["cpu"], device=info["device"])
    return rows


def main(argv=None):
    from adbase import ArgumentParser
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one small case, few repeats")
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args(argv)
    rows = run(args.quick)
    print("| what | backbone | size | batch | SSPCAB / oneDNN | images/s | steps/s or ms/batch |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if r["what"] == "train":
            print(f"| train | {r['backbone']} | {r['image_size']} | {r['batch_size']} x 3 | SSPCAB {r['sspcab']} "
                  f"| {r['images_per_s']} | {r['steps_per_s']} steps/s |")
        else:
            print(f"| predictor | {r['backbone']} | {r['image_size']} | {r['batch_size']} | oneDNN {r['onednn']} "
                  f"| {r['images_per_s']} | {r['ms_per_batch']} ms |")
    print(f"(Paddle {rows[0]['paddle']}, {rows[0]['cpu']}, {rows[0]['device']})")
    if args.json:
        from adcommon.files import save_json
        save_json(args.json, rows)
    return 0


if __name__ == "__main__":
    from adcommon.cli import run_cli
    run_cli(main)
