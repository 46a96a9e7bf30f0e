"""One-line user errors, signals and atomic file writes shared by every command-line entry point."""
import argparse
import contextlib
import errno
import math
import os
import re
import shutil
import signal
import sys
import tempfile


class UserError(Exception):
    """A problem the user can fix (bad path, unknown category, no network, corrupt file).

    Command-line entry points print it as one line and exit with code 2, no traceback.
    """


# OSErrors that mean the machine refused a file operation the user asked for, not a bug: one line.
_FILE_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EISDIR, errno.ENOTDIR,
                errno.ENAMETOOLONG}


class Terminated(KeyboardInterrupt):
    """SIGTERM, what a process manager sends to stop a run: handled as Ctrl-C is (every ``finally`` and
    ``except BaseException`` cleans up), reported as "terminated" with exit code 143 (128 + 15)."""


def run_cli(main, argv=None):
    """Call ``main(argv)``: the error boundary of every command-line entry point.

    A UserError, a refused file operation (permissions, a full disk, a file where a folder should be)
    and a malformed YAML file end in one ``error:`` line on stderr and exit code 2; Ctrl-C in
    "error: interrupted" and exit code 130, SIGTERM in "error: terminated" and exit code 143. Anything
    else is a bug: its traceback is shown, then one ``error:`` line with the path of a log holding the
    full trace, and exit code 1. After a failure the folders this run created and left empty are removed
    (make_dirs). Paths that are not UTF-8 are printed with their odd bytes as ``\\xNN``.
    """
    _CREATED.clear()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(errors="backslashreplace")   # a file name that is not UTF-8 never breaks a print
    restore = _handle_sigterm()
    try:
        try:
            code = main(argv)
        except BaseException:
            remove_created_dirs()
            raise
    except UserError as e:
        _fail(str(e), 2)
    except Terminated:
        _quiet_destructors()
        _fail("terminated", 143)
    except KeyboardInterrupt:
        _quiet_destructors()
        _fail("interrupted", 130)
    except OSError as e:
        if e.errno not in _FILE_ERRNOS:
            _crash(e)
        where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f)
        _fail(f"{e.strerror or type(e).__name__}{': ' + where if where else ''}", 2)
    except Exception as e:  # noqa: BLE001 - the boundary: every other failure is reported, then exits
        if type(e).__module__.split(".")[0] == "yaml":   # a malformed YAML file given by the user
            _fail(f"malformed YAML: {' '.join(str(e).split())}", 2)
        _crash(e)
    finally:
        restore()
    sys.exit(code or 0)


def printable(text):
    """``text`` with the bytes of a file name that is not UTF-8 (Python keeps them as lone surrogates)
    shown as ``\\xNN``: safe to print, log and write as UTF-8."""
    text = str(text)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _quiet_destructors():
    """After a stop by a signal: an object the signal cut short while it was being built (a progress bar,
    say) may fail in its destructor at exit ("Exception ignored in ..."). That is not an error of the
    run, and the one error line must stay the last word: such destructor failures are dropped."""
    with contextlib.suppress(Exception):
        sys.unraisablehook = lambda unraisable: None


def _fail(message, code):
    try:
        print(f"error: {printable(message)}", file=sys.stderr, flush=True)
    except Exception:  # noqa: BLE001 - a closed or broken stderr must not turn an error into a crash
        with contextlib.suppress(Exception):
            os.write(2, f"error: {message}\n".encode("ascii", "backslashreplace"))
    sys.exit(code)


def _crash(e):
    """An unexpected exception: its traceback, saved to a log, then one line naming the log; exit 1.
    Nothing here may fail on its own: every step falls back to a simpler one."""
    import time
    import traceback
    try:
        trace = traceback.format_exc()
    except Exception:  # noqa: BLE001
        trace = repr(e)
    with contextlib.suppress(Exception):
        sys.stderr.write(printable(trace))
        sys.stderr.flush()
    where = "the trace above"
    with contextlib.suppress(Exception):
        path = os.path.join(tempfile.gettempdir(),
                            f"adcommon-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")
        with open(path, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write(printable(f"{' '.join(map(str, sys.argv))}\n{trace}"))
        where = f"full trace in {path}"
    try:
        first = str(e).splitlines()[0] if str(e) else ""
    except Exception:  # noqa: BLE001
        first = ""
    _fail(f"unexpected {type(e).__name__}{': ' + first if first else ''} (a bug: please report it with {where})", 1)


# ----------------------------------------------------------------------------- SIGTERM


def _on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)   # one is enough: the clean-up is not interrupted again
    raise Terminated()


class _AfterPaddle:
    """Paddle's C++ core installs its own SIGTERM handler when it is imported (a stack dump, then death):
    this import hook puts ours back as soon as ``import paddle`` has run."""

    def find_spec(self, name, path=None, target=None):
        if name != "paddle":
            return None
        import importlib.util
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            run = spec.loader.exec_module

            def exec_module(module):
                try:
                    run(module)
                finally:
                    _install_sigterm()
            spec.loader.exec_module = exec_module
        return spec


def _install_sigterm():
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:   # ignored: our run is already stopping
        signal.signal(signal.SIGTERM, _on_sigterm)


# Seconds a run may take to stop after SIGTERM or Ctrl-C before the watchdog ends it (a process manager
# sends SIGKILL after its own grace period: systemd's is 90 s).
GRACE_ENV = "ADSUITE_STOP_GRACE_S"


def _grace_seconds():
    try:
        v = float(os.environ.get(GRACE_ENV, "10"))
    except ValueError:
        return 10.0
    return v if math.isfinite(v) and v > 0 else 10.0


class _StopWatchdog:
    """Ends the process with 143 (SIGTERM) or 130 (Ctrl-C) when it has not stopped within the grace period
    after the signal. Python runs a signal handler only between bytecodes, so a main thread blocked in a
    native call (a read that never returns, a runtime that never starts) would ignore the signal; the
    interpreter's C handler writes the signal number to the wakeup pipe at once, and this thread, which
    waits on that pipe, does not depend on the main thread."""

    active = None   # the watchdog of this process's run_cli, if any

    def __init__(self):
        import threading
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.write_fd, False)
        self.previous_fd = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        self.stopped = False
        self.extra = 0.0   # seconds a run asked for beyond the grace period (extend_stop_grace)
        self.thread = threading.Thread(target=self._watch, name="stop-watchdog", daemon=True)
        self.thread.start()
        _StopWatchdog.active = self

    @staticmethod
    def _after_fork_in_child():
        """A forked child (a data-loading worker) inherits the wakeup pipe but not the watching thread: its
        own signals (a worker stopped by its parent) must not reach the parent's watchdog."""
        dog, _StopWatchdog.active = _StopWatchdog.active, None
        if dog is not None:
            dog.stopped = True
            with contextlib.suppress(ValueError, OSError):
                signal.set_wakeup_fd(-1)
            for fd in (dog.write_fd, dog.read_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _watch(self):
        try:
            self._wait()
        finally:
            with contextlib.suppress(OSError):
                os.close(self.read_fd)

    def _wait(self):
        while True:
            try:
                data = os.read(self.read_fd, 64)
            except OSError:
                return
            if not data or self.stopped:   # the write end closed: the run is over
                return
            signums = set(data)
            if signal.SIGTERM in signums or signal.SIGINT in signums:
                code = 143 if signal.SIGTERM in signums else 130
                grace = _grace_seconds() + self.extra
                import time
                deadline = time.monotonic() + grace
                while time.monotonic() < deadline and not self.stopped:
                    time.sleep(0.1)
                if self.stopped:
                    return
                with contextlib.suppress(Exception):
                    sys.stderr.write(f"error: {'terminated' if code == 143 else 'interrupted'} (still busy "
                                     f"{grace:g} s after the signal: stopped now)\n")
                    sys.stderr.flush()
                os._exit(code)

    def close(self):
        self.stopped = True
        if _StopWatchdog.active is self:
            _StopWatchdog.active = None
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(self.previous_fd)
        with contextlib.suppress(OSError):
            os.close(self.write_fd)   # the watching thread reads the end of the pipe and closes its own end


def extend_stop_grace(seconds):
    """Give this run ``seconds`` more than the grace period to stop after a signal (serve.py drains the
    requests in flight for up to --drain_s)."""
    dog = _StopWatchdog.active
    if dog is not None:
        dog.extra = max(0.0, float(seconds))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_StopWatchdog._after_fork_in_child)


def _handle_sigterm():
    """SIGTERM -> Terminated in the main thread for the call of run_cli, and the stop watchdog; returns the
    function that puts the previous handler back (run_cli is also called in-process, by tests and
    notebooks)."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    hook = None
    if "paddle" not in sys.modules:
        hook = _AfterPaddle()
        sys.meta_path.insert(0, hook)
    _install_sigterm()
    watchdog = None
    if "ipykernel" not in sys.modules:   # a notebook's kernel outlives an interrupted cell: never end it
        with contextlib.suppress(ValueError, OSError):
            watchdog = _StopWatchdog()

    def restore():
        if watchdog is not None:
            watchdog.close()
        if hook is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(hook)
        with contextlib.suppress(TypeError, ValueError):
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    return restore


# ----------------------------------------------------------------------------- folders a run creates

_CREATED = []            # folders make_dirs created during this run of run_cli
DISPOSABLE = {".lock", ".adsuite.json"}   # what a folder may hold and still count as empty: a lock, our marker


def make_dirs(path):
    """os.makedirs(path, exist_ok=True) that remembers the folders it created, so that a failed run can
    remove those it leaves empty (remove_created_dirs; run_cli does it). Returns ``path``."""
    path = os.path.abspath(os.fspath(path))
    missing, p = [], path
    while not os.path.lexists(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    os.makedirs(path, exist_ok=True)
    _CREATED.extend(missing)
    return path


def remove_created_dirs():
    """Remove the folders make_dirs created in this run that hold nothing (but a lock or our marker),
    deepest first; the others are kept with what they hold."""
    for d in sorted(set(_CREATED), key=lambda x: x.count(os.sep), reverse=True):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        if set(names) <= DISPOSABLE:
            with contextlib.suppress(OSError):
                for n in names:
                    os.remove(os.path.join(d, n))
                os.rmdir(d)
    _CREATED.clear()


def check_utf8(path, flag):
    """One line (before any work) for an output path whose name is not UTF-8: Paddle and OpenCV cannot
    write to such paths. Input paths of any bytes are fine (Python and PIL read them)."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"{flag} {printable(path)}: the name is not valid UTF-8, which Paddle and OpenCV cannot "
                        "write to; choose a folder with a UTF-8 name") from None
    return path


def default_mode(directory=False):
    """The permissions a new file (0o666) or folder (0o777) gets under the process's umask: mkstemp and
    mkdtemp create theirs private (0o600 / 0o700), which a renamed result must not keep."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


_TEMP = re.compile(r"^\..+\.(\d+)-[^.]*\.tmp(\.[^.]+)?$")


def remove_stale_temps(directory):
    """Remove the temporary files and folders that a killed run of ours left in ``directory``: names
    ``.<stem>.<pid>-<random>.tmp[.ext]`` whose process no longer exists. A live writer's are kept."""
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            m = _TEMP.match(name)
            if not m or process_alive(int(m.group(1))):
                continue
            p = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)


def process_alive(pid):
    """Whether a process with this pid exists (ours included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def make_temp_dir(stem, parent):
    """A new folder ``parent/.<stem>.<pid>-<random>.tmp`` with the umask's permissions, for a result that
    is built aside and renamed into place; stale ones of killed runs in ``parent`` are removed first."""
    make_dirs(parent)
    remove_stale_temps(parent)
    d = tempfile.mkdtemp(prefix=f".{stem}.{os.getpid()}-", suffix=".tmp", dir=parent)
    os.chmod(d, default_mode(directory=True))
    return d


@contextlib.contextmanager
def atomic_path(path, clean=True):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the extension (``.x.<pid>-abc.tmp.png``) so writers that infer the format
    from it (cv2, matplotlib, paddle.save) still work; it names the writing process, so the next write
    into the folder removes what a killed run left (remove_stale_temps; ``clean=False`` skips that scan,
    for a writer of many files that cleaned the folder once at its start). The result gets the umask's
    permissions, like a file opened for writing.
    """
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    make_dirs(d)
    if clean:
        remove_stale_temps(d)
    base = os.path.basename(path)
    stem, ext = os.path.splitext(base)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem[:80]}.{os.getpid()}-", suffix=f".tmp{ext}", dir=d)
    os.close(fd)
    try:
        yield tmp
        if os.path.isfile(tmp):
            os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_bytes_atomic(path, data, clean=True):
    """Write ``data`` to ``path`` through a temporary file and a rename (atomic_path)."""
    with atomic_path(path, clean) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write(printable(text))


class Range:
    """The values a numeric flag accepts: ``lo``/``hi`` bounds (None: unbounded), open or closed."""

    def __init__(self, lo=None, hi=None, lo_open=False, hi_open=False):
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open

    def __contains__(self, v):
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def __str__(self):
        if self.hi is None:
            return f"{'>' if self.lo_open else '>='} {self.lo}"
        if self.lo is None:
            return f"{'<' if self.hi_open else '<='} {self.hi}"
        return f"in {'(' if self.lo_open else '['}{self.lo}, {self.hi}{')' if self.hi_open else ']'}"


# Counts of threads and worker processes: past these a runtime spends minutes creating them (ONNX Runtime
# with 100000 threads never started), and no machine has that many cores.
MAX_THREADS, MAX_WORKERS = 1024, 256

# What every script's flag of that name accepts, unless the flag declares its own ``limits``. Every
# float flag is finite besides (NaN, inf and 1e999 are refused; _ranged).
RANGES = {
    "batch_size": Range(1), "epochs": Range(1), "steps": Range(0), "image_size": Range(32), "crop_size": Range(32),
    "lr": Range(0, lo_open=True), "momentum": Range(0, 1, hi_open=True), "weight_decay": Range(0),
    "holdout_ratio": Range(0, 1, hi_open=True), "threshold_quantile": Range(0, 1, lo_open=True, hi_open=True),
    "num_workers": Range(0, MAX_WORKERS), "cpu_threads": Range(1, MAX_THREADS), "warmup": Range(0),
    "seed": Range(0, 2 ** 32 - 1),
    "gpu_id": Range(0), "gpu_mem": Range(1), "d": Range(1), "folds": Range(0), "smooth_grad_n": Range(1),
    "log_interval": Range(1), "workers": Range(0, MAX_WORKERS), "max_megapixels": Range(0, lo_open=True),
    "poll": Range(0, lo_open=True), "n_train": Range(1), "n_test": Range(1), "n_test_good": Range(0),
    "n_test_defect": Range(0), "timeout": Range(0, lo_open=True),
}


def _ranged(kind, flag, limits=None):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind is float and not math.isfinite(v):  # nan, inf, and 1e999 that float() reads as inf
            raise argparse.ArgumentTypeError(f"{flag} takes a finite number, got {text}")
        if limits is not None and v not in limits:
            raise argparse.ArgumentTypeError(f"{flag} must be {limits}, got {text}")
        return v
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def check_number(name, value, kind=float, limits=None):
    """A number read outside argparse (a config file, inference.yml) under the same rules as the flag of
    that name: finite, in RANGES[name] (or ``limits``); UserError otherwise."""
    try:
        return _ranged(kind, name, limits if limits is not None else RANGES.get(name.lstrip("-")))(str(value))
    except argparse.ArgumentTypeError as e:
        raise UserError(str(e)) from None


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the suite's conventions: a bad flag or value ends in one ``error:`` line and exit
    code 2, and numeric flags are checked against their range while parsing, before any work starts
    (``limits=Range(...)`` beside a flag, else RANGES by the flag's name)."""

    def __init__(self, *args, **kw):
        kw.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kw)

    def add_argument(self, *names, limits=None, **kw):
        flag = next((n for n in names if n.startswith("--")), names[0])
        dest = kw.get("dest") or flag.lstrip("-").replace("-", "_")
        limits = limits if limits is not None else RANGES.get(dest)
        if kw.get("type") is float or (limits is not None and kw.get("type") is int):
            kw["type"] = _ranged(kw["type"], flag, limits)
        return super().add_argument(*names, **kw)

    def error(self, message):
        self.exit(2, f"error: {message} (--help lists the flags)\n")
