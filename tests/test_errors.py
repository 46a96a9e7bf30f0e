"""Atomic writes: the result gets the umask's permissions, and what a killed run left is removed."""
import os
import stat
import subprocess
import sys

import pytest

from shared_data.errors import atomic_path, make_temp_dir, remove_stale_temps, write_text_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_atomic_results_respect_the_umask(tmp_path, umask_022):
    """mkstemp/mkdtemp create private files (0600/0700); a renamed result must look like any other file."""
    write_text_atomic(tmp_path / "metrics.json", "{}")
    assert _mode(tmp_path / "metrics.json") == 0o644
    with open(tmp_path / "plain.txt", "w") as f:   # what open() gives under the same umask
        f.write("x")
    assert _mode(tmp_path / "plain.txt") == 0o644
    d = make_temp_dir("inference", str(tmp_path))
    assert _mode(d) == 0o755


def test_a_killed_runs_temporaries_are_removed_by_the_next_write(tmp_path):
    dead = _dead_pid()
    stale_file = tmp_path / f".model.{dead}-abc123.tmp.pdparams"
    stale_file.write_bytes(b"x" * 100)
    stale_dir = tmp_path / f".inference.{dead}-xyz.tmp"
    stale_dir.mkdir()
    (stale_dir / "inference.pdiparams").write_bytes(b"y")
    live = tmp_path / f".model.{os.getpid()}-live.tmp.pdparams"   # a writer that is still running
    live.write_bytes(b"z")
    other = tmp_path / ".hidden.tmp"                             # not ours: no pid in the name
    other.write_bytes(b"w")
    with atomic_path(tmp_path / "metrics.json") as tmp:
        assert os.path.basename(tmp).startswith(f".metrics.{os.getpid()}-")
        with open(tmp, "w") as f:
            f.write("{}")
    left = sorted(os.listdir(tmp_path))
    assert left == sorted([live.name, other.name, "metrics.json"])


def test_remove_stale_temps_on_a_missing_folder_is_quiet(tmp_path):
    remove_stale_temps(str(tmp_path / "nope"))


def test_a_failed_block_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "model.pdparams") as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []
