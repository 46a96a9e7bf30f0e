"""The training-step benchmark (`python scripts/benchmark.py --train_step [--peer_python PEER_VENV/bin/python]`):
the step of the slowest real-image recipe, STFPM with an EfficientNet-Lite0 student at 256 px, batch 8
(methods.tsv's `real` column), under each CPU setting worth trying, and PyTorch on the same step and
images in the same run as the anchor (scripts/peer_stfpm_step.py in ../shared/peer's venv).

Each of ours is a fresh `train.py` process on the same 64 synthetic 256 px images (51 trained on, 13
held out), 3 epochs; the figure is the mean images/s of epochs 2 and 3 as train.log reports it (the
training steps only; the held-out scoring and the teacher's cache are not counted).
"""
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_STEP = os.path.join(ROOT, "scripts", "peer_stfpm_step.py")
FLAGS = ["--backbone", "efficientnet_lite0", "--image_size", "256", "--batch_size", "8", "--epochs", "3",
         "--pretrained", "none"]
# (label, environment, extra train.py flags, processes)
VARIANTS = [
    ("eager, 2 threads (the default)", {"OMP_NUM_THREADS": "2"}, ["--compile", "False"], 1),
    ("eager, 1 thread", {"OMP_NUM_THREADS": "1"}, ["--compile", "False"], 1),
    ("eager, 2 threads, OMP_WAIT_POLICY=PASSIVE", {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
     ["--compile", "False"], 1),
    ("static oneDNN step (--compile True), 2 threads", {"OMP_NUM_THREADS": "2"}, ["--compile", "True"], 1),
    ("2 processes x 1 thread (paddle.distributed.launch, synchronised batch norm)", {"OMP_NUM_THREADS": "1"},
     ["--compile", "False"], 2),
    ("2 processes x 1 thread, batch norm per process (--sync_bn False)", {"OMP_NUM_THREADS": "1"},
     ["--compile", "False", "--sync_bn", "False"], 2),
]


def _speed(log):
    with open(log, encoding="utf-8") as f:
        rates = [float(m.group(2)) for m in re.finditer(r"epoch (\d+)/\d+: .*?, ([\d.]+) img/s", f.read())
                 if int(m.group(1)) >= 2]
    if not rates:
        raise RuntimeError(f"no epoch lines in {log}")
    return sum(rates) / len(rates)


def train_step_rows(quick=False, peer_python=None):
    from shared_data.synthetic import generate
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        generate(data, ["brick"], seed=0, image_size=256, n_train=32 if quick else 64, n_test_good=1,
                 n_test_defect=1)
        base = None
        for k, (label, env, extra, procs) in enumerate(VARIANTS):
            out = os.path.join(tmp, f"out{k}")
            cmd = [sys.executable]
            if procs > 1:
                cmd += ["-m", "paddle.distributed.launch", "--nproc_per_node", str(procs), "--log_dir",
                        os.path.join(tmp, f"launch{k}")]
            cmd += ["train.py", "--data_dir", data, "--category", "brick", "--output_dir", out] + FLAGS + extra
            r = subprocess.run(cmd, cwd=os.path.join(ROOT, "STFPM-Paddle"), env=dict(os.environ, **env),
                               capture_output=True, text=True, timeout=3600)
            if r.returncode != 0:
                rows.append({"method": "STFPM", "what": f"training step: {label}", "value": "failed",
                             "note": (r.stderr.strip().splitlines() or ["?"])[-1][:150]})
                continue
            speed = _speed(os.path.join(out, "brick", "train.log"))
            base = base or speed
            rows.append({"method": "STFPM", "what": f"training step, Lite0 student, 256 px, batch 8: {label}",
                         "value": f"{speed:.2f} img/s", "note": f"x{speed / base:.2f} of the default"})
        if not peer_python:
            rows.append({"method": "STFPM", "what": "the same step in PyTorch (peer)", "value": "not run",
                         "note": "pass --peer_python (a venv with ../shared/peer's requirements)"})
            return rows
        folder = os.path.join(data, "brick", "train", "good")
        for threads in (2, 1):
            r = subprocess.run([peer_python, PEER_STEP, folder, "--size", "256", "--batch", "8", "--threads",
                                str(threads), "--steps", "8" if quick else "16"], capture_output=True, text=True,
                               timeout=3600)
            if r.returncode != 0:
                rows.append({"method": "STFPM", "what": f"the same step in PyTorch, {threads} thread(s)",
                             "value": "failed", "note": (r.stderr.strip().splitlines() or ["?"])[-1][:150]})
                continue
            got = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append({"method": "STFPM", "what": f"the same step in PyTorch {got['torch']} + timm {got['timm']} "
                         f"(eager), {threads} thread(s)", "value": f"{got['images_per_s']:.2f} img/s",
                         "note": f"ours (default) x{base / got['images_per_s']:.2f} of it" if base else ""})
    return rows
