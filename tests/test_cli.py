"""adcommon.cli: thread count for Paddle's CPU math library, one-line device errors."""
import argparse
import os

import pytest

import adcommon
from adbase import UserError
from adcommon import cli


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
    from adcommon.tools.testing import load_script
    a = load_script(str(tmp_path / "A-Paddle" / "val.py"))
    b = load_script(str(tmp_path / "B-Paddle" / "val.py"))
    assert (a.VALUE, b.VALUE) == (1, 2) and a.__name__ != b.__name__


def test_the_whole_image_is_inspected_unless_a_paper_setting_runs_on_mvtec():
    from adcommon.cli import crop_arg, resolve_crop
    assert resolve_crop(crop_arg("auto"), 256, "carpet") == 224           # the papers' MVTec AD setting
    assert resolve_crop(crop_arg("auto"), 128, "carpet") == 112
    assert resolve_crop(crop_arg("auto"), 64, "carpet") == 48             # a multiple of 16
    assert resolve_crop(crop_arg("auto"), 256, "brick") is None           # any other data: the whole image
    assert resolve_crop(crop_arg("none"), 256, "carpet") is None
    assert resolve_crop(crop_arg("200"), 256, "brick") == 200
    for bad in ("abc", "16"):
        with pytest.raises(argparse.ArgumentTypeError):
            crop_arg(bad)
