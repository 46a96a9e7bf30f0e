"""Helpers for SSPCAB-Paddle's tests (a uniquely named module: every paper folder has a conftest.py)."""
import os
import subprocess
import sys

PAPER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # SSPCAB-Paddle/
SIZE = 128  # smallest size whose 4 x 4 layer4 map SSPCAB's masked kernel can use (64 px -> 2 x 2)
TINY_TRAIN = ["--backbone", "resnet18", "--pretrained", "none", "--image_size", str(SIZE), "--steps", "3",
              "--batch_size", "2", "--log_interval", "1"]


def run_script(script, *args, timeout=600, cwd=PAPER):
    """Run one of SSPCAB-Paddle's scripts in a subprocess; returns the CompletedProcess (text)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, os.path.join(PAPER, script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
