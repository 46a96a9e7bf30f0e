"""The error boundary of every command-line entry point (run_cli): one-line errors, Ctrl-C and SIGTERM
with cleanup, a watchdog that ends a run stuck in native code, and the crash report."""
import contextlib
import math
import os
import signal
import sys
import tempfile

from adbase.errors import _FILE_ERRNOS, Terminated, UserError, printable
from adbase.safefiles import _CREATED, remove_created_dirs


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


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_StopWatchdog._after_fork_in_child)


def extend_stop_grace(seconds):
    """Give this run ``seconds`` more than the grace period to stop after a signal (serve.py drains the
    requests in flight for up to --drain_s)."""
    dog = _StopWatchdog.active
    if dog is not None:
        dog.extra = max(0.0, float(seconds))


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
