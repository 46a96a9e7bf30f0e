"""The TIPC lite_train_lite_infer chain (scripts/tipc/, shared by the four folders), run as users run it."""
import pytest
from sspcab_helpers import PAPER

from adcommon.tools.tipc import check_lite_chain, config_errors

CONFIG = "test_tipc/configs/SSPCAB/train_infer_python.txt"


def test_config_keys_are_real_flags():
    assert config_errors(PAPER, CONFIG) == []


@pytest.mark.slow
def test_lite_train_lite_infer_chain():
    check_lite_chain(PAPER, CONFIG, "SSPCAB")
