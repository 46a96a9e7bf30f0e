"""Helpers for the STFPM tests (a uniquely named module: every paper folder has a tests/ dir)."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PAPER = os.path.dirname(HERE)            # STFPM-Paddle/

IMAGE_SIZE = 64  # STFPM works at any multiple of 32; 64 keeps every test fast (layer3 is 4 x 4)
CATEGORY = "brick"


def load_script(name):
    """Import STFPM-Paddle/<name>.py under a unique module name (other papers have a train.py too)."""
    from adcommon.tools.testing import load_script as load
    return load(os.path.join(PAPER, f"{name}.py"))


def run_script(name, *args, cwd=PAPER):
    """Run STFPM-Paddle/<name>.py in a subprocess -> CompletedProcess (text, captured).

    Paddle's import-time UserWarning (no ccache) is silenced so stderr holds only what our code says.
    """
    env = dict(os.environ, PYTHONWARNINGS="ignore", GLOG_minloglevel="2")
    return subprocess.run([sys.executable, os.path.join(PAPER, f"{name}.py"), *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)
