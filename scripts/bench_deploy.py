"""The deployment benchmark (`python scripts/benchmark.py --deploy`): infer.py end to end as a production
line runs it, against anomalib's own OpenVINO deployment of the same networks on the same images in the
same run (../shared/peer/anomalib_deploy.py, in its own venv).

For PaDiM and STFPM with ResNet-18 at 256 px (random weights: the speed is that of ImageNet weights), on
256 px PNG images, --save_vis False (a verdict, a mask PNG and a line per image, as the peer writes a mask
PNG): images/s and peak RSS of infer.py for 100 and 1000 images, per backend and batch 1 and 8, each run
a fresh process (summary.json: the seconds of scoring, the peak RSS). Also where the time goes, stage by
stage, with the stages one after another (--workers 0) and overlapped (the default), and the version
before the streaming pipeline (a git worktree of BEFORE) on the same images.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(os.path.dirname(ROOT), "shared", "peer", "anomalib_deploy.py")
BEFORE = "b9a5677"   # the last version that kept every map until the end and ran one step after another
FOLDERS = {"PaDiM": "PaDiM-Paddle", "STFPM": "STFPM-Paddle"}
SIZE = 256


def _run(cmd, cwd, timeout=3600):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if r.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(map(str, cmd))}:\n{r.stderr[-1500:]}")
    return r


def _models(tmp, data):
    """PaDiM and STFPM, ResNet-18 at 256 px (the whole image), fitted / trained for a moment on 16 images
    and exported with --onnx True. Returns {method: export folder}."""
    out = {}
    for method, folder in FOLDERS.items():
        o = os.path.join(tmp, f"out_{method}")
        flags = ["--pretrained", "none", "--image_size", str(SIZE), "--backbone", "resnet18"]
        flags += ["--crop_size", "none"] if method == "PaDiM" else ["--epochs", "1", "--batch_size", "8"]
        _run([sys.executable, "train.py", "--data_dir", data, "--category", "fit", "--output_dir", o] + flags,
             os.path.join(ROOT, folder))
        _run([sys.executable, "export_model.py", "--output_dir", o, "--category", "fit", "--onnx", "True"],
             os.path.join(ROOT, folder))
        out[method] = os.path.join(o, "fit", "inference")
    return out


def _images(tmp, n_max):
    """256 px PNGs: synthetic brick images (distinct files), in folders of 100 and of n_max."""
    from shared_data.synthetic import generate
    data = os.path.join(tmp, "data")
    gen = os.path.join(tmp, "gen")
    generate(gen, ["brick"], seed=3, image_size=SIZE, n_train=n_max, n_test_good=1, n_test_defect=1)
    src = sorted(os.path.join(gen, "brick", "train", "good", f)
                 for f in os.listdir(os.path.join(gen, "brick", "train", "good")))
    os.makedirs(os.path.join(data, "fit", "train", "good"))
    for d in ("good", "crack"):
        os.makedirs(os.path.join(data, "fit", "test", d))
    for i, p in enumerate(src[:16]):
        shutil.copy(p, os.path.join(data, "fit", "train", "good", f"{i:03d}.png"))
    shutil.copy(src[16], os.path.join(data, "fit", "test", "good", "000.png"))
    shutil.copy(src[17], os.path.join(data, "fit", "test", "crack", "000.png"))
    sets = {}
    for n in sorted({100, n_max}):
        d = os.path.join(tmp, f"images{n}")
        os.makedirs(d)
        for p in src[:n]:
            os.link(p, os.path.join(d, os.path.basename(p)))
        sets[n] = d
    return data, sets


def _infer(folder, model, images, save, backend, batch, extra=(), root=ROOT):
    """One infer.py run in a fresh process; its summary.json (seconds of scoring, peak RSS, stages)."""
    cmd = [sys.executable, "infer.py", "--model_dir", model, "--img_path", images, "--save_dir", save,
           "--batch_size", str(batch), "--save_vis", "False", "--backend", backend, "--use_mkldnn", "True",
           "--cpu_threads", "2"] + list(extra)
    _run(cmd, os.path.join(root, folder))
    with open(os.path.join(save, "summary.json"), encoding="utf-8") as f:
        return json.load(f)


PEAK = """import resource, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as e:
    code = e.code
print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def _before(tmp, folder, model, images, batch):
    """The version BEFORE on the same images, in a git worktree: (images/s from its own timing line, peak
    RSS MB of its process). It kept every map until the end and ran one step after another."""
    import re
    wt = os.path.join(tmp, "before")
    if not os.path.isdir(wt):
        subprocess.run(["git", "worktree", "add", "--detach", wt, BEFORE], cwd=ROOT, capture_output=True, check=True)
    wrapper = os.path.join(tmp, "peak.py")
    with open(wrapper, "w", encoding="utf-8") as f:
        f.write(PEAK)
    save = os.path.join(tmp, f"before_{folder}_{batch}_{os.path.basename(images)}")
    r = _run([sys.executable, wrapper, "infer.py", "--model_dir", model, "--img_path", images, "--save_dir", save,
              "--batch_size", str(batch), "--save_vis", "False", "--use_mkldnn", "True", "--cpu_threads", "2"],
             os.path.join(wt, folder))
    n, secs = re.search(r"(\d+) image\(s\) in ([\d.]+) s", r.stdout).groups()
    return int(n) / float(secs), float(re.search(r"PEAK ([\d.]+)", r.stdout).group(1))


# the peer with OpenVINO's precision pinned to f32: its default on a CPU with bf16 units is bf16
F32 = """import runpy, sys
import openvino as ov
_compile = ov.Core.compile_model
def compile_model(self, *args, **kwargs):
    kwargs["config"] = dict(kwargs.get("config") or {}, INFERENCE_PRECISION_HINT="f32")
    return _compile(self, *args, **kwargs)
ov.Core.compile_model = compile_model
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _peer(python, method, images, tmp, f32=False):
    """anomalib's deployment (../shared/peer/anomalib_deploy.py) on ``images``, run in ``tmp`` (it writes
    an openvino_cache folder where it runs); with ``f32``, OpenVINO pinned to f32."""
    cmd = [python, PEER, method.lower(), images, "--backbone", "resnet18", "--size", str(SIZE), "--threads", "2"]
    if f32:
        wrapper = os.path.join(tmp, "peer_f32.py")
        with open(wrapper, "w", encoding="utf-8") as f:
            f.write(F32)
        cmd = [python, wrapper] + cmd[1:]
    r = _run(cmd, tmp)
    return json.loads(r.stdout.strip().splitlines()[-1])


def _precision():
    """OpenVINO's default inference precision on this CPU (bf16 where the CPU has bf16 units)."""
    try:
        import openvino as ov
        name = str(ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")).split("'")[1]
        return {"bfloat16": "bf16", "float32": "f32"}.get(name, name)
    except Exception:  # noqa: BLE001 - only a note
        return "unknown"


def _agreement(a, b):
    """Largest and median relative difference of the image scores of two runs over the same images."""
    import numpy as np

    def scores(folder):
        with open(os.path.join(folder, "predictions.jsonl"), encoding="utf-8") as f:
            return {r["path"]: r["score"] for r in map(json.loads, f)}
    sa, sb = scores(a), scores(b)
    d = np.array([abs(sa[k] - sb[k]) / max(abs(sa[k]), 1e-12) for k in sa])
    return float(d.max()), float(np.median(d))


def deploy_rows(quick=False, peer_python=None):
    """The deployment table's rows (see the module's doc): 1000 images, or 200 with ``quick``; the peer's
    rows need ``peer_python``, the python of a venv with its requirements."""
    n_max = 200 if quick else 1000
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data, sets = _images(tmp, n_max)
        models = _models(tmp, data)
        for method, model in models.items():
            backend_rows, best = _backend_rows(tmp, method, model, sets, n_max)
            rows += backend_rows
            rows += _stage_rows(tmp, method, model, sets[min(sets)])
            rows += _before_rows(tmp, method, model, sets)
            rows += _peer_rows(peer_python, tmp, method, sets, n_max, best)
        if os.path.isdir(os.path.join(tmp, "before")):
            subprocess.run(["git", "worktree", "remove", "--force", os.path.join(tmp, "before")], cwd=ROOT,
                           capture_output=True)
    return rows


def _backend_rows(tmp, method, model, sets, n_max):
    """infer.py per backend and batch (and OpenVINO in bf16) on each image set, then how far OpenVINO's
    bf16 scores are from its fp32 ones. Returns (rows, best) where best = {"f32" / "bf16": (images/s,
    the backend and batch)}."""
    folder, few = FOLDERS[method], min(sets)
    rows, best = [], {}
    runs = [(b, bs, "fp32") for b in ("paddle", "onnxruntime", "openvino") for bs in (1, 8)]
    runs.append(("openvino", 8, "fp16"))
    for backend, batch, precision in runs:
        tag = f"{method}_{backend}_{batch}_{precision}"
        got = {n: _infer(folder, model, d, os.path.join(tmp, f"res_{tag}_{n}"), backend, batch,
                         ["--precision", precision]) for n, d in sets.items()}
        big, small = got[n_max], got[few]
        speed = big["images"] / big["seconds"]
        key = "bf16" if precision == "fp16" else "f32"
        best[key] = max(best.get(key, (0, "")), (speed, f"{backend}, batch {batch}"))
        growth = 100 * (big["peak_rss_mb"] / small["peak_rss_mb"] - 1)
        label = " --precision fp16 (bf16)" if precision == "fp16" else ""
        rows.append({"method": method, "what": f"infer.py --backend {backend}{label}, batch {batch}, {n_max} "
                     "images", "value": f"{speed:.1f} img/s",
                     "note": f"peak RSS {big['peak_rss_mb']:.0f} MB ({small['peak_rss_mb']:.0f} MB for "
                             f"{few} images, {growth:+.1f} %); {small['images'] / small['seconds']:.1f}"
                             f" img/s for {few}"})
    worst, median = _agreement(os.path.join(tmp, f"res_{method}_openvino_8_fp32_{n_max}"),
                               os.path.join(tmp, f"res_{method}_openvino_8_fp16_{n_max}"))
    rows.append({"method": method, "what": "image scores, OpenVINO bf16 vs fp32, same images",
                 "value": f"{100 * median:.2g} % median", "note": f"largest {100 * worst:.2g} % (relative)"})
    return rows, best


def _stage_rows(tmp, method, model, images):
    """Where the time goes: every stage in turn in one thread, then overlapped (Paddle Inference, batch 8)."""
    rows = []
    for label, extra in (("in turn (--workers 0)", ["--workers", "0"]), ("overlapped (default)", [])):
        s = _infer(FOLDERS[method], model, images, os.path.join(tmp, f"stages_{method}_{label[:5]}"),
                   "paddle", 8, extra)
        t = s["timings"]
        rows.append({"method": method, "what": f"the stages {label}, paddle batch 8, {s['images']} images",
                     "value": f"{s['images'] / s['seconds']:.1f} img/s",
                     "note": ", ".join(f"{k} {v:.2f} s" for k, v in t.items()) +
                             f" (sum {sum(t.values()):.2f} s in {s['seconds']:.2f} s of wall time)"})
    return rows


def _before_rows(tmp, method, model, sets):
    """The version BEFORE on each image set, or a row saying why it was not measured."""
    rows = []
    try:
        for n, d in sets.items():
            speed, rss = _before(tmp, FOLDERS[method], model, d, 8)
            rows.append({"method": method, "what": f"before ({BEFORE}): infer.py, Paddle Inference + oneDNN,"
                         f" batch 8, {n} images", "value": f"{speed:.1f} img/s",
                         "note": f"peak RSS {rss:.0f} MB"})
    except (subprocess.CalledProcessError, RuntimeError, AttributeError) as e:
        rows.append({"method": method, "what": f"before ({BEFORE})", "value": "not measured",
                     "note": str(e).splitlines()[0][:120]})
    return rows


def _peer_rows(peer_python, tmp, method, sets, n_max, best):
    """anomalib's OpenVINO deployment at its default precision and pinned to f32 on each image set, and
    our best backend (``best``, from _backend_rows) against it on n_max images; without ``peer_python``,
    a row saying it was not run."""
    if not peer_python:
        return [{"method": method, "what": "anomalib 2.7 OpenVINOInferencer (peer)", "value": "not run",
                 "note": "pass --peer_python (a venv with ../shared/peer's requirements)"}]
    rows = []
    default = _precision()
    for f32 in (False, True):
        for n, d in sets.items():
            p = _peer(peer_python, method, d, tmp, f32)
            prec = "f32 (pinned)" if f32 else f"its default precision here, {default}"
            rows.append({"method": method, "what": f"anomalib 2.7 OpenVINOInferencer (peer), {prec}, {n} "
                         "images", "value": f"{p['images_per_s']:.1f} img/s",
                         "note": f"peak RSS {p['peak_rss_mb']} MB"})
            if n == n_max:
                ours = best["f32" if f32 else ("bf16" if default == "bf16" else "f32")]
                rows.append({"method": method, "what": f"ours (best backend) vs the peer, {prec}",
                             "value": f"x{ours[0] / p['images_per_s']:.2f}",
                             "note": f"{ours[0]:.1f} img/s ({ours[1]}) vs {p['images_per_s']:.1f} img/s"})
    return rows
