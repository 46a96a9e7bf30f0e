"""TIPC lite chain: prepare.sh + test_train_inference_python.sh; every command must succeed."""
import os
import re
import subprocess
import sys

import pytest
from stfpm_helpers import PAPER, load_script

CONFIG = "test_tipc/configs/STFPM/train_infer_python.txt"


def _config():
    with open(os.path.join(PAPER, CONFIG)) as f:
        lines = f.read().splitlines()
    assert len(lines) == 51, "format A has exactly 51 lines"
    return lines


def _value(line):
    return line.split(":", 1)[1]


def _script_flags(name):
    if name == "infer":
        from adcommon.infer import build_infer_parser
        parser = build_infer_parser("STFPM")
    else:
        parser = load_script(name).build_parser()
    return {s for a in parser._actions for s in a.option_strings}


def test_every_config_key_is_a_real_flag():
    lines = _config()
    owners = {"train": [4, 6, 7, 8, 9], "export_model": [27, 28], "infer": list(range(40, 51))}
    for script, idx in owners.items():
        flags = _script_flags(script)
        for i in idx:
            key = lines[i].split(":", 1)[0]
            if key != "null":
                assert key in flags, f"line {i + 1}: {key} is not a flag of {script}.py"
    # flags inside the fixed commands too
    for i, script in ((15, "train"), (23, "val"), (29, "export_model"), (39, "infer")):
        flags = _script_flags(script)
        for key in re.findall(r"(--[a-z_]+)", _value(lines[i])):
            assert key in flags, f"line {i + 1}: {key} is not a flag of {script}.py"


def _has_cuda():
    import paddle
    return paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


@pytest.mark.slow
def test_lite_train_lite_infer_chain():
    lines = _config()
    env = dict(os.environ, TIPC_PYTHON=sys.executable, PYTHONWARNINGS="ignore")
    log = os.path.join(PAPER, "test_tipc", "output", "STFPM", "results_python.log")
    if os.path.exists(log):
        os.remove(log)
    for script in ("prepare.sh", "test_train_inference_python.sh"):
        r = subprocess.run(["bash", f"test_tipc/{script}", CONFIG, "lite_train_lite_infer"], cwd=PAPER, env=env,
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    with open(log) as f:
        results = [ln for ln in f.read().splitlines() if ln.strip()]
    failed = [ln for ln in results if "Run successfully with command" not in ln]
    assert not failed, "\n".join(failed)
    n = lambda i: len(_value(lines[i]).split("|"))  # noqa: E731
    cuda = _has_cuda()
    trainings = 1 + (1 if cuda else 0)                          # gpu_list -1|0: CPU, GPU when there is one
    cpu_infer = n(41) * n(42) * n(43) * n(45)                    # mkldnn x threads x batch x precision
    gpu_infer = n(44) * n(45) * n(43) if cuda else 0             # trt x precision x batch
    expected = trainings * (3 + cpu_infer + gpu_infer)           # train, eval, export, inference
    assert len(results) == expected, "\n".join(results)
    assert sum("train.py" in ln for ln in results) == trainings
    assert sum("--use_mkldnn=False" in ln for ln in results) == trainings * cpu_infer // 2
