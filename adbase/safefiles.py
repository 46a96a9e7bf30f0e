"""Files a run writes without harming anything: folders it created and leaves empty are removed on
failure, writes go through a temporary file and a rename, stale temporaries of dead runs are swept."""
import contextlib
import os
import re
import shutil
import tempfile

from adbase.errors import UserError, printable

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
