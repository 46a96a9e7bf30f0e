"""Helpers for PaDiM's tests (a uniquely named module: four paper folders share one pytest run)."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # PaDiM-Paddle/


def run_script(script, *args, cwd=HERE, env=None):
    """Run a script of this folder in a subprocess; returns CompletedProcess (text)."""
    return subprocess.run([sys.executable, os.path.join(HERE, script), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=env)


def one_line_error(r):
    """Assert a failed run printed exactly one 'error: ...' line on stderr; return it."""
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip() and "warn" not in ln.lower()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    return lines[0]
