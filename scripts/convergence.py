"""Convergence curve of a trained method on one category: a long CPU run, its held-out normal score
along the way, the test metrics at the end, one PNG for the method's README.

    python scripts/convergence.py --method stfpm [--category brick] [--data_dir data/synthetic]
                                  [--output_dir output/convergence] [--png STFPM-Paddle/docs/convergence.png]

It runs the folder's own train.py (the quick-start recipe, longer) and val.py as a user would, then
reads the training history stored in the checkpoint (the held-out score is measured on normal images
only; the run picks nothing with test labels) and the final metrics.json.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from adbase import ArgumentParser, UserError, run_cli  # noqa: E402
from adcommon import methods, pdfile  # noqa: E402

# The quick-start recipes (scripts/quickstart.sh) run for longer.
RECIPES = {
    "stfpm": ["--backbone", "efficientnet_lite0", "--image_size", "128", "--batch_size", "8", "--epochs", "40"],
    "kdad": ["--backbone", "efficientnet_lite0", "--batch_size", "16", "--epochs", "120", "--eval_interval", "4",
             "--localization_method", "discrepancy", "--image_score", "map_max"],
    "sspcab": ["--backbone", "efficientnet_lite0", "--image_size", "192", "--batch_size", "8", "--steps", "300",
               "--frozen_stages", "layer3", "--eval_interval", "30", "--log_interval", "30"],
}
UNIT = {"stfpm": "epoch", "kdad": "epoch", "sspcab": "update"}


def history(method, ck):
    """(x, loss, held-out score) lists from a checkpoint's training history."""
    h = (ck.get("train") or {}).get("history") or []
    if method == "stfpm":
        rows = [(r["epoch"], r["loss"], r.get("holdout_score")) for r in h]
    elif method == "kdad":
        rows = [(r["epoch"], r["loss"], r.get("holdout_mean_score")) for r in h]
    else:
        rows = [(r["step"], r["loss"], r.get("holdout_mean_score")) for r in h]
    return [list(c) for c in zip(*rows)] if rows else ([], [], [])


def plot(method, category, x, loss, held, metrics, seconds, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    ax.plot(x, loss, color="tab:blue", label="training loss")
    ax.set_xlabel(UNIT[method])
    ax.set_ylabel("training loss", color="tab:blue")
    ax2 = ax.twinx()
    pts = [(a, b) for a, b in zip(x, held) if b is not None]
    if pts:
        ax2.plot(*zip(*pts), color="tab:red", marker="o", ms=3, label="held-out normal score")
    ax2.set_ylabel("mean score of held-out normals", color="tab:red")
    for axis, values in ((ax, loss), (ax2, [b for _, b in pts])):
        v = [float(t) for t in values if t is not None]
        if v and min(v) > 0 and max(v) / min(v) > 20:  # a first epoch far above the rest: log scale
            axis.set_yscale("log")
    f = lambda k: "n/a" if metrics.get(k) is None else f"{100 * metrics[k]:.1f}"  # noqa: E731
    ax.set_title(f"{method} on {category}, {seconds / 60:.1f} min on {os.cpu_count()} CPU cores\n"
                 f"test at the end: image AUROC {f('image_auroc')}, pixel AUROC {f('pixel_auroc')}, "
                 f"AUPRO {f('aupro')}", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
    fig.savefig(png)
    plt.close(fig)


def plot_run(method, run, png):
    """The curve of a finished run folder (model.pdparams with its history, metrics.json; run_all.done for
    the minutes of train.py + val.py, else the training seconds the checkpoint recorded)."""
    import yaml
    ck_path, m_path = os.path.join(run, "model.pdparams"), os.path.join(run, "metrics.json")
    for path in (ck_path, m_path):
        if not os.path.isfile(path):
            raise UserError(f"--run {run}: no {os.path.basename(path)} (train.py and val.py must have finished)")
    ck = pdfile.load(ck_path)
    with open(m_path, encoding="utf-8") as f:
        metrics = json.load(f)
    seconds = float((ck.get("train") or {}).get("seconds") or 0)
    done = os.path.join(run, "run_all.done")
    if os.path.isfile(done):
        with open(done, encoding="utf-8") as f:
            marker = yaml.safe_load(f)
        if isinstance(marker, dict) and isinstance(marker.get("seconds"), (int, float)):
            seconds = float(marker["seconds"])
    x, loss, held = history(method, ck)
    plot(method, metrics.get("category", os.path.basename(os.path.normpath(run))), x, loss, held, metrics,
         seconds, png)
    print(f"wrote {png}")
    return 0


def main(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", required=True, choices=sorted(RECIPES))
    p.add_argument("--category", default="brick")
    p.add_argument("--data_dir", default=os.path.join(ROOT, "data", "synthetic"))
    p.add_argument("--output_dir", default=os.path.join(ROOT, "output", "convergence"))
    p.add_argument("--png", default=None, help="default <folder>/docs/convergence.png")
    p.add_argument("--extra", default="", help="more train.py flags (quoted), after the recipe's")
    p.add_argument("--recipe", choices=["convergence", "real"], default="convergence",
                   help="convergence: the quick-start recipe, longer (above); real: methods.tsv's real column")
    p.add_argument("--run", default=None,
                   help="draw the curve of a finished run instead of training: its <output_dir>/<method>/<category> "
                        "folder (e.g. from run_all_mvtec.sh --recipe real), minutes from its run_all.done")
    p.add_argument("--replot", action="store_true",
                   help="draw the PNG again from the last run's convergence.json and metrics.json (no training)")
    a = p.parse_args(argv)
    folder = methods.get(a.method).path
    png = a.png or os.path.join(folder, "docs", "convergence.png")
    if a.run:
        return plot_run(a.method, a.run, png)
    out = os.path.abspath(os.path.join(a.output_dir, a.method))
    data = os.path.abspath(a.data_dir)
    if not os.path.isdir(os.path.join(data, a.category)):
        raise UserError(f"no category {a.category} in {data}: python -m shared_data.synthetic --data_dir {data} "
                        f"--categories {a.category}")
    if a.replot:
        saved = os.path.join(out, a.category, "convergence.json")
        if not os.path.isfile(saved):
            raise UserError(f"--replot: no {saved} (run without --replot first)")
        with open(saved, encoding="utf-8") as f:
            run = json.load(f)
        with open(os.path.join(out, a.category, "metrics.json"), encoding="utf-8") as f:
            metrics = json.load(f)
        plot(a.method, a.category, run["x"], run["loss"], run["holdout"], metrics, 60 * run["minutes"], png)
        print(f"wrote {png}")
        return 0
    common = ["--data_dir", data, "--category", a.category, "--output_dir", out]
    t0 = time.time()
    recipe = RECIPES[a.method] if a.recipe == "convergence" else methods.get(a.method).real.split()
    for script, flags in (("train.py", recipe + a.extra.split()), ("val.py", [])):
        r = subprocess.run([sys.executable, script] + common + flags, cwd=folder)
        if r.returncode:
            raise UserError(f"{methods.get(a.method).folder}/{script} failed (exit {r.returncode})")
    seconds = time.time() - t0
    ck = pdfile.load(os.path.join(out, a.category, "model.pdparams"))
    with open(os.path.join(out, a.category, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    x, loss, held = history(a.method, ck)
    plot(a.method, a.category, x, loss, held, metrics, seconds, png)
    summary = {"method": a.method, "category": a.category, "minutes": round(seconds / 60, 1),
               "recipe": " ".join(recipe + a.extra.split()),
               **{k: metrics.get(k) for k in ("image_auroc", "pixel_auroc", "aupro")}}
    with open(os.path.join(out, a.category, "convergence.json"), "w", encoding="utf-8") as f:
        json.dump(dict(summary, x=x, loss=loss, holdout=held), f, indent=1)
    print(json.dumps(summary))
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
