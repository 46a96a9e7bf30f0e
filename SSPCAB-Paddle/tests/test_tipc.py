"""TIPC lite chain (prepare.sh + test_train_inference_python.sh) and its config's keys."""
import os
import re
import subprocess

import pytest
from sspcab_helpers import PAPER

CONFIG = os.path.join(PAPER, "test_tipc", "configs", "SSPCAB", "train_infer_python.txt")


def _lines():
    with open(CONFIG, encoding="utf-8") as f:
        return f.read().splitlines()


def _parser(script):
    """The argparse parser of one of our scripts, loaded under a unique module name."""
    from adcommon.cli import load_script
    return load_script(os.path.join(PAPER, script)).build_parser()


def _flags(parser):
    return {s for a in parser._actions for s in a.option_strings}


def test_every_config_key_is_a_real_flag():
    from adcommon.infer import build_infer_parser
    lines = _lines()
    assert len(lines) == 33 and lines[1] == "model_name:SSPCAB"
    flags = {s: _flags(_parser(s)) for s in ("train.py", "val.py", "export_model.py")}
    flags["infer.py"] = _flags(build_infer_parser("x"))
    # 1-based line -> the scripts the key is given to by test_train_inference_python.sh
    users = {5: ["train.py"], 6: ["train.py"], 7: ["train.py", "val.py"], 8: ["train.py"], 9: ["train.py"],
             11: ["train.py", "val.py"], 20: ["export_model.py"], 21: ["export_model.py"],
             28: ["infer.py"], 29: ["infer.py"], 30: ["infer.py"], 31: ["infer.py"], 32: ["infer.py"],
             33: ["infer.py"]}
    for n, scripts in users.items():
        key = lines[n - 1].split(":", 1)[0]
        for s in scripts:
            assert key in flags[s], f"line {n}: {key} is not a flag of {s}"
    # the fixed arguments of the train / eval / export / inference lines too
    for n, script in ((14, "train.py"), (17, "val.py"), (22, "export_model.py"), (27, "infer.py")):
        value = lines[n - 1].split(":", 1)[1].split()
        assert value[0] == script
        for arg in value[1:]:
            if arg.startswith("--"):
                assert arg in flags[script], f"line {n}: {arg} is not a flag of {script}"


@pytest.mark.slow
def test_lite_chain_runs(tmp_path):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    rel = os.path.relpath(CONFIG, PAPER)
    r = subprocess.run(["bash", "test_tipc/prepare.sh", rel, "lite_train_lite_infer"], cwd=PAPER, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run(["bash", "test_tipc/test_train_inference_python.sh", rel, "lite_train_lite_infer"],
                       cwd=PAPER, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0                                             # the script never fails itself
    log = os.path.join(PAPER, "test_tipc", "output", "SSPCAB", "results_python.log")
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in open(log, encoding="utf-8") if ln.strip()]
    failed = [ln for ln in lines if not ln.startswith("Run successfully with command - ")]
    assert not failed, "\n".join(failed)
    # train, eval, export, then oneDNN (True|False) x batch size (1|2) inference runs
    assert len(lines) == 7, "\n".join(lines)
    for what in ("train.py", "val.py", "export_model.py"):
        assert sum(what in ln for ln in lines) == 1
    assert sum("--use_mkldnn=True" in ln for ln in lines) == 2 and sum("--use_mkldnn=False" in ln for ln in lines) == 2
