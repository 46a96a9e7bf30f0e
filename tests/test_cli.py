"""adcommon.cli: thread count for Paddle's CPU math library, one-line device errors."""
import os

import pytest

import adcommon
from adcommon import cli
from shared_data.errors import UserError


def test_cpu_threads_uses_the_users_omp_setting(monkeypatch):
    monkeypatch.setattr(adcommon, "USER_OMP_NUM_THREADS", "3")
    assert cli.cpu_threads() == 3


@pytest.mark.parametrize("value", [None, "", "0", "many"])
def test_cpu_threads_defaults_to_the_available_cores(monkeypatch, value):
    monkeypatch.setattr(adcommon, "USER_OMP_NUM_THREADS", value)
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert cli.cpu_threads() == expected


def test_set_device_cpu_gives_paddle_the_threads(monkeypatch):
    import paddle
    calls = []
    core = paddle.base.core
    monkeypatch.setattr(core, "set_num_threads", calls.append, raising=False)
    monkeypatch.setattr(adcommon, "USER_OMP_NUM_THREADS", "2")
    assert cli.set_device("cpu") == "cpu"
    assert calls == [2]


def test_set_device_gpu_on_cpu_build_is_one_line_error():
    import paddle
    if paddle.device.is_compiled_with_cuda():
        pytest.skip("CUDA build")
    with pytest.raises(UserError, match="no CUDA support"):
        cli.set_device("gpu")


def test_load_script_keeps_same_named_scripts_of_two_folders_apart(tmp_path):
    for folder, value in (("A-Paddle", 1), ("B-Paddle", 2)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "val.py").write_text(f"VALUE = {value}\n")
    from adcommon.testing import load_script
    a = load_script(str(tmp_path / "A-Paddle" / "val.py"))
    b = load_script(str(tmp_path / "B-Paddle" / "val.py"))
    assert (a.VALUE, b.VALUE) == (1, 2) and a.__name__ != b.__name__
