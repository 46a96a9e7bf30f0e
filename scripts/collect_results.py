"""Gather every <output_dir>/<method>/<category>/metrics.json into one results table per method and metric.

    python scripts/collect_results.py [--output_dir output [more ...]] [--readme README.md]

Several --output_dir folders (e.g. those of the machines of a `run_all_mvtec.sh --shard i/n` run, copied
to one place) are merged into one table; a method and category found in two of them counts once, the
run that finished last, and a note says so. Writes <the first output_dir>/results.md and results.csv
(--results_dir to choose): categories as columns plus Avg, like the seed ports'
tables, each with a provenance line (data, backbone and weights, training length, machine, date, commit).
With --readme FILE the block between '<!-- results:start -->' and '<!-- results:end -->' (--block NAME
for other names) is replaced,
so README tables are generated, never typed.
"""
import argparse
import csv
import glob
import io
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import yaml  # noqa: E402

from adbase import ArgumentParser, UserError, run_cli, write_text_atomic  # noqa: E402
from adcommon import methods  # noqa: E402

METRICS = [("image_auroc", "Image AUROC"), ("pixel_auroc", "Pixel AUROC"), ("aupro", "AUPRO (FPR<=0.3)"),
           ("paper_localization_auroc", "Localization AUROC, paper's definition"),
           ("image_auroc_patch_max", "Image AUROC, max of the patch map (SSPCAB's other image score)"),
           ("image_auroc_map_max", "Image AUROC, max of the discrepancy map (KDAD's, ours)"),
           ("image_auroc_loss", "Image AUROC, the paper's detection score (KDAD's eq. 3)")]
LENGTH_KEYS = ("epochs", "num_epochs", "steps")
# what a production line sees, at the threshold stored from normal images (the real-image table)
REAL_METRICS = [("recall_at_threshold", "recall at the stored threshold"),
                ("fpr_at_threshold", "false-positive rate at the stored threshold")]
REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference_figures.tsv")
# The first line of every results.md this script writes: a results.md without it is someone else's file.
MARK = "<!-- results tables written by scripts/collect_results.py -->"
CSV_HEADER = ["method", "metric", "category", "value"]


def merge_runs(output_dirs, log=print):
    """load_runs over several folders: one run per method and category, the latest by its metrics' date."""
    runs, where = {}, {}
    for d in output_dirs:
        for method, cats in load_runs(d).items():
            for cat, m in cats.items():
                key = (method, cat)
                if key in where:
                    old = runs[method][cat]
                    keep = m if str(m.get("date", "")) > str(old.get("date", "")) else old
                    log(f"note: {method}/{cat} is in {where[key]} and {d}: using the later run "
                        f"({keep.get('date', '?')})")
                    if keep is old:
                        continue
                runs.setdefault(method, {})[cat] = m
                where[key] = d
    return runs


def _read_mapping(path, kind):
    """A JSON or YAML file that must hold a mapping; None (and a warning naming it) when it does not."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f) if kind == "json" else yaml.safe_load(f)
    except (OSError, ValueError, UnicodeDecodeError, yaml.YAMLError) as e:
        print(f"warning: skipping {path}: unreadable ({' '.join(str(e).split())[:100]})", file=sys.stderr)
        return None
    if not isinstance(obj, dict):
        print(f"warning: skipping {path}: not a mapping of metrics", file=sys.stderr)
        return None
    return obj


def _number_or_none(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def load_runs(output_dir, log=print):
    """{method: {category: metrics}} of every <output_dir>/<method>/<category>/metrics.json (a truncated or
    foreign file is skipped with a warning), with its args.yml (``_args``) and the run_all_mvtec.sh
    marker's stage seconds (``_run``)."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(output_dir, "*", "*", "metrics.json"))):
        method = os.path.basename(os.path.dirname(os.path.dirname(path)))
        m = _read_mapping(path, "json")
        if m is None:
            continue
        for key, _ in METRICS + REAL_METRICS:
            if key in m and m[key] is not None and _number_or_none(m[key]) is None:
                print(f"warning: {path}: {key} is not a number ({m[key]!r}): left out", file=sys.stderr)
                m[key] = None
        folder = os.path.dirname(path)
        for name, key in (("args.yml", "_args"), ("run_all.done", "_run")):
            extra = os.path.join(folder, name)
            m[key] = (_read_mapping(extra, "yaml") or {}) if os.path.isfile(extra) else {}
        runs.setdefault(str(m.get("method", method)), {})[str(m.get("category", os.path.basename(folder)))] = m
    return runs


def _fmt(v):
    return "—" if v is None else f"{100 * v:.1f}"


def _provenance(cats):
    def uniq(values):
        vals = sorted({str(v) for v in values if v not in (None, "")})
        return ", ".join(vals) if vals else "n/a"
    ms = list(cats.values())
    length = []
    for m in ms:
        a = m.get("_args", {})
        length += [f"{k} {a[k]}" for k in LENGTH_KEYS if a.get(k) is not None]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = uniq(os.path.relpath(m["data_dir"], root) if str(m.get("data_dir", "")).startswith(root)
                else m.get("data_dir")
                for m in ms)
    backbone = uniq((m.get("model_args") or {}).get("backbone") for m in ms)
    weights = uniq((m.get("model_args") or {}).get("weights") for m in ms)
    machine = uniq(f"{m['machine'].get('cpu')} / {m['machine'].get('device')} / Paddle {m['machine'].get('paddle')}"
                   for m in ms if m.get("machine"))
    dates = sorted(m.get("date", "") for m in ms)
    return (f"data: {data}; backbone: {backbone} ({weights}); training: {uniq(length) if length else 'n/a'}; "
            f"machine: {machine}; date: {dates[0][:10]}..{dates[-1][:10]}; commit: {uniq(m.get('commit') for m in ms)}")


def references(path=REFERENCE):
    """{(method, category): [(source, image_auroc, pixel_auroc, note)]} of the reference figures file."""
    out = {}
    if not os.path.isfile(path):
        return out
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            cells = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
            try:
                img, pix = (float(c) if c.strip() else None for c in cells[3:5])
            except ValueError:
                raise UserError(f"{path}:{n}: image and pixel AUROC must be numbers or empty") from None
            out.setdefault((cells[0], cells[1]), []).append((cells[2], img, pix, cells[5]))
    return out


def _minutes(seconds):
    return "—" if not isinstance(seconds, (int, float)) else f"{seconds / 60:.1f}"


def real_table(runs, refs=None):
    """(markdown, csv rows): one row per method and category, what a line sees at the stored threshold,
    the minutes of run_all_mvtec.sh's train and val stages, and the reference figures beside them."""
    refs = references() if refs is None else refs
    md, rows = io.StringIO(), []
    known = methods.names()
    md.write("| method | category | recipe (train.py flags) | image AUROC | pixel AUROC | AUPRO | recall at the "
             "stored threshold | false positives at it | train + val (min) | reference: image / pixel AUROC |\n"
             "|---|---|---|---|---|---|---|---|---|---|\n")
    machines = set()
    for method in [m for m in known if m in runs] + sorted(set(runs) - set(known)):
        for cat in sorted(runs[method]):
            m, run = runs[method][cat], runs[method][cat].get("_run") or {}
            a = m.get("_args") or {}
            flags = run.get("train_flags") or " ".join(
                f"--{k} {a[k]}" for k in ("backbone", "image_size", "batch_size", "epochs", "steps", "lr")
                if a.get(k) is not None)
            ref = "; ".join(f"{src} ({note}): {_fmt(i)} / {_fmt(p)}" for src, i, p, note in
                            (refs.get((method, cat)) or []))
            t, v = run.get("train_seconds"), run.get("val_seconds")
            minutes = f"{_minutes(t)} + {_minutes(v)}" if t is not None else "—"
            md.write(f"| {method} | {cat} | `{flags}` | {_fmt(m.get('image_auroc'))} | {_fmt(m.get('pixel_auroc'))} "
                     f"| {_fmt(m.get('aupro'))} | {_fmt(m.get('recall_at_threshold'))} | "
                     f"{_fmt(m.get('fpr_at_threshold'))} | {minutes} | {ref or '—'} |\n")
            for key in ("image_auroc", "pixel_auroc", "aupro", "recall_at_threshold", "fpr_at_threshold"):
                v_ = m.get(key)
                rows.append([method, key, cat, "" if v_ is None else f"{v_:.6f}"])
            for key, v_ in (("train_seconds", t), ("val_seconds", v)):
                rows.append([method, key, cat, "" if v_ is None else str(v_)])
            if m.get("machine"):
                mc = m["machine"]
                machines.add(f"{mc.get('cpu')}, {mc.get('cores', os.cpu_count())} cores / {mc.get('device')} / "
                             f"Paddle {mc.get('paddle')}")
    md.write(f"\nAUROC, AUPRO, recall and false-positive rate in %; minutes of `run_all_mvtec.sh`'s train.py and "
             f"val.py on {'; '.join(sorted(machines)) or 'n/a'}.\n")
    return md.getvalue(), rows


def tables(runs):
    """(markdown, csv rows) for every method and metric present."""
    md, rows = io.StringIO(), []
    known = methods.names()
    for method in [m for m in known if m in runs] + sorted(set(runs) - set(known)):
        cats = runs[method]
        names = sorted(cats)
        md.write(f"### {method}\n\n_{_provenance(cats)}_\n\n")
        for key, title in METRICS:
            vals = [cats[c].get(key) for c in names]
            if all(v is None for v in vals):
                continue
            got = [v for v in vals if v is not None]
            avg = sum(got) / len(got)
            md.write(f"**{title}** (%)\n\n| " + " | ".join(names + ["Avg"]) + " |\n|"
                     + "---|" * (len(names) + 1) + "\n")
            md.write("| " + " | ".join([_fmt(v) for v in vals] + [_fmt(avg)]) + " |\n\n")
            rows += [[method, key, c, "" if v is None else f"{v:.6f}"] for c, v in zip(names, vals)]
            rows.append([method, key, "Avg", f"{avg:.6f}"])
    return md.getvalue(), rows


def check_ours(folder):
    """results.md and results.csv are written only over files this script wrote (results.md's first line
    is MARK, results.csv's header CSV_HEADER); a user's file of the same name is refused, untouched."""
    legacy = {f"### {m}" for m in methods.names()}   # results.md of versions before MARK began with a method
    for name, first in (("results.md", {MARK} | legacy), ("results.csv", {",".join(CSV_HEADER)})):
        path = os.path.join(folder, name)
        if not os.path.lexists(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                head = f.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError):
            head = None
        if os.path.islink(path) or not os.path.isfile(path) or head not in first:
            raise UserError(f"{path} exists and was not written by collect_results.py: left as it is; choose "
                            "another --results_dir")


def main(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output_dir", nargs="+", default=["output"],
                   help="one or more output folders (<dir>/<method>/<category>/metrics.json), merged")
    p.add_argument("--results_dir", default=None, help="where results.md/.csv go (default: the first --output_dir)")
    p.add_argument("--readme", default=None, help="replace the results block of this Markdown file")
    p.add_argument("--methods", default=None, help="comma list: only these methods (e.g. for a paper's README)")
    p.add_argument("--table", choices=["metrics", "real"], default="metrics",
                   help="metrics: a table per method and metric, categories as columns; real: one row per method "
                        "and category with recall and false positives at the stored threshold, the minutes of "
                        "run_all_mvtec.sh and the reference figures (scripts/reference_figures.tsv)")
    p.add_argument("--block", default="results",
                   help="name of the block: '<!-- NAME:start -->' ... '<!-- NAME:end -->'")
    args = p.parse_args(argv)
    for d in args.output_dir:
        if not os.path.isdir(d):
            raise UserError(f"--output_dir {d} not found")
    runs = merge_runs(args.output_dir, log=lambda msg: print(msg, file=sys.stderr))
    if args.methods:
        runs = {m: v for m, v in runs.items() if m in args.methods.split(",")}
    if not runs:
        raise UserError(f"no metrics.json under {' or '.join(args.output_dir)}/<method>/<category>/ "
                        "(run val.py first)")
    md, rows = real_table(runs) if args.table == "real" else tables(runs)
    results = args.results_dir or args.output_dir[0]
    if os.path.exists(results) and not os.path.isdir(results):
        raise UserError(f"--results_dir {results} is a file, not a folder")
    os.makedirs(results, exist_ok=True)
    check_ours(results)
    write_text_atomic(os.path.join(results, "results.md"), f"{MARK}\n{md}")
    buf = io.StringIO()
    csv.writer(buf).writerows([CSV_HEADER] + rows)
    write_text_atomic(os.path.join(results, "results.csv"), buf.getvalue())
    print(md)
    if args.readme:
        from adcommon.files import replace_block
        cmd = f"python scripts/collect_results.py --output_dir {' '.join(args.output_dir)} --readme {args.readme}" + \
            (f" --methods {args.methods}" if args.methods else "") + \
            (f" --table {args.table}" if args.table != "metrics" else "") + \
            (f" --block {args.block}" if args.block != "results" else "")
        replace_block(args.readme, args.block, f"<!-- generated by: {cmd} -->\n\n{md}")
        print(f"updated {args.readme}")
    print(f"wrote {os.path.join(results, 'results.md')} and results.csv")
    return 0


if __name__ == "__main__":
    run_cli(main)
