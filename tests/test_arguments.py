"""Flag values are checked while parsing, before any work: one `error:` line, exit code 2, nothing written."""
import os
import subprocess
import sys

import pytest

from adbase import RANGES, ArgumentParser, Range
from adcommon import methods

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = [m.folder for m in methods.table()]


def _parse(capsys, *argv, **limits):
    p = ArgumentParser()
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--threshold_quantile", type=float, default=0.99)
    p.add_argument("--eval_interval", type=int, default=1, **limits)
    with pytest.raises(SystemExit) as e:
        p.parse_args(list(argv))
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return e.value.code, lines


@pytest.mark.parametrize("argv, words", [
    (["--batch_size", "0"], ["--batch_size must be >= 1, got 0"]),
    (["--batch_size", "two"], ["--batch_size takes an integer, got 'two'"]),
    (["--threshold_quantile", "2"], ["--threshold_quantile must be in (0, 1), got 2"]),
    (["--threshold_quantile", "nan"], ["--threshold_quantile takes a finite number, got nan"]),
    (["--threshold_quantile", "inf"], ["--threshold_quantile takes a finite number, got inf"]),
    (["--threshold_quantile", "1"], ["in (0, 1)"]),
    (["--no_such_flag"], ["unrecognized arguments: --no_such_flag"]),
])
def test_one_line_per_bad_value(capsys, argv, words):
    code, lines = _parse(capsys, *argv)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    for w in words:
        assert w in lines[0], lines[0]


def test_a_flag_declares_its_own_range(capsys):
    code, lines = _parse(capsys, "--eval_interval", "0", limits=Range(1))
    assert code == 2 and "--eval_interval must be >= 1, got 0" in lines[0]
    p = ArgumentParser()
    p.add_argument("--eval_interval", type=int, default=1)       # no shared range: anything goes
    assert p.parse_args(["--eval_interval", "0"]).eval_interval == 0


def test_ranges_accept_their_bounds():
    assert 1 in RANGES["batch_size"] and 0 not in RANGES["batch_size"]
    assert 0 in RANGES["holdout_ratio"] and 1 not in RANGES["holdout_ratio"]
    assert 0.5 in RANGES["threshold_quantile"] and 0 not in RANGES["threshold_quantile"]
    assert str(Range(0, 1, hi_open=True)) == "in [0, 1)" and str(Range(None, 3)) == "<= 3"


@pytest.mark.parametrize("folder", FOLDERS)
@pytest.mark.parametrize("flags, words", [
    (["--threshold_quantile", "2"], "--threshold_quantile must be in (0, 1)"),
    (["--batch_size", "0"], "--batch_size must be >= 1"),
    (["--holdout_ratio", "1.5"], "--holdout_ratio must be in [0, 1)"),
])
def test_train_refuses_before_any_work(tmp_path, folder, flags, words):
    """The earlier scripts trained for the whole run before a bad --threshold_quantile failed."""
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "train.py", "--data_dir", str(tmp_path / "no_data"), "--category", "brick",
                        "--output_dir", str(out)] + flags, cwd=os.path.join(ROOT, folder),
                       capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "warn" not in ln.lower()]
    assert r.returncode == 2 and len(lines) == 1 and words in lines[0], r.stderr[-2000:]
    assert not out.exists()


@pytest.mark.parametrize("folder", FOLDERS)
def test_output_dir_that_is_a_file_refused_before_any_work(tmp_path, folder):
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output folder should be")
    for out, words in ((blocker, "is a file, not a folder"), (blocker / "sub", "a part of the path (")):
        r = subprocess.run([sys.executable, "train.py", "--data_dir", str(tmp_path / "no_data"), "--category",
                            "brick", "--output_dir", str(out)], cwd=os.path.join(ROOT, folder),
                           capture_output=True, text=True, timeout=120)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "warn" not in ln.lower()]
        assert r.returncode == 2 and len(lines) == 1 and words in lines[0], r.stderr[-2000:]
    assert blocker.read_text().startswith("a file")
