import re

import pytest

from adcommon.deploy.autolog import Times, get_autologger


def test_times_rotate_keys_and_skip_warmup():
    t = Times(["a", "b", "c"], warmup=1)
    for _ in range(3):
        t.start()
        t.stamp()
        t.stamp()
        t.end(stamp=True)
    assert [len(t.times[k]) for k in "abc"] == [3, 3, 3]
    assert t._num_counts() == 3
    assert t.value("a") >= 0 and set(t.value()) == {"a", "b", "c"}


def test_warmup_larger_than_entries_is_an_error():
    t = Times(["a"], warmup=2)
    t.start()
    t.end(stamp=True)
    with pytest.raises(ValueError):
        t.value("a")


def test_report_has_autolog_blocks_and_does_not_exit(tmp_path, capsys):
    pytest.importorskip("paddle")
    path = tmp_path / "auto_log.log"
    log = get_autologger("PaDiM", batch_size=2, inference_config={"use_gpu": False, "ir_optim": True,
                                                                  "mkldnn_enabled": False,
                                                                  "cpu_math_library_num_threads": 2},
                         save_path=str(path))
    for _ in range(2):
        log.times.start()
        log.times.stamp()
        log.times.stamp()
        log.times.end(stamp=True)
    log.report()
    text = path.read_text()
    for block in ("Env info", "Paddle info", "Conf info", "Model info", "Data info", "Perf info"):
        assert f"{block} ---" in text
    assert re.search(r"^\[\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\] root INFO:  model_name: PaDiM$", text, re.M)
    assert re.search(r"data_num: 2$", text, re.M)
    assert re.search(r"enable_mkldnn: False$", text, re.M)
    assert re.search(r"cpu_math_library_num_threads: 2$", text, re.M)
    assert re.search(r"cpu_rss\(MB\): [\d.]+, gpu_rss\(MB\): None, gpu_util: None%", text)
    assert re.search(r"preprocess_time\(ms\): [\d.]+, inference_time\(ms\): [\d.]+, postprocess_time\(ms\): [\d.]+",
                     text)
    assert "total time spent(s)" in capsys.readouterr().out  # also on stdout
