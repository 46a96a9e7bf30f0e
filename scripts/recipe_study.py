"""The measured tables behind each quick-start recipe: a method trained several ways on validation data
(synthetic seed 1, not the quick start's seed-0 test sets), each run by the folder's own train.py and
val.py, as a user would.

    python -m shared_data.synthetic --data_dir data/synthetic_seed1 --seed 1 --categories brick tablet mesh
    python scripts/recipe_study.py --method stfpm [--data_dir data/synthetic_seed1] [--categories tablet,brick]
                                   [--readme STFPM-Paddle/README.md]

Writes output/recipe_study/<method>/table.md (and the README block '<!-- study:start -->' ..
'<!-- study:end -->' with --readme): image AUROC, pixel AUROC, AUPRO and training minutes per
variant and category (variants that differ only in val.py flags share one training).
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from adbase import ArgumentParser, UserError, run_cli, write_text_atomic  # noqa: E402
from adcommon import methods  # noqa: E402

LITE = ["--backbone", "efficientnet_lite0"]
# (label, train.py flags, val.py flags); the first rows are the earlier quick start's recipe
STUDIES = {
    "stfpm": [
        ("256 px, batch 32, 3 epochs (paper resolution and batch, short)", LITE + ["--epochs", "3"], []),
        ("128 px, batch 32, 12 epochs", LITE + ["--image_size", "128", "--epochs", "12"], []),
        ("128 px, batch 8, 6 epochs (quick start)", LITE + ["--image_size", "128", "--batch_size", "8",
                                                             "--epochs", "6"], []),
    ],
    "kdad": [
        ("raw expert features, gradient maps (earlier quick start, batch 16)",
         LITE + ["--batch_size", "16", "--epochs", "20", "--feature_scale", "none", "--cloner_pools", "relu"],
         ["--localization_method", "gradients"]),
        ("raw expert features, discrepancy maps",
         LITE + ["--batch_size", "16", "--epochs", "20", "--feature_scale", "none", "--cloner_pools", "relu"],
         ["--localization_method", "discrepancy"]),
        ("expert layers at unit RMS, gradient maps",
         LITE + ["--batch_size", "16", "--epochs", "20", "--cloner_pools", "relu"],
         ["--localization_method", "gradients"]),
        ("expert layers at unit RMS, discrepancy maps (previous quick start)",
         LITE + ["--batch_size", "16", "--epochs", "20", "--cloner_pools", "relu"],
         ["--localization_method", "discrepancy"]),
        ("unit RMS, linear cloner pools, gradient maps",
         LITE + ["--batch_size", "16", "--epochs", "20"], ["--localization_method", "gradients"]),
        ("unit RMS, linear cloner pools, discrepancy maps (quick start)",
         LITE + ["--batch_size", "16", "--epochs", "20"], ["--localization_method", "discrepancy"]),
        ("unit RMS, linear cloner pools, discrepancy maps, 40 epochs",
         LITE + ["--batch_size", "16", "--epochs", "40"], ["--localization_method", "discrepancy"]),
    ],
    "sspcab": [
        ("no training (ImageNet features + GDE), layer4 map",
         LITE + ["--image_size", "128", "--steps", "0", "--no_sspcab", "--patch_layer", "layer4"], []),
        ("no training (ImageNet features + GDE), layer3 map",
         LITE + ["--image_size", "128", "--steps", "0", "--no_sspcab"], []),
        ("layer4 map, all stages trained (earlier quick start: lr 0.03, 100 updates)",
         LITE + ["--image_size", "128", "--batch_size", "8", "--steps", "100", "--patch_layer", "layer4"], []),
        ("layer3 map, all stages trained",
         LITE + ["--image_size", "128", "--batch_size", "8", "--steps", "100"], []),
        ("layer3 map, stages 1-3 frozen (quick start)",
         LITE + ["--image_size", "128", "--batch_size", "8", "--steps", "100", "--frozen_stages", "layer3"], []),
    ],
}
KEYS = [("image_auroc", "image"), ("pixel_auroc", "pixel"), ("aupro", "AUPRO")]


def _run(folder, script, args):
    r = subprocess.run([sys.executable, script] + args, cwd=folder, capture_output=True, text=True)
    if r.returncode:
        raise UserError(f"{os.path.basename(folder)}/{script} {' '.join(args)} failed: {r.stderr.strip()[-300:]}")


def run_variant(method, k, flags, val_flags, data, cat, out_root, trained):
    """Train (once per distinct flag list: ``trained`` maps it to its output folder), then evaluate into
    a folder of this variant's own. Returns metrics.json with the training seconds."""
    folder = methods.get(method).path
    key = (cat, tuple(flags))
    if key not in trained:
        out = os.path.join(out_root, method, f"train{len(trained)}")
        t0 = time.time()
        _run(folder, "train.py", ["--data_dir", data, "--category", cat, "--output_dir", out] + flags)
        trained[key] = (out, time.time() - t0)
    out, seconds = trained[key]
    vroot = os.path.join(out_root, method, f"v{k}")
    save = os.path.join(vroot, cat)   # val.py writes <output_dir>/<category>/metrics.json (KDAD: --save_dir)
    _run(folder, "val.py", ["--data_dir", data, "--category", cat, "--output_dir", vroot, "--model_path",
                            os.path.join(out, cat, "model.pdparams")]
         + (["--save_dir", save] if method == "kdad" else []) + val_flags)
    with open(os.path.join(save, "metrics.json"), encoding="utf-8") as f:
        m = json.load(f)
    m["_seconds"] = seconds
    return m


def table(method, cats, results, cmd):
    head = "| variant | " + " | ".join(f"{c} {name}" for c in cats for _, name in KEYS) + " | minutes |"
    lines = [f"_Measured by `{cmd}` on {time.strftime('%Y-%m-%d')} (train.py + val.py per cell; validation "
             f"data: synthetic seed 1)._", "", head, "|" + "---|" * (2 + len(cats) * len(KEYS))]
    for (label, _, _), row in zip(STUDIES[method], results):
        cells = [("—" if row[c].get(k) is None else f"{100 * row[c][k]:.1f}") for c in cats for k, _ in KEYS]
        minutes = sum(row[c]["_seconds"] for c in cats) / 60   # training (shared by rows with equal flags)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {minutes:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", required=True, choices=sorted(STUDIES))
    p.add_argument("--data_dir", default=os.path.join(ROOT, "data", "synthetic_seed1"))
    p.add_argument("--categories", default="tablet,brick")
    p.add_argument("--output_dir", default=os.path.join(ROOT, "output", "recipe_study"))
    p.add_argument("--readme", default=None)
    a = p.parse_args(argv)
    cats = [c for c in a.categories.split(",") if c]
    data = os.path.abspath(a.data_dir)
    for c in cats:
        if not os.path.isdir(os.path.join(data, c)):
            raise UserError(f"no category {c} in {data}: python -m shared_data.synthetic --data_dir {a.data_dir} "
                            f"--seed 1 --categories {' '.join(cats)}")
    results, trained = [], {}
    for k, (label, flags, val_flags) in enumerate(STUDIES[a.method]):
        results.append({c: run_variant(a.method, k, flags, val_flags, data, c, os.path.abspath(a.output_dir), trained)
                        for c in cats})
        print(f"{label}: " + ", ".join(f"{c} image {results[-1][c]['image_auroc']:.3f}" for c in cats), flush=True)
    cmd = f"python scripts/recipe_study.py --method {a.method} --categories {','.join(cats)}"
    md = table(a.method, cats, results, cmd)
    write_text_atomic(os.path.join(a.output_dir, a.method, "table.md"), md)
    print(md)
    if a.readme:
        from adcommon.files import replace_block
        replace_block(a.readme, "study", md)
    return 0


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
