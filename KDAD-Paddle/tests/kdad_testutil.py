"""Helpers for KDAD's tests (a uniquely named module: four paper folders share one pytest run)."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # KDAD-Paddle/
ROOT = os.path.dirname(HERE)

# Tiny but complete runs: 64 px input (pool5 is 2 x 2), random expert (no weights needed offline).
TRAIN_ARGS = ("--pretrained", "none", "--image_size", 64, "--batch_size", 4, "--eval_interval", 1,
              "--save_interval", 1)


def run_script(script, *args, cwd=HERE, env=None):
    """Run a script of this folder in a subprocess; returns CompletedProcess (text)."""
    return subprocess.run([sys.executable, os.path.join(HERE, script), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=900, env=env)


def one_line_error(r):
    """Assert a failed run printed exactly one 'error: ...' line on stderr (Paddle's own import
    warnings aside); return it."""
    assert r.returncode != 0, r.stdout[-1000:]
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip() and "warn" not in ln.lower()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def load_script(name):
    """Import one of this folder's scripts under a unique module name (train.py exists in every folder)."""
    from adcommon.tools.testing import load_script as load
    return load(os.path.join(HERE, f"{name}.py"))


def paddle_major():
    import paddle
    v = paddle.__version__
    return 99 if v.startswith("0.0") else int(v.split(".")[0])
