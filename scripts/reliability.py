"""Bad input, faults and shared folders, every paper folder and the data tools: each case is run as a user
runs it, in a subprocess on tiny synthetic data. A mistake must end in one `error:` line, exit code 2, and
no file written or changed; the cases that are not mistakes (a Ctrl-C, a SIGTERM, a finished --resume, an
unreadable image among many, two images whose names could collide, a second writer) must end as the
README's reliability section says, which each case checks.

    python scripts/reliability.py [--readme README.md] [--folders PaDiM-Paddle,...,shared_data]

The test suite runs the same cases (tests/test_reliability.py); this script also writes the README's
reliability table (the block '<!-- reliability:start -->' ... '<!-- reliability:end -->'): one row
per case, its outcome in each folder, counted from the runs, never typed.
"""
import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from adbase import ArgumentParser, UserError, run_cli  # noqa: E402
from adcommon import methods  # noqa: E402

FOLDERS = [m.folder for m in methods.table()]
TOOLS = "shared_data"   # the data tools, run as `python -m shared_data.<tool>` from the repository
COLUMNS = FOLDERS + [TOOLS]
METHOD = {m.folder: m.name for m in methods.table()}
RESUMABLE = {m.folder for m in methods.table() if m.resumable}
CLEAN = "clean error, nothing left behind"
ODD = os.fsdecode(b"odd\xff")   # a folder name that is not UTF-8 (the byte 0xff)


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


def _train_flags(folder):
    """The option strings of a folder's train.py (its parser, without running it)."""
    from adcommon.tools.testing import load_script
    parser = load_script(os.path.join(ROOT, folder, "train.py")).build_parser()
    return {o for a in parser._actions for o in a.option_strings}


def _recipes():
    """Per folder, from the method table (its tiny flags and whether it trains over epochs or steps)
    and the flags its train.py has: SMALL, a small run (with worker processes where the folder has
    them); LONG, a training caught in the middle (a signal once it saved something), then finished with
    --resume; BUSY, a training still running while another script tries the same category (stopped by
    SIGTERM afterwards); FIRST_SAVE, the file whose appearance shows that a retraining has saved
    something (a fit saves only at its end: its lock, taken first)."""
    small, long_, busy, first = {}, {}, {}, {}
    for m in methods.table():
        f, tiny, flags = m.folder, shlex.split(m.tiny), _train_flags(m.folder)
        small[f] = tiny + (["--num_workers", "2"] if "--num_workers" in flags else [])
        every = ["--save_interval", "1"] if "--save_interval" in flags else []
        if "--steps" in flags and m.resumable:
            long_[f], busy[f] = tiny + ["--steps", "12"] + every, tiny + ["--steps", "5000"]
        elif "--epochs" in flags and m.resumable:
            long_[f], busy[f] = tiny + ["--epochs", "12"] + every, tiny + ["--epochs", "1000"]
        else:   # a fit: large images make it last
            slow = ["--image_size", "448"] + (["--crop_size", "none"] if "--crop_size" in flags else [])
            long_[f] = busy[f] = tiny + slow
        first[f] = "last.pdparams" if m.resumable else ".lock"
    return small, long_, busy, first


SMALL, LONG, BUSY, FIRST_SAVE = _recipes()


@dataclass
class Case:
    """One bad input, fault or shared-folder situation. ``args(w)`` gives the script's arguments (``w``: the
    case's folders, see run_case); with ``common`` the run gets --data_dir and --output_dir first.
    ``prepare(w)`` sets the scene before the run; ``trained``: the scene starts from a small trained model,
    its export and results (out/brick). ``interrupt``: a path below the case's folder (or ``w`` -> path);
    ``signal`` is sent once the run has written it. ``background(w)``: another run started first, (command, folder,
    path that shows it is under way, "kill" or "wait"). A mistake (``code`` 2) must end in one error line
    holding ``words`` with nothing written; otherwise ``check(w, r)`` says what is wrong, or None, and the
    row reads ``outcome``."""
    name: str
    script: str
    args: Callable
    words: str = ""
    prepare: Optional[Callable] = None
    folders: Optional[set] = None
    common: bool = True
    trained: bool = False
    interrupt: Optional[object] = None
    signal: str = "INT"
    code: Optional[int] = None
    check: Optional[Callable] = None
    outcome: object = CLEAN   # or folder -> text, where the folders differ
    background: Optional[Callable] = None

    def expected_code(self):
        if self.code is not None:
            return self.code
        return {"INT": 130, "TERM": 143}[self.signal] if self.interrupt else 2


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


# ----------------------------------------------------------------------------- scenes and checks


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _remember(*rels):
    """prepare step: remember the bytes of these files of the trained scene (paths below out/brick)."""
    def prepare(w):
        w["kept"] = {r: _digest(os.path.join(w["out"], "brick", r)) for r in rels}
    return prepare


def _changed(w):
    """The remembered files that are gone or changed."""
    out = []
    for r, h in (w.get("kept") or {}).items():
        p = os.path.join(w["out"], "brick", r)
        if not os.path.isfile(p) or _digest(p) != h:
            out.append(r)
    return out


def _temps(folder):
    """Temporary files or folders of ours left anywhere below ``folder``."""
    from adbase.safefiles import _TEMP
    return [os.path.join(d, n) for d, dirs, files in os.walk(folder) for n in dirs + files if _TEMP.match(n)]


def _records(folder):
    with open(os.path.join(folder, "predictions.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _error_line(r, words):
    lines = [ln for ln in r["stderr"].splitlines() if ln.startswith("error:")]
    if len(lines) != 1 or words not in lines[0]:
        return f"unclear message: {lines[-1] if lines else 'none'}"
    return None


def _copies(name, n, source=None):
    """prepare step: tmp/<name> holds ``n`` copies of a test image (a slow enough run)."""
    def prepare(w):
        import shutil
        d = os.path.join(w["tmp"], name)
        os.makedirs(d, exist_ok=True)
        for i in range(n):
            shutil.copy(source(w) if source else w["image"], os.path.join(d, f"{i:04d}.png"))
    return prepare


def _check_same_dir_pair(w):
    import shutil
    d = os.path.join(w["tmp"], "D")
    os.makedirs(d)
    shutil.copy(w["image"], os.path.join(d, "000.png"))
    shutil.copy(w["defect"], os.path.join(d, "same_000.png"))
    w["kept_d"] = {n: _digest(os.path.join(d, n)) for n in os.listdir(d)}


def _deployment_folder(w):
    import shutil
    d = os.path.join(w["tmp"], "deploy")
    os.makedirs(d)
    with open(os.path.join(d, "README.txt"), "w") as f:
        f.write("line 3 deployment: call Anna before changing\n")
    shutil.copy(w["image"], os.path.join(d, "reference.png"))


def _foreign_output(w):
    """out2/brick: a folder of another tool's files, with a model.pdparams of its own."""
    d = os.path.join(w["tmp"], "out2", "brick")
    os.makedirs(d)
    with open(os.path.join(d, "model.pdparams"), "wb") as f:
        f.write(b"someone else's model")
    with open(os.path.join(d, "notes.txt"), "w") as f:
        f.write("keep")


def _collision(w):
    """lineA/cam/000.png (normal) and lineA/cam_000.png (defective): once both named lineA_cam_000."""
    import shutil
    os.makedirs(os.path.join(w["tmp"], "lineA", "cam"))
    shutil.copy(w["image"], os.path.join(w["tmp"], "lineA", "cam", "000.png"))
    shutil.copy(w["defect"], os.path.join(w["tmp"], "lineA", "cam_000.png"))


def _check_collision(w, r):
    out = os.path.join(w["tmp"], "coll")
    recs = _records(out)
    files = [set(x["files"].values()) for x in recs]
    if len(recs) != 2 or files[0] & files[1] or not all(files):
        return f"records {len(recs)}, files {files}"
    missing = [f for fs in files for f in fs if not os.path.isfile(os.path.join(out, f))]
    return f"missing {missing}" if missing else None


def _odd_images(w):
    """scan/odd\\xff/000.png, 001.png: images in a folder whose name is not UTF-8."""
    import shutil
    d = os.path.join(w["tmp"], "scan", ODD)
    os.makedirs(d)
    shutil.copy(w["image"], os.path.join(d, "000.png"))
    shutil.copy(w["defect"], os.path.join(d, "001.png"))


def _check_odd_images(w, r):
    out = os.path.join(w["tmp"], "res")
    recs = _records(out)
    if len(recs) != 2 or any(os.fsencode(x["path"]).count(b"\xff") != 1 for x in recs):
        return f"records {[x.get('path') for x in recs]}"
    names = [f for x in recs for f in x["files"].values()]
    if not names or not all(n.startswith("odd%FF+") and os.path.isfile(os.path.join(out, n)) for n in names):
        return f"files {names}"
    return None


def _odd_data(w):
    import shutil
    shutil.copytree(w["data"], os.path.join(w["tmp"], ODD))


def _huge_png(path):
    """A real 20000 x 20000 PNG (1-bit, a few hundred KB on disk, 1.2 GB decoded as RGB)."""
    from PIL import Image
    Image.new("1", (20000, 20000)).save(path)


def _huge_in_train(w):
    import shutil
    data = os.path.join(w["tmp"], "data_huge")
    shutil.copytree(w["data"], data)
    _huge_png(os.path.join(data, "brick", "train", "good", "huge.png"))


def _huge_among_images(w):
    _images_with_a_corrupt_one(w)
    os.remove(os.path.join(w["tmp"], "imgs", "b_cut.png"))
    _huge_png(os.path.join(w["tmp"], "imgs", "b_huge.png"))


def _check_unreadable(words, folder="res"):
    def check(w, r):
        recs = _records(os.path.join(w["tmp"], folder))
        bad = [x for x in recs if x.get("error")]
        if len(recs) != 3 or len(bad) != 1 or words not in bad[0]["error"] or bad[0]["verdict"] != "unreadable":
            return f"records {len(recs)}, unreadable {[x.get('error') for x in bad]}"
        if sum(ln.startswith("warning") and words in ln for ln in r["stderr"].splitlines()) != 1:
            return "no warning line"
        return None
    return check


def _check_kept_and_resumable(w, r):
    """A stopped training: the earlier finished model as it was, no temporary file, the new run's state
    kept, and --resume finishing it."""
    problems = [f"changed {c}" for c in _changed(w)] + [f"temporary {t}" for t in _temps(w["tmp"])]
    if w["folder"] in RESUMABLE:
        state = os.path.join(w["out"], "brick", "last.pdparams")
        if not os.path.isfile(state):
            problems.append("no last.pdparams to resume from")
        else:
            res = subprocess.run([sys.executable, "train.py", "--data_dir", w["data"], "--output_dir", w["out"],
                                  "--category", "brick", "--resume"] + LONG[w["folder"]],
                                 cwd=os.path.join(ROOT, w["folder"]), capture_output=True, text=True, timeout=600)
            if res.returncode != 0 or not _changed(w):
                problems.append(f"--resume: exit {res.returncode}, model replaced: {bool(_changed(w))}")
    return "; ".join(problems) or None


def _unfinished_export(w):
    """out/brick/inference_unfinished: the export of a checkpoint saved before its training ended."""
    import paddle
    ck = paddle.load(_model(w))
    ck["complete"], ck["progress"] = False, {"epoch": 4, "epochs": 6}
    paddle.save(ck, os.path.join(w["out"], "brick", "candidate.pdparams"))
    res = subprocess.run([sys.executable, "export_model.py", "--model_path", os.path.join(w["out"], "brick",
                          "candidate.pdparams"), "--save_dir", os.path.join(w["tmp"], "unfinished")],
                         cwd=os.path.join(ROOT, w["folder"]), capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(res.stderr[-1000:])


def _busy_train(w):
    """A retraining of the category, long enough to be running while the case runs."""
    args = ["train.py", "--data_dir", w["big"] if not methods.of_folder(w["folder"]).resumable else w["data"],
            "--output_dir", w["out"], "--category", "brick"] + BUSY[w["folder"]]
    return args, w["folder"], os.path.join(w["out"], "brick", ".lock"), "kill"


def _busy_infer(w):
    """An infer.py watching tmp/many (40 images) into tmp/shared: a results folder in use for as long as
    the case needs (stopped by SIGTERM afterwards)."""
    return (["infer.py", "--model_dir", _export(w), "--img_path", os.path.join(w["tmp"], "many"), "--save_dir",
             os.path.join(w["tmp"], "shared"), "--watch", "True", "--poll", "0.1"], w["folder"],
            os.path.join(w["tmp"], "shared", "run.json"), "kill")


def _check_first_infer_kept(w, r):
    """The second run refused; the first one's results whole: one line per image it saw, each with its
    files, nothing of the second run."""
    bg = r.get("background")
    if not bg or bg["code"] != 143:
        return f"the first run: exit {bg and bg['code']}"
    recs = _records(os.path.join(w["tmp"], "shared"))
    paths = [x["path"] for x in recs]
    if not recs or len(set(paths)) != len(paths) or any(os.path.dirname(q) != os.path.join(w["tmp"], "many")
                                                        for q in paths):
        return f"the first run's results: {len(recs)} records"
    missing = [f for x in recs for f in x["files"].values()
               if not os.path.isfile(os.path.join(w["tmp"], "shared", f))]
    return f"missing {missing[:3]}" if missing else _error_line(r, "is in use by")


def _check_refused_while_training(w, r):
    return _error_line(r, "is in use by") or ("; ".join(f"changed {c}" for c in _changed(w)) or None)


def _check_nothing_to_resume(w, r):
    if "nothing to resume" not in r["stdout"]:
        return "no 'nothing to resume' line"
    return "; ".join(f"changed {p}" for p in r["changed"]) or None


def _check_unfinished_warning(w, r):
    if "training had not finished" not in r["stderr"]:
        return "no warning"
    return None if os.path.isfile(os.path.join(w["tmp"], "res", "summary.json")) else "no results"


def _check_terminated_predict(w, r):
    out = os.path.join(w["tmp"], "res")
    problems = [f"temporary {t}" for t in _temps(w["tmp"])]
    if os.path.isfile(os.path.join(out, "summary.json")):
        problems.append("summary.json of an unfinished run")
    with open(os.path.join(out, "predictions.jsonl"), encoding="utf-8") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        problems.append("a line cut short")
    return "; ".join(problems) or None


def _one_training_image(w):
    import shutil
    data = os.path.join(w["tmp"], "one")
    shutil.copytree(w["data"], data)
    good = os.path.join(data, "brick", "train", "good")
    for n in sorted(os.listdir(good))[1:]:
        os.remove(os.path.join(good, n))


def _new(w):
    return os.path.join(w["tmp"], "new", "a", "b")


class _Payload:
    """Unpickling this calls os.system: a checkpoint that runs code as it is read. Its command writes a
    file into the case's folder, which the run's snapshot would show."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


def _crafted_checkpoint(name="model.pdparams"):
    """prepare step: out/brick/<name> shaped like a checkpoint of the folder's method, its state dict a
    payload (the trained scene's own model replaced)."""
    def prepare(w):
        import pickle
        p = os.path.join(w["out"], "brick", name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            pickle.dump({"method": w["method"], "model_args": {}, "state_dict": {"w": _Payload(
                os.path.join(w["tmp"], "code_ran"))}}, f, protocol=4)
    return prepare


def _crafted_weights(w):
    import pickle
    with open(os.path.join(w["tmp"], "weights.pdparams"), "wb") as f:
        pickle.dump({"conv1.weight": _Payload(os.path.join(w["tmp"], "code_ran"))}, f, protocol=4)


def _check_diverged(w, r):
    """A diverging training: one error line, exit 2, and no model.pdparams (never a NaN model)."""
    problem = _error_line(r, "training diverged")
    if problem:
        return problem
    return "a model.pdparams was written" if os.path.exists(_model(w)) else None


def _damaged_params(w):
    """Random bytes written into the middle of the exported parameters (the same size)."""
    p = os.path.join(_export(w), "inference.pdiparams")
    with open(p, "r+b") as f:
        f.seek(os.path.getsize(p) // 2)
        f.write(os.urandom(64))


def _fifo_among_images(w):
    """tmp/imgs: two readable images and a FIFO named like one (opening it would block for ever)."""
    import shutil
    d = os.path.join(w["tmp"], "imgs")
    os.makedirs(d)
    shutil.copy(w["image"], os.path.join(d, "a_good.png"))
    shutil.copy(w["image"], os.path.join(d, "c_good.png"))
    os.mkfifo(os.path.join(d, "b_camera.png"))


def _check_fifo_skipped(w, r):
    res = os.path.join(w["tmp"], "res")
    recs = _records(res) if os.path.isfile(os.path.join(res, "predictions.jsonl")) else []
    if sorted(os.path.basename(x["path"]) for x in recs) != ["a_good.png", "c_good.png"]:
        return f"records {[x.get('path') for x in recs]}"
    warned = [ln for ln in r["stderr"].splitlines() if ln.startswith("warning:") and "b_camera.png" in ln]
    return None if len(warned) == 1 else "no warning naming the FIFO"


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
    Case("a single training image", "train.py",
         lambda w: ["--data_dir", os.path.join(w["tmp"], "one"), "--category", "brick"] + SMALL[w["folder"]],
         "needs at least 2 training images", prepare=_one_training_image, folders={"PaDiM-Paddle"}),
    Case("inference.yml image_size: abc", "infer.py", _infer_args(lambda w: w["image"]),
         "preprocess.image_size must be a positive integer", prepare=_edited_export("image_size"), common=False),
    Case("inference.yml threshold: high", "infer.py", _infer_args(lambda w: w["image"]),
         "threshold must be a number", prepare=_edited_export("threshold"), common=False),
    Case("inference.yml not a mapping", "infer.py", _infer_args(lambda w: w["image"]), "is not a mapping",
         prepare=lambda w: _export_folder(w, "- just\n- a list\n"), common=False),
    Case("truncated exported model", "infer.py", _infer_args(lambda w: w["image"]), "cannot load the exported model",
         prepare=_truncated_export, common=False),
    Case("a 20000 x 20000 PNG in train/good", "train.py",
         lambda w: ["--data_dir", os.path.join(w["tmp"], "data_huge"), "--category", "brick"] + SMALL[w["folder"]],
         "over the limit of 100 (--max_megapixels)", prepare=_huge_in_train),
    Case("output folder named with the byte 0xff", "train.py",
         lambda w: ["--category", "brick", "--output_dir", os.path.join(w["tmp"], ODD)] + SMALL[w["folder"]],
         "is not valid UTF-8"),
    Case("dataset folder named with the byte 0xff", "train.py",
         lambda w: ["--data_dir", os.path.join(w["tmp"], ODD), "--category", "brick"] + SMALL[w["folder"]],
         prepare=_odd_data, code=0, outcome="trained (the name shown with \\xff)",
         check=lambda w, r: None if os.path.isfile(_model(w)) else "no model"),
    # ---- folders that a run must leave as they were, and the left-overs of failed runs
    Case("--output_dir the dataset folder itself", "train.py",
         lambda w: ["--category", "brick", "--output_dir", w["data"]], "is the input folder"),
    Case("--output_dir holding another tool's model.pdparams and notes", "train.py",
         lambda w: ["--category", "brick", "--output_dir", os.path.join(w["tmp"], "out2")], "did not write",
         prepare=_foreign_output),
    Case("a new nested --output_dir, then a truncated training image", "train.py",
         lambda w: ["--data_dir", os.path.join(w["tmp"], "data_trunc"), "--category", "brick", "--output_dir",
                    _new(w)] + SMALL[w["folder"]], "cannot read image", prepare=_truncated_training_image),
    Case("a new nested --save_dir, then a corrupt checkpoint", "predict.py",
         lambda w: ["--model_path", _model(w), "--img_path", w["image"], "--save_dir", _new(w)],
         "cannot read checkpoint", prepare=_junk_checkpoint, common=False),
    Case("a new nested --save_dir, then another method's checkpoint", "export_model.py",
         lambda w: ["--output_dir", w["out"], "--category", "brick", "--save_dir", _new(w)], "checkpoint, not",
         prepare=_foreign_checkpoint, common=False),
    Case("a new nested --save_dir, then a truncated exported model", "infer.py",
         lambda w: ["--model_dir", _export(w), "--img_path", w["image"], "--save_dir", _new(w)],
         "cannot load the exported model", prepare=_truncated_export, common=False),
    Case("no network for the MVTec download, into a new --data_dir", "-m shared_data.download",
         lambda w: ["--data_dir", _new(w), "--categories", "bottle", "--url", "http://127.0.0.1:9/mvtec.tar.xz",
                    "--timeout", "5"], "could not reach", folders={TOOLS}, common=False),
    Case("an unknown synthetic category, into a new --data_dir", "-m shared_data.synthetic",
         lambda w: ["--data_dir", _new(w), "--categories", "brick", "nosuch"], "unknown", folders={TOOLS},
         common=False),
    Case("a lite subset of a missing dataset, into a new --dst", "-m shared_data.lite",
         lambda w: ["--src", os.path.join(w["tmp"], "nowhere"), "--dst", _new(w), "--categories", "bottle",
                    "--n_train", "2", "--n_test", "2"], "does not exist", folders={TOOLS}, common=False),
    # from here on the scene holds a small trained model, its export and its results
    Case("a corrupt image among the images (trained model)", "predict.py",
         lambda w: ["--model_path", _model(w), "--img_path", os.path.join(w["tmp"], "imgs"), "--save_dir",
                    os.path.join(w["tmp"], "res")], prepare=_images_with_a_corrupt_one, common=False, trained=True,
         code=3, check=_check_unreadable("cannot read image"), outcome="exit code 3: 3 records, 2 scored, 1 warning"),
    Case("a corrupt image among the images (exported model)", "infer.py",
         lambda w: _infer_args(lambda w: os.path.join(w["tmp"], "imgs"))(w) + ["--save_dir",
                                                                               os.path.join(w["tmp"], "res")],
         prepare=_images_with_a_corrupt_one, common=False, trained=True, code=3,
         check=_check_unreadable("cannot read image"), outcome="exit code 3: 3 records, 2 scored, 1 warning"),
    Case("a corrupt image among the images, --strict True", "infer.py",
         lambda w: _infer_args(lambda w: os.path.join(w["tmp"], "imgs"))(w) + ["--strict", "True", "--save_dir",
                                                                               os.path.join(w["tmp"], "res")],
         "cannot read image", prepare=_images_with_a_corrupt_one, common=False, trained=True),
    Case("a 20000 x 20000 PNG among the images", "predict.py",
         lambda w: ["--model_path", _model(w), "--img_path", os.path.join(w["tmp"], "imgs"), "--save_dir",
                    os.path.join(w["tmp"], "res")], prepare=_huge_among_images, common=False, trained=True, code=3,
         check=_check_unreadable("over the limit"), outcome="exit code 3: refused in its record, the rest scored"),
    Case("inference.yml image size edited away from the exported graph", "infer.py",
         _infer_args(lambda w: w["image"]), "but the graph takes", prepare=_graph_size_edited, common=False,
         trained=True),
    Case("ground-truth mask of another aspect ratio than its image", "val.py",
         lambda w: ["--data_dir", os.path.join(w["tmp"], "data_mask"), "--category", "brick"],
         "a mask must cover its image", prepare=_wide_mask, trained=True),
    Case("a new --save_dir, then a mask of another aspect ratio", "val.py",
         lambda w: ["--data_dir", os.path.join(w["tmp"], "data_mask"), "--category", "brick", "--model_path",
                    _model(w), "--output_dir", _new(w)], "a mask must cover its image", prepare=_wide_mask,
         trained=True, common=False),
    Case("Ctrl-C during val.py (once it holds the output folder)", "val.py",
         lambda w: ["--category", "brick", "--save_vis", "true"], "interrupted", trained=True,
         interrupt=os.path.join("out", "brick", ".lock")),
    Case("export_model.py --save_dir the category folder (model, args.yml, train.log, inference/)", "export_model.py",
         lambda w: ["--model_path", _model(w), "--save_dir", os.path.join(w["out"], "brick")],
         "is a training folder, not an exported model", common=False, trained=True),
    Case("export_model.py --save_dir a deployment folder holding README.txt and reference.png", "export_model.py",
         lambda w: ["--model_path", _model(w), "--save_dir", os.path.join(w["tmp"], "deploy")], "did not write",
         prepare=_deployment_folder, common=False, trained=True),
    Case("infer.py --img_path D --save_dir D (D holds 000.png and same_000.png)", "infer.py",
         lambda w: _infer_args(lambda w: os.path.join(w["tmp"], "D"))(w) + ["--save_dir", os.path.join(w["tmp"], "D")],
         "is the input folder", prepare=_check_same_dir_pair, common=False, trained=True),
    Case("predict.py --save_dir inside --img_path", "predict.py",
         lambda w: ["--model_path", _model(w), "--img_path", os.path.join(w["tmp"], "imgs"), "--save_dir",
                    os.path.join(w["tmp"], "imgs", "results")], "lies inside the input folder",
         prepare=_images_with_a_corrupt_one, common=False, trained=True),
    Case("infer.py --save_dir above --img_path", "infer.py",
         lambda w: _infer_args(lambda w: os.path.join(w["tmp"], "imgs"))(w) + ["--save_dir", w["tmp"]],
         "contains the input folder", prepare=_images_with_a_corrupt_one, common=False, trained=True),
    Case("output folder named with the byte 0xff", "predict.py",
         lambda w: ["--model_path", _model(w), "--img_path", w["image"], "--save_dir", os.path.join(w["tmp"], ODD)],
         "is not valid UTF-8", common=False, trained=True),
    Case("output folder named with the byte 0xff", "export_model.py",
         lambda w: ["--model_path", _model(w), "--save_dir", os.path.join(w["tmp"], ODD)], "is not valid UTF-8",
         common=False, trained=True),
    Case("output folder named with the byte 0xff", "infer.py",
         lambda w: _infer_args(lambda w: w["image"])(w) + ["--save_dir", os.path.join(w["tmp"], ODD)],
         "is not valid UTF-8", common=False, trained=True),
    Case("output folder named with the byte 0xff", "val.py",
         lambda w: ["--category", "brick", "--model_path", _model(w), "--output_dir", os.path.join(w["tmp"], ODD)],
         "is not valid UTF-8", trained=True),
    Case("image folder named with the byte 0xff", "predict.py",
         lambda w: ["--model_path", _model(w), "--img_path", os.path.join(w["tmp"], "scan"), "--save_dir",
                    os.path.join(w["tmp"], "res")], prepare=_odd_images, common=False, trained=True, code=0,
         check=_check_odd_images, outcome="scored; files named odd%FF+..."),
    Case("image folder named with the byte 0xff", "infer.py",
         lambda w: _infer_args(lambda w: os.path.join(w["tmp"], "scan"))(w) + ["--save_dir",
                                                                              os.path.join(w["tmp"], "res")],
         prepare=_odd_images, common=False, trained=True, code=0, check=_check_odd_images,
         outcome="scored; files named odd%FF+..."),
    Case("lineA/cam/000.png and lineA/cam_000.png", "infer.py",
         lambda w: _infer_args(lambda w: os.path.join(w["tmp"], "lineA"))(w) + ["--save_dir",
                                                                              os.path.join(w["tmp"], "coll")],
         prepare=_collision, common=False, trained=True, code=0, check=_check_collision,
         outcome="two records, one set of files each"),
    Case("infer.py on the export of an unfinished model", "infer.py",
         lambda w: ["--model_dir", os.path.join(w["tmp"], "unfinished"), "--img_path", w["image"], "--save_dir",
                    os.path.join(w["tmp"], "res")], prepare=_unfinished_export, common=False, trained=True, code=0,
         check=_check_unfinished_warning, outcome="scored, with a warning: training not finished"),
    Case("--resume on a finished run", "train.py",
         lambda w: ["--category", "brick", "--resume"] + SMALL[w["folder"]], trained=True, code=0,
         check=_check_nothing_to_resume, outcome="\"nothing to resume\", nothing changed", folders=RESUMABLE),
    Case("retraining over a finished model, Ctrl-C after its first save", "train.py",
         lambda w: ["--category", "brick"] + LONG[w["folder"]], "interrupted", trained=True,
         prepare=_remember("model.pdparams", "args.yml"),
         interrupt=lambda w: os.path.join(w["out"], "brick", FIRST_SAVE[w["folder"]]),
         check=lambda w, r: _error_line(r, "interrupted") or ("; ".join(_changed(w) + _temps(w["tmp"])) or None),
         outcome="exit code 130; the finished model and its args.yml as they were"),
    Case("SIGTERM during train.py (retraining)", "train.py",
         lambda w: ["--category", "brick"] + LONG[w["folder"]], trained=True, signal="TERM",
         prepare=_remember("model.pdparams", "args.yml"),
         interrupt=lambda w: os.path.join(w["out"], "brick", FIRST_SAVE[w["folder"]]),
         check=lambda w, r: _error_line(r, "terminated") or _check_kept_and_resumable(w, r),
         outcome=lambda f: "exit code 143, \"terminated\"; no temporary file; the old model kept; " +
         ("its state kept, --resume finishes" if f in RESUMABLE else "(a fit has no --resume)")),
    Case("SIGTERM during predict.py", "predict.py",
         lambda w: ["--model_path", _model(w), "--img_path", os.path.join(w["tmp"], "many"), "--save_dir",
                    os.path.join(w["tmp"], "res")], prepare=_copies("many", 40), common=False, trained=True,
         signal="TERM", interrupt=os.path.join("res", "run.json"),
         check=lambda w, r: _error_line(r, "terminated") or _check_terminated_predict(w, r),
         outcome="exit code 143, \"terminated\"; whole lines, no temporary file, no summary.json"),
    Case("predict.py while train.py trains the same category", "predict.py",
         lambda w: ["--model_path", _model(w), "--img_path", w["image"]], trained=True, common=False,
         prepare=_remember("model.pdparams"), background=_busy_train, check=_check_refused_while_training,
         outcome="refused: in use by train.py (pid ...)"),
    Case("export_model.py while train.py trains the same category", "export_model.py",
         lambda w: ["--model_path", _model(w)], trained=True, common=False, prepare=_remember("model.pdparams"),
         background=_busy_train, check=_check_refused_while_training, outcome="refused: in use by train.py (pid ...)"),
    # ---- model files are data; every number is checked; special files; verified exports (issue 30)
    Case("a model.pdparams that runs a command when unpickled", "predict.py",
         lambda w: ["--model_path", _model(w), "--img_path", w["image"], "--save_dir", os.path.join(w["tmp"], "res")],
         "not a plain checkpoint", prepare=_crafted_checkpoint(), common=False, folders=set(FOLDERS)),
    Case("a model.pdparams that runs a command when unpickled", "val.py", lambda w: ["--category", "brick"],
         "not a plain checkpoint", prepare=_crafted_checkpoint(), folders=set(FOLDERS)),
    Case("a model.pdparams that runs a command when unpickled", "export_model.py",
         lambda w: ["--output_dir", w["out"], "--category", "brick"], "not a plain checkpoint",
         prepare=_crafted_checkpoint(), common=False, folders=set(FOLDERS)),
    Case("a model.pdparams that runs a command when unpickled, --resume", "train.py",
         lambda w: ["--category", "brick", "--resume", "True"] + SMALL[w["folder"]], "not a plain checkpoint",
         prepare=_crafted_checkpoint(), trained=True, folders=RESUMABLE),
    Case("--pretrained weights that run a command when unpickled", "train.py",
         lambda w: ["--category", "brick", "--pretrained", os.path.join(w["tmp"], "weights.pdparams")]
         + SMALL[w["folder"]], "not a plain checkpoint", prepare=_crafted_weights, folders=set(FOLDERS)),
    Case("--threshold nan", "predict.py",
         lambda w: ["--model_path", _model(w), "--img_path", w["image"], "--threshold", "nan"], "finite number",
         common=False, folders=set(FOLDERS)),
    Case("--lr inf", "train.py", lambda w: ["--category", "brick", "--lr", "inf"] + SMALL[w["folder"]],
         "finite number", folders=RESUMABLE),
    Case("--lr 1e999", "train.py", lambda w: ["--category", "brick", "--lr", "1e999"] + SMALL[w["folder"]],
         "finite number", folders=RESUMABLE),
    Case("--lr 1e30 (training diverges)", "train.py", lambda w: ["--category", "brick", "--lr", "1e30"]
         + SMALL[w["folder"]], folders=RESUMABLE, code=2, check=_check_diverged,
         outcome="stopped: one error line, exit code 2, no model.pdparams"),
    Case("--cpu_threads 100000", "infer.py", lambda w: _infer_args(lambda w: w["image"])(w) + ["--cpu_threads",
                                                                                                  "100000"],
         "--cpu_threads must be in", common=False, folders=set(FOLDERS)),
    Case("--poll inf", "infer.py", lambda w: _infer_args(lambda w: w["image"])(w) + ["--poll", "inf"],
         "finite number", common=False, folders=set(FOLDERS)),
    Case("--max_megapixels 1e999", "predict.py",
         lambda w: ["--model_path", _model(w), "--img_path", w["image"], "--max_megapixels", "1e999"],
         "finite number", common=False, folders=set(FOLDERS)),
    Case("a FIFO named like an image among the images", "infer.py",
         lambda w: _infer_args(lambda w: os.path.join(w["tmp"], "imgs"))(w) + ["--save_dir",
                                                                               os.path.join(w["tmp"], "res")],
         prepare=_fifo_among_images, common=False, trained=True, code=0, check=_check_fifo_skipped,
         outcome="scored, the FIFO skipped with a warning"),
    Case("random bytes written into the exported inference.pdiparams", "infer.py",
         _infer_args(lambda w: w["image"]), "does not match the SHA-256", prepare=_damaged_params, common=False,
         trained=True),
    Case("two infer.py runs into one --save_dir (the first one watching a folder)", "infer.py",
         lambda w: _infer_args(lambda w: w["image"])(w) + ["--save_dir", os.path.join(w["tmp"], "shared")],
         trained=True, common=False, prepare=_copies("many", 40), background=_busy_infer,
         check=_check_first_infer_kept, outcome="the second refused (in use); the first one's results whole"),
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
    """Tiny synthetic data for the cases: brick at 64 px; and brick with 300 training images (a fit that
    takes a while, for a PaDiM training caught in the middle)."""
    from shared_data.synthetic import generate
    generate(root, ["brick"], seed=0, image_size=64, n_train=4, n_test_good=1, n_test_defect=1)
    generate(os.path.join(root, "big"), ["brick"], seed=0, image_size=64, n_train=300, n_test_good=1, n_test_defect=1)
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


def _command(script, args, folder):
    """(argv, working folder) of one run: a paper folder's script, or a data tool as python -m."""
    if script.startswith("-m "):
        return [sys.executable, "-m", script[3:]] + args, ROOT
    return [sys.executable, script] + args, os.path.join(ROOT, folder)


def _stamp(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _run(cmd, cwd, interrupt, sig, timeout):
    """(exit code, stdout, stderr) of ``cmd``; with ``interrupt`` (a path), ``sig`` once the run has written
    that path (it appears, or changes if it was there)."""
    with tempfile.TemporaryFile("w+", errors="replace") as out, tempfile.TemporaryFile("w+", errors="replace") as err:
        before = _stamp(interrupt) if interrupt else None
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err)
        t0 = time.time()
        try:
            if interrupt:
                while proc.poll() is None and _stamp(interrupt) in (None, before) and time.time() - t0 < timeout:
                    time.sleep(0.01)
                if proc.poll() is None:
                    proc.send_signal(sig)
            proc.wait(timeout=max(1.0, timeout - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None, "", ""
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read()


def _start_background(case, w, timeout):
    """The other run a case happens beside: started, and waited for until it is under way."""
    args, folder, ready, end = case.background(w)
    cmd, cwd = _command(args[0], args[1:], folder)
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while proc.poll() is None and not os.path.exists(ready) and time.time() - t0 < timeout:
        time.sleep(0.02)
    if proc.poll() is not None:
        raise RuntimeError(f"the background run ended before the case: {proc.stderr.read()[-1500:]}")
    return proc, end


def _stop_background(proc, end, timeout):
    if end == "kill":
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return {"code": proc.returncode, "stderr": err}


def run_case(folder, case, data, tmp, timeout=300, trained=None):
    """Run one case in a fresh working folder (``trained``: the output folder of train_small, copied in
    first for ``case.trained``). Returns {"ok", "outcome", "stderr", "line"}. A mistake is ok when the run
    ended with exit code 2 (130 / 143 when interrupted), exactly one `error:` line (warnings aside)
    holding the expected words, no traceback, and no file written or changed besides what the case
    prepared; any other case when its exit code is the expected one and its check finds nothing wrong."""
    import shutil
    test = os.path.join(data, "brick", "test")
    w = {"tmp": tmp, "out": os.path.join(tmp, "out"), "method": METHOD.get(folder), "folder": folder, "data": data,
         "big": os.path.join(data, "big"), "blocker": os.path.join(tmp, "file"),
         "image": os.path.join(test, "good", sorted(os.listdir(os.path.join(test, "good")))[0])}
    kind = next(k for k in sorted(os.listdir(test)) if k != "good")
    w["defect"] = os.path.join(test, kind, sorted(os.listdir(os.path.join(test, kind)))[0])
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
    args = (["--data_dir", data, "--output_dir", w["out"]] if case.common else []) + [str(a) for a in case.args(w)]
    cmd, cwd = _command(case.script, args, folder)
    background = _start_background(case, w, timeout) if case.background else None
    interrupt = case.interrupt(w) if callable(case.interrupt) else \
        (os.path.join(tmp, case.interrupt) if case.interrupt else None)
    sig = signal.SIGTERM if case.signal == "TERM" else signal.SIGINT
    code, stdout, stderr = _run(cmd, cwd, interrupt, sig, timeout)
    bg = _stop_background(*background, timeout) if background else None
    if code is None:
        return {"ok": False, "outcome": f"hang (killed after {timeout} s)", "stderr": "", "line": ""}
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.lower().startswith(("warning", "note"))
             and "warn" not in ln.lower()]
    changed = {p: v for p, v in _snapshot(tmp).items() if before.get(p) != v}
    r = {"code": code, "stdout": stdout, "stderr": stderr, "background": bg,
         "changed": sorted(os.path.relpath(p, tmp) for p in changed)}
    if "Traceback" in stderr or "Traceback" in ((bg or {}).get("stderr") or ""):
        outcome = "traceback"
    elif code != case.expected_code():
        outcome = f"exit code {code}"
    elif case.check:
        problem = case.check(w, r)
        outcome = f"wrong: {problem}" if problem else _said(case, folder)
    elif len(lines) != 1 or not lines[0].startswith("error: ") or case.words not in lines[0]:
        outcome = "unclear message"
    elif changed:
        outcome = "files left: " + ", ".join(r["changed"][:6])
    else:
        outcome = _said(case, folder)
    ok = outcome == _said(case, folder)
    return {"ok": ok, "outcome": outcome, "stderr": stderr[-1500:], "line": lines[0] if lines else ""}


def _said(case, folder):
    """The row's text for a run that ends as it should."""
    return case.outcome(folder) if callable(case.outcome) else case.outcome


def applies(case, folder):
    return folder in (case.folders if case.folders is not None else FOLDERS)


def run_all(folders=COLUMNS, log=print):
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
    names = {f: f.replace("-Paddle", "") for f in folders}
    names[TOOLS] = "data tools"
    head = ("| case | script | " + " | ".join(names[f] for f in folders) + " |\n|---|---|" + "---|" * len(folders)
            + "\n")
    rows = ""
    for (name, script), per in results.items():
        cells = [per[f]["outcome"] if f in per else "—" for f in folders]
        shown = f"python {script}" if script.startswith("-m ") else script
        rows += f"| {name} | `{shown}` | " + " | ".join(cells) + " |\n"
    n = sum(len(p) for p in results.values())
    ok = sum(r["ok"] for p in results.values() for r in p.values())
    return (f"_Generated by `python scripts/reliability.py --readme README.md` on {time.strftime('%Y-%m-%d')} "
            f"({seconds:.0f} s): {ok} of {n} runs end as the row says (a mistake: one error line, exit code 2, "
            "nothing written)._\n\n" + head + rows)


def main(argv=None):
    p = ArgumentParser(description=__doc__)
    p.add_argument("--folders", default=",".join(COLUMNS))
    p.add_argument("--readme", default=None, help="replace the reliability block of this Markdown file")
    a = p.parse_args(argv)
    folders = [f for f in a.folders.split(",") if f]
    unknown = [f for f in folders if f not in COLUMNS]
    if unknown:
        raise UserError(f"unknown folder {unknown[0]} (one of {', '.join(COLUMNS)})")
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
