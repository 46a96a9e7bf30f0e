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
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import yaml  # noqa: E402

from adcommon import methods  # noqa: E402
from shared_data.errors import ArgumentParser, UserError, run_cli, write_text_atomic  # noqa: E402

METRICS = [("image_auroc", "Image AUROC"), ("pixel_auroc", "Pixel AUROC"), ("aupro", "AUPRO (FPR<=0.3)"),
           ("paper_localization_auroc", "Localization AUROC, paper's definition"),
           ("image_auroc_patch_max", "Image AUROC, max of the patch map (SSPCAB's other image score)"),
           ("image_auroc_map_max", "Image AUROC, max of the discrepancy map (KDAD's, ours)"),
           ("image_auroc_loss", "Image AUROC, the paper's detection score (KDAD's eq. 3)")]
LENGTH_KEYS = ("epochs", "num_epochs", "steps")


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


def load_runs(output_dir):
    runs = {}
    for path in sorted(glob.glob(os.path.join(output_dir, "*", "*", "metrics.json"))):
        method = os.path.basename(os.path.dirname(os.path.dirname(path)))
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
        args_yml = os.path.join(os.path.dirname(path), "args.yml")
        if os.path.isfile(args_yml):
            with open(args_yml, encoding="utf-8") as f:
                m["_args"] = yaml.safe_load(f) or {}
        runs.setdefault(m.get("method", method), {})[m.get("category", os.path.basename(os.path.dirname(path)))] = m
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


def main(argv=None):
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output_dir", nargs="+", default=["output"],
                   help="one or more output folders (<dir>/<method>/<category>/metrics.json), merged")
    p.add_argument("--results_dir", default=None, help="where results.md/.csv go (default: the first --output_dir)")
    p.add_argument("--readme", default=None, help="replace the results block of this Markdown file")
    p.add_argument("--methods", default=None, help="comma list: only these methods (e.g. for a paper's README)")
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
    md, rows = tables(runs)
    results = args.results_dir or args.output_dir[0]
    os.makedirs(results, exist_ok=True)
    write_text_atomic(os.path.join(results, "results.md"), md)
    buf = io.StringIO()
    csv.writer(buf).writerows([["method", "metric", "category", "value"]] + rows)
    write_text_atomic(os.path.join(results, "results.csv"), buf.getvalue())
    print(md)
    if args.readme:
        from adcommon.files import replace_block
        cmd = f"python scripts/collect_results.py --output_dir {' '.join(args.output_dir)} --readme {args.readme}" + \
            (f" --methods {args.methods}" if args.methods else "") + \
            (f" --block {args.block}" if args.block != "results" else "")
        replace_block(args.readme, args.block, f"<!-- generated by: {cmd} -->\n\n{md}")
        print(f"updated {args.readme}")
    print(f"wrote {os.path.join(results, 'results.md')} and results.csv")
    return 0


if __name__ == "__main__":
    run_cli(main)
