"""Bad input and faults, every paper folder: each case is run as a user runs it, in a subprocess on tiny
synthetic data, and must end in one `error:` line, exit code 2, and no file written.

    python scripts/reliability.py [--readme README.md] [--folders PaDiM-Paddle,...]

The test suite runs the same cases (tests/test_reliability.py); this script also writes the README's
reliability table (the block '<!-- reliability:start -->' ... '<!-- reliability:end -->'): one row
per case, its outcome in each folder, counted from the runs, never typed.
"""
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from shared_data.errors import ArgumentParser, UserError, run_cli, write_text_atomic  # noqa: E402

FOLDERS = ["PaDiM-Paddle", "STFPM-Paddle", "KDAD-Paddle", "SSPCAB-Paddle"]
METHOD = {"PaDiM-Paddle": "padim", "STFPM-Paddle": "stfpm", "KDAD-Paddle": "kdad", "SSPCAB-Paddle": "sspcab"}


def _junk_checkpoint(w, name="model.pdparams"):
    p = os.path.join(w["out"], "brick", name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(b"\x80\x04 this is not a checkpoint")
    return p


def _foreign_checkpoint(w):
    from adcommon.checkpoint import save_checkpoint
    other = "stfpm" if w["method"] != "stfpm" else "padim"
    p = os.path.join(w["out"], "brick", "model.pdparams")
    save_checkpoint(p, other, {"backbone": "resnet18"}, {})
    return p


def _export_folder(w, yml):
    d = os.path.join(w["out"], "brick", "inference")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "inference.yml"), "w", encoding="utf-8") as f:
        f.write(yml)
    return d


def _truncated_export(w):
    meta = (f"method: {w['method']}\noutputs: [map]\nmodel_file: inference.json\n"
            "preprocess: {image_size: 64, crop_size: null, mean: null, std: null}\n"
            "postprocess: {out_size: 64, combine: product, sigma: null, map_outputs: [0], score_output: null}\n")
    d = _export_folder(w, meta)
    for name in ("inference.json", "inference.pdmodel", "inference.pdiparams"):
        with open(os.path.join(d, name), "wb") as f:
            f.write(b"{\"trunc")
    return d


def _truncated_training_image(w):
    """A copy of the data with one train/good PNG cut short."""
    import shutil
    data = os.path.join(w["tmp"], "data_trunc")
    shutil.copytree(w["data"], data)
    good = os.path.join(data, "brick", "train", "good")
    victim = os.path.join(good, sorted(os.listdir(good))[2])
    with open(victim, "rb") as f:
        head = f.read(200)
    with open(victim, "wb") as f:
        f.write(head)


def _edited_export(field):
    def prepare(w):
        good = (f"method: {w['method']}\noutputs: [map]\n"
                "preprocess: {image_size: 64, crop_size: null, mean: null, std: null}\n"
                "postprocess: {out_size: 64, combine: product, sigma: null, map_outputs: [0], score_output: null}\n")
        _export_folder(w, good.replace("image_size: 64", "image_size: abc") if field == "image_size"
                       else good + "threshold: high\n")
    return prepare


# a small run of each folder: random weights (none are downloadable here), 64 px
SMALL = {"PaDiM-Paddle": ["--pretrained", "none", "--image_size", "64", "--crop_size", "64", "--num_workers", "2"],
         "STFPM-Paddle": ["--pretrained", "none", "--image_size", "64", "--epochs", "1"],
         "KDAD-Paddle": ["--pretrained", "none", "--image_size", "64", "--epochs", "1"],
         "SSPCAB-Paddle": ["--pretrained", "none", "--image_size", "128", "--steps", "2", "--num_workers", "2"]}

# (name, script, arguments (w: the case's folders) -> list, prepare (w) -> None, words in the error line
#  [, the folders it applies to])
CASES = [
    ("missing dataset folder", "train.py",
     lambda w: ["--data_dir", os.path.join(w["tmp"], "nowhere"), "--category", "brick"], None, "not found"),
    ("unknown category", "train.py", lambda w: ["--category", "capsule"], None, "unknown category"),
    ("--batch_size 0", "train.py", lambda w: ["--category", "brick", "--batch_size", "0"], None,
     "--batch_size must be >= 1"),
    ("--threshold_quantile 2 (before any training)", "train.py",
     lambda w: ["--category", "brick", "--threshold_quantile", "2"], None, "--threshold_quantile must be in (0, 1)"),
    ("--holdout_ratio 1.5", "train.py", lambda w: ["--category", "brick", "--holdout_ratio", "1.5"], None,
     "--holdout_ratio must be in [0, 1)"),
    ("--image_size abc", "train.py", lambda w: ["--category", "brick", "--image_size", "abc"], None,
     "takes an integer"),
    ("unknown flag", "train.py", lambda w: ["--category", "brick", "--no_such_flag"], None,
     "unrecognized arguments"),
    ("--output_dir is a file", "train.py",
     lambda w: ["--category", "brick", "--output_dir", w["blocker"]], None, "is a file, not a folder"),
    ("no checkpoint yet", "val.py", lambda w: ["--category", "brick"], None, "checkpoint not found"),
    ("corrupt checkpoint", "val.py", lambda w: ["--category", "brick"], _junk_checkpoint, "cannot read checkpoint"),
    ("another method's checkpoint", "export_model.py", lambda w: ["--category", "brick"], _foreign_checkpoint,
     "checkpoint, not"),
    ("--batch_size -2", "val.py", lambda w: ["--category", "brick", "--batch_size", "-2"], None,
     "--batch_size must be >= 1"),
    ("no images at --img_path", "predict.py",
     lambda w: ["--model_path", os.path.join(w["out"], "brick", "model.pdparams"), "--img_path",
                os.path.join(w["tmp"], "empty", "*.png")], None, "no images found"),
    ("truncated training image (with worker processes where the folder has them)", "train.py",
     lambda w: ["--data_dir", os.path.join(w["tmp"], "data_trunc"), "--category", "brick"] + SMALL[w["folder"]],
     _truncated_training_image, "cannot read image"),
    ("--d 0", "train.py", lambda w: ["--category", "brick", "--d", "0"], None, "--d must be >= 1", {"PaDiM-Paddle"}),
    ("--d 100000", "train.py", lambda w: ["--category", "brick", "--d", "100000", "--pretrained", "none"], None,
     "--d must be in 1..448", {"PaDiM-Paddle"}),
    ("--image_size 100 (below the 224 crop)", "train.py",
     lambda w: ["--category", "brick", "--image_size", "100", "--pretrained", "none"], None,
     "larger than --image_size 100", {"PaDiM-Paddle"}),
    ("inference.yml image_size: abc", "infer.py",
     lambda w: ["--model_dir", os.path.join(w["out"], "brick", "inference"), "--img_path", w["image"]],
     _edited_export("image_size"), "preprocess.image_size must be a positive integer"),
    ("inference.yml threshold: high", "infer.py",
     lambda w: ["--model_dir", os.path.join(w["out"], "brick", "inference"), "--img_path", w["image"]],
     _edited_export("threshold"), "threshold must be a number"),
    ("inference.yml not a mapping", "infer.py",
     lambda w: ["--model_dir", os.path.join(w["out"], "brick", "inference"), "--img_path", w["image"]],
     lambda w: _export_folder(w, "- just\n- a list\n"), "is not a mapping"),
    ("truncated exported model", "infer.py",
     lambda w: ["--model_dir", os.path.join(w["out"], "brick", "inference"), "--img_path", w["image"]],
     _truncated_export, "cannot load the exported model"),
]


def _snapshot(folder):
    """Every file (its size) and folder (-1) below ``folder``."""
    out = {}
    for d, dirs, files in os.walk(folder):
        out.update({os.path.join(d, x): -1 for x in dirs})
        for f in files:
            p = os.path.join(d, f)
            out[p] = os.path.getsize(p)
    return out


def make_data(root):
    """Tiny synthetic data for the cases: brick at 64 px."""
    from shared_data.synthetic import generate
    generate(root, ["brick"], seed=0, image_size=64, n_train=4, n_test_good=1, n_test_defect=1)
    return root


def run_case(folder, case, data, tmp, timeout=300):
    """Run one case in a fresh working folder. Returns {"ok", "outcome", "stderr"}: ok when the run
    ended with exit code 2, exactly one `error:` line (warnings aside) holding the expected words, no
    traceback, and no file written or changed besides what the case prepared."""
    name, script, args, prepare, words = case[:5]
    w = {"tmp": tmp, "out": os.path.join(tmp, "out"), "method": METHOD[folder], "blocker": os.path.join(tmp, "file"),
         "folder": folder, "data": data,
         "image": os.path.join(data, "brick", "test", "good", sorted(os.listdir(os.path.join(data, "brick", "test",
                                                                                              "good")))[0])}
    os.makedirs(w["out"], exist_ok=True)
    with open(w["blocker"], "w", encoding="utf-8") as f:
        f.write("a file")
    if prepare:
        prepare(w)
    before = _snapshot(tmp)
    cmd = [sys.executable, script, "--data_dir", data, "--output_dir", w["out"]] + [str(a) for a in args(w)]
    if script == "infer.py" or script in ("predict.py", "export_model.py") and "--model_path" in cmd:
        cmd = [sys.executable, script] + [str(a) for a in args(w)]
    elif script in ("predict.py", "export_model.py"):
        cmd = [sys.executable, script, "--output_dir", w["out"]] + [str(a) for a in args(w)]
    try:
        r = subprocess.run(cmd, cwd=os.path.join(ROOT, folder), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "outcome": f"hang (killed after {timeout} s)", "stderr": ""}
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.lower().startswith(("warning", "note"))
             and "warn" not in ln.lower()]
    left = {p: s for p, s in _snapshot(tmp).items() if before.get(p) != s}
    if "Traceback" in r.stderr:
        outcome = "traceback"
    elif r.returncode != 2:
        outcome = f"exit code {r.returncode}"
    elif len(lines) != 1 or not lines[0].startswith("error: ") or words not in lines[0]:
        outcome = "unclear message"
    elif left:
        outcome = "files left: " + ", ".join(sorted(os.path.relpath(p, tmp) for p in left))
    else:
        outcome = "clean error, nothing left behind"
    return {"ok": outcome.startswith("clean"), "outcome": outcome, "stderr": r.stderr[-1500:],
            "line": lines[0] if lines else ""}


def applies(case, folder):
    return len(case) < 6 or folder in case[5]


def run_all(folders=FOLDERS, log=print):
    """{(case name, script): {folder: result}} for every case and folder."""
    results = {}
    with tempfile.TemporaryDirectory() as base:
        data = make_data(os.path.join(base, "data"))
        for folder in folders:
            for k, case in enumerate(CASES):
                if not applies(case, folder):
                    continue
                tmp = os.path.join(base, f"{folder}-{k}")
                os.makedirs(tmp)
                res = run_case(folder, case, data, tmp)
                results.setdefault((case[0], case[1]), {})[folder] = res
                log(f"{folder} {case[1]} {case[0]}: {res['outcome']}")
    return results


def to_markdown(results, folders, seconds):
    head = ("| case | script | " + " | ".join(f.replace("-Paddle", "") for f in folders) + " |\n|---|---|"
            + "---|" * len(folders) + "\n")
    rows = ""
    for (name, script), per in results.items():
        cells = [per[f]["outcome"] if f in per else "—" for f in folders]
        rows += f"| {name} | `{script}` | " + " | ".join(cells) + " |\n"
    n = sum(len(p) for p in results.values())
    ok = sum(r["ok"] for p in results.values() for r in p.values())
    return (f"_Generated by `python scripts/reliability.py --readme README.md` on {time.strftime('%Y-%m-%d')} "
            f"({seconds:.0f} s): {ok} of {n} runs end in one error line, exit code 2, nothing written._\n\n"
            + head + rows)


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--folders", default=",".join(FOLDERS))
    p.add_argument("--readme", default=None, help="replace the reliability block of this Markdown file")
    a = p.parse_args(argv)
    folders = [f for f in a.folders.split(",") if f]
    unknown = [f for f in folders if f not in FOLDERS]
    if unknown:
        raise UserError(f"unknown folder {unknown[0]} (one of {', '.join(FOLDERS)})")
    t0 = time.time()
    results = run_all(folders)
    md = to_markdown(results, folders, time.time() - t0)
    print(md)
    if a.readme:
        start, end = "<!-- reliability:start -->", "<!-- reliability:end -->"
        with open(a.readme, encoding="utf-8") as f:
            text = f.read()
        if start not in text or end not in text:
            raise UserError(f"{a.readme} has no {start} ... {end} block")
        head, rest = text.split(start, 1)
        write_text_atomic(a.readme, f"{head}{start}\n{md}{end}{rest.split(end, 1)[1]}")
    return 0 if all(r["ok"] for p in results.values() for r in p.values()) else 1


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
