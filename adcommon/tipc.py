"""Run a paper folder's TIPC lite_train_lite_infer chain and read its results log.

The TIPC scripts never fail themselves (REFERENCE.md 7.1): success is only in
test_tipc/output/<model>/results_python.log, one "Run successfully/failed with command - ..." line per step.
"""
import os
import re
import subprocess
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def read_results(path):
    """Lines of a results_python.log without colour codes."""
    with open(path, encoding="utf-8") as f:
        return [ANSI.sub("", line).strip() for line in f if line.strip()]


def run_lite_chain(folder, config, model_name, mode="lite_train_lite_infer", timeout=1800):
    """prepare.sh + test_train_inference_python.sh in ``folder``; returns (result lines, failed lines, output)."""
    env = dict(os.environ, PYTHON=sys.executable)
    out = []
    for script in ("prepare.sh", "test_train_inference_python.sh"):
        r = subprocess.run(["bash", os.path.join("test_tipc", script), config, mode], cwd=folder, env=env,
                           capture_output=True, text=True, timeout=timeout)
        out.append(r.stdout[-3000:] + r.stderr[-3000:])
        if r.returncode != 0:
            raise RuntimeError(f"{script} exited {r.returncode}:\n{out[-1]}")
    lines = read_results(os.path.join(folder, "test_tipc", "output", model_name, "results_python.log"))
    failed = [line for line in lines if not line.startswith("Run successfully")]
    return lines, failed, "\n".join(out)
