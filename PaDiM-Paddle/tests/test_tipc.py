"""The TIPC lite_train_lite_infer chain, run as users run it; every results line must be a success."""
import pytest
from padim_testutil import HERE

from adcommon.tipc import run_lite_chain


@pytest.mark.slow
def test_lite_train_lite_infer_chain():
    lines, failed, out = run_lite_chain(HERE, "test_tipc/configs/PaDiM/train_infer_python.txt", "PaDiM")
    assert not failed, "\n".join(failed) + out
    # train + eval + export + CPU matrix (oneDNN 2 x threads 2 x batch 2); GPU rows only with CUDA
    assert len(lines) >= 11, lines
    assert any("--use_mkldnn=False" in ln for ln in lines) and any("--use_mkldnn=True" in ln for ln in lines)
