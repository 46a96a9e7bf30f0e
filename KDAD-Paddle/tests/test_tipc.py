"""The TIPC lite_train_lite_infer chain, run as users run it; every results line must be a success."""
import os

import pytest
from kdad_testutil import HERE

from adcommon.tipc import run_lite_chain

CONFIG = "test_tipc/configs/KDAD/train_infer_python.txt"


@pytest.mark.slow
def test_lite_train_lite_infer_chain():
    lines, failed, out = run_lite_chain(HERE, CONFIG, "KDAD")
    assert not failed, "\n".join(failed) + out
    # train + eval + export + CPU matrix (oneDNN 2 x threads 2 x batch 2); GPU rows only with CUDA
    assert len(lines) >= 11, lines
    assert any("--use_mkldnn=False" in ln for ln in lines) and any("--use_mkldnn=True" in ln for ln in lines)


def test_config_is_format_a_and_keys_are_real_flags():
    """51 lines; every '--flag' key is a flag of the script that receives it."""
    with open(os.path.join(HERE, CONFIG)) as f:
        lines = f.read().splitlines()
    assert len(lines) == 51 and lines[0].startswith("====") and lines[1] == "model_name:KDAD"
    scripts = {"train": lines[15].split(":", 1)[1].split()[0], "infer": lines[39].split(":", 1)[1].split()[0],
               "export": lines[29].split(":", 1)[1].split()[0]}
    owners = {4: "train", 7: "train", 8: "train", 9: "train", 27: "export", 28: "export"}
    owners.update({i: "infer" for i in range(40, 51)})
    for i, who in owners.items():
        key = lines[i].split(":", 1)[0]
        if key == "null":
            continue
        src = open(os.path.join(HERE, scripts[who])).read()
        if who == "infer":
            src += open(os.path.join(os.path.dirname(HERE), "adcommon", "infer.py")).read()
            src += open(os.path.join(os.path.dirname(HERE), "adcommon", "cli.py")).read()
        if who == "train":
            src += open(os.path.join(os.path.dirname(HERE), "adcommon", "cli.py")).read()
        assert f'"{key}"' in src, (i + 1, key, scripts[who])
