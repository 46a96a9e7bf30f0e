"""Atomic writes: the result gets the umask's permissions, and what a killed run left is removed."""
import json
import os
import stat
import subprocess
import sys

import pytest

from adbase import UserError, atomic_path, make_temp_dir, remove_stale_temps, write_text_atomic


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


def _boundary(capsys, exc):
    from adbase import run_cli

    def main(argv):
        raise exc
    with pytest.raises(SystemExit) as e:
        run_cli(main, [])
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize("exc, words", [
    (PermissionError(13, "Permission denied", "/out/brick/model.pdparams"),
     "Permission denied: /out/brick/model.pdparams"),
    (OSError(28, "No space left on device", "/out/x.png"), "No space left on device: /out/x.png"),
    (NotADirectoryError(20, "Not a directory", "/out/file/brick"), "Not a directory: /out/file/brick"),
])
def test_refused_file_operations_are_one_line(capsys, exc, words):
    code, err = _boundary(capsys, exc)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and lines == [f"error: {words}"], err


def test_malformed_yaml_is_one_line(capsys):
    import yaml
    try:
        yaml.safe_load("a: [1, 2\nb: 3")
    except yaml.YAMLError as e:
        exc = e
    code, err = _boundary(capsys, exc)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: malformed YAML"), err


def test_a_bug_shows_its_trace_and_names_a_log(capsys):
    code, err = _boundary(capsys, ValueError("shapes (3,) and (4,) not aligned"))
    last = err.strip().splitlines()[-1]
    assert code == 1 and "Traceback" in err
    assert last.startswith("error: unexpected ValueError: shapes (3,) and (4,) not aligned (a bug"), last
    path = last.split("full trace in ")[1].rstrip(")")
    with open(path) as f:
        assert "ValueError" in f.read()
    os.remove(path)


def test_interrupt_is_exit_130(capsys):
    code, err = _boundary(capsys, KeyboardInterrupt())
    assert code == 130 and err.strip() == "error: interrupted"


HOLD = ("import sys, time; sys.path.insert(0, {root!r}); from adcommon.outputs import folder_lock\n"
        "with folder_lock({folder!r}):\n    print('held', flush=True); time.sleep(120)")


def _holder(folder):
    """Another process holding ``folder``'s lock (its first line says when)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.Popen([sys.executable, "-c", HOLD.format(root=root, folder=folder)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_folder_lock_refuses_a_second_writer_and_is_never_stale(tmp_path):
    from adbase import UserError
    from adcommon.files import folder_lock
    folder = str(tmp_path / "out" / "brick")
    with folder_lock(folder):
        assert json.load(open(os.path.join(folder, ".lock")))["pid"] == os.getpid()
        with folder_lock(folder):          # the same process again (train.py --val): allowed
            pass
        assert os.path.isfile(os.path.join(folder, ".lock"))
    assert not os.path.exists(os.path.join(folder, ".lock"))
    other = _holder(folder)
    try:
        with pytest.raises(UserError, match=f"in use by .* \\(pid {other.pid}, since "):
            with folder_lock(folder):
                pass
    finally:
        other.kill()
        other.wait()
    # killed without a chance to clean up: its lock file stays, but the kernel released the lock
    assert os.path.isfile(os.path.join(folder, ".lock"))
    with folder_lock(folder):
        assert json.load(open(os.path.join(folder, ".lock")))["pid"] == os.getpid()
    assert not os.path.exists(os.path.join(folder, ".lock"))


def test_an_earlier_versions_pid_lock_counts_only_while_its_python_process_lives(tmp_path):
    from adbase import UserError
    from adcommon.files import folder_lock
    folder = tmp_path / "brick"
    folder.mkdir()
    python = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    other = subprocess.Popen(["sleep", "60"])   # a live process that is not ours: the pid was reused
    try:
        (folder / ".lock").write_text(str(python.pid))
        with pytest.raises(UserError, match=f"pid {python.pid}"):
            with folder_lock(str(folder)):
                pass
        (folder / ".lock").write_text(str(other.pid))
        with folder_lock(str(folder)):
            pass
        (folder / ".lock").write_text(str(_dead_pid()))
        with folder_lock(str(folder)):
            pass
    finally:
        for p in (python, other):
            p.kill()
            p.wait()


def test_train_refuses_a_folder_in_use(tmp_path):
    """A second train.py into a category folder another run holds: one line, and the holder's files
    are left alone."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    from shared_data.synthetic import generate
    generate(str(tmp_path / "data"), ["brick"], seed=0, image_size=64, n_train=4, n_test_good=1, n_test_defect=1)
    folder = tmp_path / "out" / "brick"
    folder.mkdir(parents=True)
    other = _holder(str(folder))
    try:
        r = subprocess.run([sys.executable, "train.py", "--data_dir", str(tmp_path / "data"), "--category", "brick",
                            "--output_dir", str(tmp_path / "out"), "--pretrained", "none", "--image_size", "64",
                            "--crop_size", "64"], cwd=os.path.join(root, "PaDiM-Paddle"), capture_output=True,
                           text=True, timeout=300)
    finally:
        other.kill()
        other.wait()
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "warn" not in ln.lower()]
    assert r.returncode == 2 and len(lines) == 1 and f"is in use by -c (pid {other.pid}" in lines[0], r.stderr
    assert sorted(os.listdir(folder)) == [".lock"]


def test_the_crash_handler_survives_a_path_that_is_not_utf8(capsys, monkeypatch):
    """A bug whose message and command line hold bytes that are not UTF-8: still one error line and a
    readable log (the handler itself once failed here with an empty log and no error line)."""
    odd = os.fsdecode(b"/data/img\xff/000.png")
    monkeypatch.setattr(sys, "argv", ["infer.py", "--img_path", odd])
    code, err = _boundary(capsys, ValueError(f"bad shape for {odd}"))
    last = err.strip().splitlines()[-1]
    assert code == 1 and last.startswith("error: unexpected ValueError: bad shape for /data/img\\xff/000.png"), last
    path = last.split("full trace in ")[1].rstrip(")")
    with open(path, encoding="utf-8") as f:
        assert "img\\xff" in f.read()
    os.remove(path)


def test_a_user_error_naming_a_path_that_is_not_utf8_is_one_line(capsys):
    code, err = _boundary(capsys, UserError(f"cannot read image {os.fsdecode(b'/x/caf' + bytes([0xe9]) + b'.png')}"))
    assert code == 2 and err.strip() == "error: cannot read image /x/caf\\xe9.png"


SIGTERM_SELF = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
from adbase import atomic_path, run_cli

def main(argv):
    {import_paddle}
    with atomic_path({path!r}) as tmp:
        open(tmp, "w").write("half")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    return 0

run_cli(main, [])
"""


@pytest.mark.parametrize("import_paddle", ["pass", "import paddle"])
def test_sigterm_ends_in_one_line_143_and_no_temporary_file(tmp_path, import_paddle):
    """SIGTERM (a process manager's stop) is handled like Ctrl-C, also after Paddle, whose C++ core puts
    its own handler (a stack dump) in place when imported."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = SIGTERM_SELF.format(root=root, path=str(tmp_path / "result.txt"), import_paddle=import_paddle)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "warn" not in ln.lower()]
    assert r.returncode == 143 and lines == ["error: terminated"], r.stderr
    assert os.listdir(tmp_path) == []


HALF_BUILT = """
import sys
sys.path.insert(0, {root!r})
from adbase import run_cli

class Bar:                      # like a progress bar cut short by the signal inside its __init__
    def __init__(self):
        raise KeyboardInterrupt
        self.pos = 0

    def __del__(self):
        print(abs(self.pos))    # AttributeError at exit: 'Bar' object has no attribute 'pos'

def main(argv):
    keep = []
    keep.append(Bar.__new__(Bar))
    globals()["left"] = keep    # destroyed at interpreter exit, after the error line
    Bar()

run_cli(main, [])
"""


def test_a_destructor_failing_after_ctrl_c_does_not_follow_the_error_line():
    """An object the signal cut short while it was built (tqdm's bar was seen in the reliability matrix)
    fails in its destructor at exit: the error line stays the last word, with no 'Exception ignored'."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", HALF_BUILT.format(root=root)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 130 and r.stderr.strip() == "error: interrupted", r.stderr


_BLOCKED = r'''
import ctypes, sys
sys.path.insert(0, {root!r})
from adbase import run_cli

def main(argv):
    libc = ctypes.CDLL(None)
    m = ctypes.create_string_buffer(64)   # a zeroed pthread mutex (glibc's static initialiser)
    libc.pthread_mutex_lock(m)
    print("ready", flush=True)
    libc.pthread_mutex_lock(m)   # a deadlock in native code: never returns, signals or not

run_cli(main)
'''


@pytest.mark.parametrize("sig,code,word", [("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")])
def test_a_run_blocked_in_native_code_stops_within_the_grace_period(tmp_path, sig, code, word):
    """Python runs signal handlers only between bytecodes: a main thread stuck in a native call never would.
    The stop watchdog ends the process with the signal's exit code once the grace period is over."""
    import signal
    import time
    script = tmp_path / "blocked.py"
    script.write_text(_BLOCKED.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env = dict(os.environ, ADSUITE_STOP_GRACE_S="1")
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.5)   # the child is inside the native call now, the case under test (not between bytecodes)
    t0 = time.monotonic()
    p.send_signal(getattr(signal, sig))
    try:
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == code
    assert time.monotonic() - t0 < 15
    assert err.strip().splitlines()[-1].startswith(f"error: {word}")


def test_the_watchdog_leaves_a_normal_run_alone(tmp_path):
    """A run that ends by itself, or stops at once on SIGTERM, is not cut short or given another line."""
    script = tmp_path / "quick.py"
    script.write_text("import sys, time\nsys.path.insert(0, %r)\nfrom adbase import run_cli\n"
                      "def main(argv):\n    print('done')\n    return 0\nrun_cli(main)\n"
                      % os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, ADSUITE_STOP_GRACE_S="1"))
    assert (r.returncode, r.stdout.strip(), r.stderr.strip()) == (0, "done", "")


def test_a_forked_worker_stopped_by_its_parent_does_not_end_the_parent(tmp_path):
    """A data-loading worker (a forked child) inherits the signal wakeup pipe: its own SIGTERM must not
    arm the parent's watchdog, which would end a healthy run after the grace period."""
    script = tmp_path / "workers.py"
    script.write_text(
        "import multiprocessing, sys, time\nsys.path.insert(0, %r)\nfrom adbase import run_cli\n"
        "def main(argv):\n"
        "    p = multiprocessing.get_context('fork').Process(target=time.sleep, args=(30,))\n"
        "    p.start()\n    time.sleep(0.5)\n    p.terminate()\n    p.join()\n"
        "    time.sleep(3)\n    print('done')\n    return 0\n"
        "run_cli(main)\n" % os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, ADSUITE_STOP_GRACE_S="1"))
    assert (r.returncode, r.stdout.strip()) == (0, "done"), r.stderr
