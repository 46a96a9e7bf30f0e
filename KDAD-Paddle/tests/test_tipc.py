"""The TIPC lite_train_lite_infer chain (scripts/tipc/, shared by the four folders), run as users run it."""
import pytest
from kdad_testutil import HERE

from adcommon.tipc import config_errors, expected_results, run_lite_chain

CONFIG = "test_tipc/configs/KDAD/train_infer_python.txt"


def test_config_keys_are_real_flags():
    assert config_errors(HERE, CONFIG) == []


@pytest.mark.slow
def test_lite_train_lite_infer_chain():
    import paddle
    lines, failed, out = run_lite_chain(HERE, CONFIG, "KDAD")
    assert not failed, "\n".join(failed) + out
    cuda = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    assert len(lines) == expected_results(HERE, CONFIG, cuda), "\n".join(lines)
    assert any("--use_mkldnn=False" in ln for ln in lines) and any("--use_mkldnn=True" in ln for ln in lines)
