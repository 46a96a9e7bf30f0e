"""The TIPC lite_train_lite_infer chain, run as users run it; every results line must be a success."""
import os
import re
import subprocess
import sys

import pytest

from padim_testutil import HERE

CONFIG = "test_tipc/configs/PaDiM/train_infer_python.txt"


@pytest.mark.slow
def test_lite_train_lite_infer_chain():
    env = dict(os.environ, PYTHON=sys.executable)
    for script in ("prepare.sh", "test_train_inference_python.sh"):
        r = subprocess.run(["bash", f"test_tipc/{script}", CONFIG, "lite_train_lite_infer"], cwd=HERE, env=env,
                           capture_output=True, text=True, timeout=1200)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    with open(os.path.join(HERE, "test_tipc", "output", "PaDiM", "results_python.log")) as f:
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", l).strip() for l in f if l.strip()]
    failed = [l for l in lines if not l.startswith("Run successfully")]
    assert not failed, "\n".join(failed)
    # train + eval + export + CPU matrix (oneDNN 2 x threads 2 x batch 2); GPU rows only with CUDA
    assert len(lines) >= 11, lines
    assert any("--use_mkldnn=False" in l for l in lines) and any("--use_mkldnn=True" in l for l in lines)
