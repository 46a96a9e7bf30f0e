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
from dataclasses import dataclass
from typing import Callable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from shared_data.errors import ArgumentParser, UserError, run_cli  # noqa: E402

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
SMALL = {"PaDiM-Paddle": ["--pretrained", "none", "--image_size", "64", "--num_workers", "2"],
         "STFPM-Paddle": ["--pretrained", "none", "--image_size", "64", "--epochs", "1"],
         "KDAD-Paddle": ["--pretrained", "none", "--image_size", "64", "--epochs", "1"],
         "SSPCAB-Paddle": ["--pretrained", "none", "--image_size", "128", "--steps", "2", "--num_workers", "2"]}


@dataclass
class Case:
    """One bad input or fault. ``args(w)`` gives the script's arguments (``w``: the case's folders, see
    run_case); with ``common`` the run gets --data_dir and --output_dir first. ``prepare(w)`` sets the
    scene before the run; ``trained``: the scene starts from a small trained model and its export
    (out/brick/model.pdparams, out/brick/inference). ``interrupt``: Ctrl-C is sent once that file
    (below the case's folder) exists, and the run must end in exit code 130 and "error: interrupted"."""
    name: str
    script: str
    args: Callable
    words: str
    prepare: Optional[Callable] = None
    folders: Optional[set] = None
    common: bool = True
    trained: bool = False
    interrupt: Optional[str] = None


def _model(w):
    return os.path.join(w["out"], "brick", "model.pdparams")


def _export(w):
    return os.path.join(w["out"], "brick", "inference")


def _images_with_a_corrupt_one(w):
    """tmp/imgs: two readable test images and one PNG cut short."""
    import shutil
    d = os.path.join(w["tmp"], "imgs")
    os.makedirs(d)
    shutil.copy(w["image"], os.path.join(d, "a_good.png"))
    shutil.copy(w["image"], os.path.join(d, "c_good.png"))
    with open(w["image"], "rb") as f:
        head = f.read(200)
    with open(os.path.join(d, "b_cut.png"), "wb") as f:
        f.write(head)


def _graph_size_edited(w):
    """inference.yml says another image_size than the exported graph takes."""
    import yaml
    path = os.path.join(_export(w), "inference.yml")
    with open(path, encoding="utf-8") as f:
        meta = yaml.safe_load(f)
    p = meta["preprocess"]
    key = "crop_size" if p.get("crop_size") else "image_size"
    p[key] = int(p[key]) + 32
    if key == "crop_size":
        p["image_size"] = max(int(p["image_size"]), p[key])
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(meta, f)


def _wide_mask(w):
    """A copy of the data whose first defect mask is twice as wide as its image."""
    import shutil

    from PIL import Image
    data = os.path.join(w["tmp"], "data_mask")
    shutil.copytree(w["data"], data)
    gt = os.path.join(data, "brick", "ground_truth")
    kind = sorted(os.listdir(gt))[0]
    path = os.path.join(gt, kind, sorted(os.listdir(os.path.join(gt, kind)))[0])
    m = Image.open(path)
    m.resize((m.width * 2, m.height)).save(path)


def _infer_args(images):
    return lambda w: ["--model_dir", _export(w), "--img_path", images(w)]


CASES = [
    Case("missing dataset folder", "train.py",
         lambda w: ["--data_dir", os.path.join(w["tmp"], "nowhere"), "--category", "brick"], "not found"),
    Case("unknown category", "train.py", lambda w: ["--category", "capsule"], "unknown category"),
    Case("--batch_size 0", "train.py", lambda w: ["--category", "brick", "--batch_size", "0"],
         "--batch_size must be >= 1"),
    Case("--threshold_quantile 2 (before any training)", "train.py",
         lambda w: ["--category", "brick", "--threshold_quantile", "2"], "--threshold_quantile must be in (0, 1)"),
    Case("--holdout_ratio 1.5", "train.py", lambda w: ["--category", "brick", "--holdout_ratio", "1.5"],
         "--holdout_ratio must be in [0, 1)"),
    Case("--image_size abc", "train.py", lambda w: ["--category", "brick", "--image_size", "abc"], "takes an integer"),
    Case("unknown flag", "train.py", lambda w: ["--category", "brick", "--no_such_flag"], "unrecognized arguments"),
    Case("--output_dir is a file", "train.py", lambda w: ["--category", "brick", "--output_dir", w["blocker"]],
         "is a file, not a folder"),
    Case("no checkpoint yet", "val.py", lambda w: ["--category", "brick"], "checkpoint not found"),
    Case("corrupt checkpoint", "val.py", lambda w: ["--category", "brick"], "cannot read checkpoint",
         prepare=_junk_checkpoint),
    Case("another method's checkpoint", "export_model.py", lambda w: ["--output_dir", w["out"], "--category", "brick"],
         "checkpoint, not", prepare=_foreign_checkpoint, common=False),
    Case("--batch_size -2", "val.py", lambda w: ["--category", "brick", "--batch_size", "-2"],
         "--batch_size must be >= 1"),
    Case("no images at --img_path", "predict.py",
         lambda w: ["--model_path", _model(w), "--img_path", os.path.join(w["tmp"], "empty", "*.png")],
         "no images found", common=False),
    Case("truncated training image (with worker processes where the folder has them)", "train.py",
         lambda w: ["--data_dir", os.path.join(w["tmp"], "data_trunc"), "--category", "brick"] + SMALL[w["folder"]],
         "cannot read image", prepare=_truncated_training_image),
    Case("--d 0", "train.py", lambda w: ["--category", "brick", "--d", "0"], "--d must be >= 1",
         folders={"PaDiM-Paddle"}),
    Case("--d 100000", "train.py", lambda w: ["--category", "brick", "--d", "100000", "--pretrained", "none"],
         "--d must be in 1..448", folders={"PaDiM-Paddle"}),
    Case("--image_size 100 below --crop_size 224", "train.py",
         lambda w: ["--category", "brick", "--image_size", "100", "--crop_size", "224", "--pretrained", "none"],
         "larger than --image_size 100", folders={"PaDiM-Paddle"}),
    Case("inference.yml image_size: abc", "infer.py", _infer_args(lambda w: w["image"]),
         "preprocess.image_size must be a positive integer", prepare=_edited_export("image_size"), common=False),
    Case("inference.yml threshold: high", "infer.py", _infer_args(lambda w: w["image"]),
         "threshold must be a number", prepare=_edited_export("threshold"), common=False),
    Case("inference.yml not a mapping", "infer.py", _infer_args(lambda w: w["image"]), "is not a mapping",
         prepare=lambda w: _export_folder(w, "- just\n- a list\n"), common=False),
    Case("truncated exported model", "infer.py", _infer_args(lambda w: w["image"]), "cannot load the exported model",
         prepare=_truncated_export, common=False),
    # from here on the scene holds a small trained model and its export
    Case("a corrupt image among the images (trained model)", "predict.py",
         lambda w: ["--model_path", _model(w), "--img_path", os.path.join(w["tmp"], "imgs")], "cannot read image",
         prepare=_images_with_a_corrupt_one, common=False, trained=True),
    Case("a corrupt image among the images (exported model)", "infer.py",
         _infer_args(lambda w: os.path.join(w["tmp"], "imgs")), "cannot read image",
         prepare=_images_with_a_corrupt_one, common=False, trained=True),
    Case("inference.yml image size edited away from the exported graph", "infer.py",
         _infer_args(lambda w: w["image"]), "but the graph takes", prepare=_graph_size_edited, common=False,
         trained=True),
    Case("ground-truth mask of another aspect ratio than its image", "val.py",
         lambda w: ["--data_dir", os.path.join(w["tmp"], "data_mask"), "--category", "brick"],
         "a mask must cover its image", prepare=_wide_mask, trained=True),
    Case("Ctrl-C during val.py (once it holds the output folder)", "val.py",
         lambda w: ["--category", "brick", "--save_vis", "true"], "interrupted", trained=True,
         interrupt=os.path.join("out", "brick", ".lock")),
]


def _snapshot(folder):
    """Every file (its size and modification time) and folder (-1) below ``folder``."""
    out = {}
    for d, dirs, files in os.walk(folder):
        out.update({os.path.join(d, x): -1 for x in dirs})
        for f in files:
            st = os.stat(os.path.join(d, f))
            out[os.path.join(d, f)] = (st.st_size, st.st_mtime_ns)
    return out


def make_data(root):
    """Tiny synthetic data for the cases: brick at 64 px."""
    from shared_data.synthetic import generate
    generate(root, ["brick"], seed=0, image_size=64, n_train=4, n_test_good=1, n_test_defect=1)
    return root


def train_small(folder, data, out):
    """A small trained model of ``folder``, its export, and the results of val.py, predict.py and infer.py
    in out/brick: the scene of ``trained`` cases, where a failed run must leave all of that as it was."""
    here, test = os.path.join(ROOT, folder), os.path.join(data, "brick", "test")
    for cmd in (["train.py", "--data_dir", data, "--output_dir", out, "--category", "brick"] + SMALL[folder],
                ["export_model.py", "--output_dir", out, "--category", "brick"],
                ["val.py", "--data_dir", data, "--output_dir", out, "--category", "brick", "--save_vis", "true"],
                ["predict.py", "--output_dir", out, "--category", "brick", "--img_path", test],
                ["infer.py", "--model_dir", os.path.join(out, "brick", "inference"), "--img_path", test]):
        r = subprocess.run([sys.executable] + cmd, cwd=here, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"{folder} {' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return out


def _run(cmd, cwd, interrupt, timeout):
    """(exit code, stderr) of ``cmd``; with ``interrupt`` (a path), SIGINT once that path exists."""
    import signal
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, text=True)
        t0 = time.time()
        try:
            if interrupt:
                while proc.poll() is None and not os.path.exists(interrupt) and time.time() - t0 < timeout:
                    time.sleep(0.01)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
            proc.wait(timeout=max(1.0, timeout - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None, ""
        err.seek(0)
        return proc.returncode, err.read()


def run_case(folder, case, data, tmp, timeout=300, trained=None):
    """Run one case in a fresh working folder (``trained``: the output folder of train_small, copied in
    first for ``case.trained``). Returns {"ok", "outcome", "stderr", "line"}: ok when the run ended with
    exit code 2 (130 for an interrupt), exactly one `error:` line (warnings aside) holding the expected
    words, no traceback, and no file written or changed besides what the case prepared."""
    import shutil
    w = {"tmp": tmp, "out": os.path.join(tmp, "out"), "method": METHOD[folder], "blocker": os.path.join(tmp, "file"),
         "folder": folder, "data": data,
         "image": os.path.join(data, "brick", "test", "good", sorted(os.listdir(os.path.join(data, "brick", "test",
                                                                                              "good")))[0])}
    if case.trained:
        if not trained:
            raise ValueError(f"case {case.name!r} needs a trained model (train_small)")
        shutil.copytree(trained, w["out"])
    os.makedirs(w["out"], exist_ok=True)
    with open(w["blocker"], "w", encoding="utf-8") as f:
        f.write("a file")
    if case.prepare:
        case.prepare(w)
    before = _snapshot(tmp)
    cmd = [sys.executable, case.script] + (["--data_dir", data, "--output_dir", w["out"]] if case.common else [])
    cmd += [str(a) for a in case.args(w)]
    code, stderr = _run(cmd, os.path.join(ROOT, folder), case.interrupt and os.path.join(tmp, case.interrupt),
                        timeout)
    if code is None:
        return {"ok": False, "outcome": f"hang (killed after {timeout} s)", "stderr": "", "line": ""}
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.lower().startswith(("warning", "note"))
             and "warn" not in ln.lower()]
    left = {p: s for p, s in _snapshot(tmp).items() if before.get(p) != s}
    expected_code = 130 if case.interrupt else 2
    if "Traceback" in stderr:
        outcome = "traceback"
    elif code != expected_code:
        outcome = f"exit code {code}"
    elif len(lines) != 1 or not lines[0].startswith("error: ") or case.words not in lines[0]:
        outcome = "unclear message"
    elif left:
        outcome = "files left: " + ", ".join(sorted(os.path.relpath(p, tmp) for p in left))
    else:
        outcome = "clean error, nothing left behind"
    return {"ok": outcome.startswith("clean"), "outcome": outcome, "stderr": stderr[-1500:],
            "line": lines[0] if lines else ""}


def applies(case, folder):
    return case.folders is None or folder in case.folders


def run_all(folders=FOLDERS, log=print):
    """{(case name, script): {folder: result}} for every case and folder."""
    results = {}
    with tempfile.TemporaryDirectory() as base:
        data = make_data(os.path.join(base, "data"))
        for folder in folders:
            trained = None
            if any(c.trained and applies(c, folder) for c in CASES):
                trained = train_small(folder, data, os.path.join(base, f"{folder}-trained"))
            for k, case in enumerate(CASES):
                if not applies(case, folder):
                    continue
                tmp = os.path.join(base, f"{folder}-{k}")
                os.makedirs(tmp)
                res = run_case(folder, case, data, tmp, trained=trained)
                results.setdefault((case.name, case.script), {})[folder] = res
                log(f"{folder} {case.script} {case.name}: {res['outcome']}")
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
        from adcommon.files import replace_block
        replace_block(a.readme, "reliability", md)
    return 0 if all(r["ok"] for p in results.values() for r in p.values()) else 1


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
