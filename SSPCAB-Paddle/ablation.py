"""CutPaste 3-way with and without SSPCAB, same data, seeds and schedule: the paper's ablation, one command.

    python ablation.py --data_dir ../data/synthetic --category brick --backbone efficientnet_lite0 \\
        --image_size 128 --steps 100 --batch_size 16 [--seeds 0 1 2]
Trains and evaluates both variants per seed (train.py / val.py, files under <output_dir>/<variant>/seed<k>/),
then writes <output_dir>/ablation.json and ablation.md (mean and spread over the seeds) and prints the table.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # shared_data, adcommon

from adbase import ArgumentParser, write_text_atomic  # noqa: E402
from adcommon import cli  # noqa: E402
from adcommon.files import save_json  # noqa: E402

VARIANTS = {"CutPaste 3-way": ["--no_sspcab"], "CutPaste 3-way + SSPCAB": []}
METRICS = ("image_auroc", "pixel_auroc", "aupro")


def build_parser():
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default="data/synthetic")
    p.add_argument("--category", required=False, help="one category")
    p.add_argument("--output_dir", default="output/ablation")
    p.add_argument("--backbone", default="efficientnet_lite0", choices=["resnet18", "efficientnet_lite0"])
    p.add_argument("--pretrained", default="imagenet")
    p.add_argument("--image_size", type=int, default=128)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--sspcab_lambda", type=float, default=0.1)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--num_workers", type=int, default=0)
    return p


def _stats(values):
    import numpy as np
    v = [x for x in values if x is not None]
    if not v:
        return None, None
    return float(np.mean(v)), (float(np.std(v)) if len(v) > 1 else None)


def _cell(mean, std):
    if mean is None:
        return "n/a"
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


def main(argv=None):
    args = build_parser().parse_args(argv)
    from adcommon.tools.testing import load_script  # by path: every paper folder has a train.py and a val.py
    train, val = load_script(os.path.join(HERE, "train.py")), load_script(os.path.join(HERE, "val.py"))

    if not args.category or "," in args.category or args.category == "all":
        raise cli.UserError("--category: give one category for the ablation")
    cli.categories_arg(args.data_dir, args.category)
    runs = {}
    for name, extra in VARIANTS.items():
        runs[name] = []
        for seed in args.seeds:
            out = os.path.join(args.output_dir, "baseline" if extra else "sspcab", f"seed{seed}")
            common = ["--data_dir", args.data_dir, "--category", args.category, "--output_dir", out,
                      "--device", args.device]
            train.main(common + ["--backbone", args.backbone, "--pretrained", args.pretrained,
                                 "--image_size", str(args.image_size), "--steps", str(args.steps),
                                 "--batch_size", str(args.batch_size), "--sspcab_lambda", str(args.sspcab_lambda),
                                 "--seed", str(seed), "--num_workers", str(args.num_workers)] + extra)
            val.main(common)
            with open(os.path.join(out, args.category, "metrics.json"), encoding="utf-8") as f:
                m = json.load(f)
            runs[name].append({"seed": seed, **{k: m[k] for k in METRICS}, "metrics": os.path.abspath(f.name)})
    table = ["| model | image AUROC (paper metric) | pixel AUROC (ours) | AUPRO (ours) |", "|---|---|---|---|"]
    summary = {}
    for name, rows in runs.items():
        summary[name] = {k: _stats([r[k] for r in rows]) for k in METRICS}
        table.append(f"| {name} | " + " | ".join(_cell(*summary[name][k]) for k in METRICS) + " |")
    setting = (f"{args.category} ({os.path.abspath(args.data_dir)}), {args.backbone} ({args.pretrained}), "
               f"{args.image_size} px, {args.steps} updates x {args.batch_size} x 3 images, lambda "
               f"{args.sspcab_lambda}, seeds {' '.join(map(str, args.seeds))}")
    md = "\n".join([f"Ablation: {setting}. Values in %, mean ± std over seeds.", ""] + table) + "\n"
    save_json(os.path.join(args.output_dir, "ablation.json"),
                  {"setting": vars(args), "runs": runs, "summary": summary})
    write_text_atomic(os.path.join(args.output_dir, "ablation.md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    cli.run_cli(main)
