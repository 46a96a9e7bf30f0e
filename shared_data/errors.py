"""One-line user errors and atomic file writes shared by every command-line entry point."""
import contextlib
import os
import re
import shutil
import sys
import tempfile


class UserError(Exception):
    """A problem the user can fix (bad path, unknown category, no network, corrupt file).

    Command-line entry points print it as one line and exit with code 2, no traceback.
    """


def run_cli(main, argv=None):
    """Call ``main(argv)``; turn UserError (and Ctrl-C) into one line on stderr and a non-zero exit."""
    try:
        code = main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


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
            if not m or _alive(int(m.group(1))):
                continue
            p = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)


def _alive(pid):
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
    os.makedirs(parent, exist_ok=True)
    remove_stale_temps(parent)
    d = tempfile.mkdtemp(prefix=f".{stem}.{os.getpid()}-", suffix=".tmp", dir=parent)
    os.chmod(d, default_mode(directory=True))
    return d


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the extension (``.x.<pid>-abc.tmp.png``) so writers that infer the format
    from it (cv2, matplotlib, paddle.save) still work; it names the writing process, so the next write
    into the folder removes what a killed run left (remove_stale_temps). The result gets the umask's
    permissions, like a file opened for writing.
    """
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    remove_stale_temps(d)
    base = os.path.basename(path)
    stem, ext = os.path.splitext(base)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.{os.getpid()}-", suffix=f".tmp{ext}", dir=d)
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


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
