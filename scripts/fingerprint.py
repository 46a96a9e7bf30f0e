"""What users see, in one JSON file: for each method, a short seeded run of its five scripts on tiny
synthetic data (train -> val -> predict -> export -> infer; train.py with the method table's tiny
flags), and every number they write.

    python scripts/fingerprint.py --out before.json            # before a refactor
    python scripts/fingerprint.py --out after.json --compare before.json

A refactor must leave these numbers equal (or equal to float noise, with a reason): the metrics,
the threshold, every score in scores.csv of val.py, predict.py and infer.py (oneDNN off and on), and a
checksum of each tensor of the checkpoint. Timing, dates, machine and paths are left out.
"""
import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from adbase import ArgumentParser, UserError, run_cli  # noqa: E402
from adcommon import methods, pdfile  # noqa: E402

SKIP = {"date", "machine", "commit", "timing", "data_dir", "train", "training", "fit", "peak_rss_mb"}


def _run(folder, script, args):
    r = subprocess.run([sys.executable, script] + [str(a) for a in args], cwd=folder, capture_output=True, text=True)
    if r.returncode:
        raise UserError(f"{os.path.basename(folder)}/{script} failed: {r.stderr.strip()[-500:]}")
    return r.stdout


def _scores(path):
    with open(path, newline="", encoding="utf-8") as f:
        return {os.path.basename(r["path"]) + "@" + os.path.basename(os.path.dirname(r["path"])):
                round(float(r["score"]), 6) for r in csv.DictReader(f)}


def _clean(d):
    if isinstance(d, dict):
        return {k: _clean(v) for k, v in sorted(d.items()) if k not in SKIP}
    if isinstance(d, float):
        return round(d, 6)
    if isinstance(d, list):
        return [_clean(v) for v in d]
    return d


def _checkpoint_sums(path):
    import numpy as np
    ck = pdfile.load(path)
    return {k: [round(float(np.asarray(v.numpy() if hasattr(v, "numpy") else v, np.float64).sum()), 4),
                round(float(np.abs(np.asarray(v.numpy() if hasattr(v, "numpy") else v, np.float64)).sum()), 4)]
            for k, v in sorted(ck["state_dict"].items())}


def fingerprint(method, data, work):
    folder = methods.get(method).path
    out = os.path.join(work, method)
    common = ["--data_dir", data, "--category", "brick", "--output_dir", out]
    _run(folder, "train.py", common + shlex.split(methods.get(method).tiny) + ["--seed", "3"])
    _run(folder, "val.py", common)
    cat = os.path.join(out, "brick")
    with open(os.path.join(cat, "metrics.json"), encoding="utf-8") as f:
        metrics = _clean(json.load(f))
    fp = {"metrics": metrics, "val_scores": _scores(os.path.join(cat, "scores.csv")),
          "checkpoint": _checkpoint_sums(os.path.join(cat, "model.pdparams"))}
    imgs = os.path.join(data, "brick", "test")
    _run(folder, "predict.py", ["--output_dir", out, "--category", "brick", "--img_path", imgs,
                                "--save_dir", os.path.join(cat, "predict")])
    fp["predict_scores"] = _scores(os.path.join(cat, "predict", "scores.csv"))
    _run(folder, "export_model.py", ["--output_dir", out, "--category", "brick"])
    for mk in ("False", "True"):
        d = os.path.join(cat, f"infer_{mk}")
        _run(folder, "infer.py", ["--model_dir", os.path.join(cat, "inference"), "--img_path", imgs,
                                  "--use_mkldnn", mk, "--save_dir", d, "--save_vis", "False"])
        fp[f"infer_scores_onednn_{mk}"] = _scores(os.path.join(d, "scores.csv"))
    return fp


def compare(a, b, rtol=1e-4, path=""):
    """Differences between two fingerprints (numbers compared with a relative tolerance)."""
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'after' if k in b else 'before'}")
            else:
                out += compare(a[k], b[k], rtol, f"{path}/{k}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            out += compare(x, y, rtol, f"{path}[{i}]")
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if abs(a - b) > rtol * max(abs(a), abs(b), 1e-6):
            out.append(f"{path}: {a} -> {b}")
    elif a != b:
        out.append(f"{path}: {a!r} -> {b!r}")
    return out


def main(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--methods", default=",".join(methods.names()))
    p.add_argument("--compare", default=None, help="an earlier fingerprint: print every difference")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "data")
        subprocess.run([sys.executable, "-m", "shared_data.synthetic", "--data_dir", data, "--categories", "brick",
                        "--image_size", "128", "--n_train", "10", "--n_test_good", "3", "--n_test_defect", "4"],
                       cwd=ROOT, check=True, capture_output=True)
        fps = {m: fingerprint(m, data, work) for m in a.methods.split(",") if m}
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(fps, f, indent=1, sort_keys=True)
    print(f"wrote {a.out}")
    if a.compare:
        with open(a.compare, encoding="utf-8") as f:
            before = json.load(f)
        diffs = compare({m: before.get(m) for m in fps}, fps)
        print("\n".join(diffs) if diffs else "no differences")
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
