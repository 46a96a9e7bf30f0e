"""The rules every writer follows in an output folder (README#reliability), in one place:

- a writer never deletes or overwrites a file it did not write: a folder holding files that are not
  ours is refused in one line, never emptied (``claim``);
- an output folder that is, contains or lies inside an input folder is refused (``check_apart``);
- one run writes into a folder at a time: ``folder_lock``, an flock the kernel drops when its process
  dies, so a lock is never stale; every script that writes into a category folder takes it;
- each image's result files are named after its path below the input root, made unique
  (``result_name``), so two images never share a file.

A folder we made holds the marker ``.adsuite.json`` with its kind: a category's training folder, an
export, the results of predict.py / infer.py, or val.py's results elsewhere. Folders written by earlier
versions (no marker) are recognised by their file names.
"""
import contextlib
import json
import os
import re
import sys
import time

from adbase import UserError, check_utf8, make_dirs, printable, write_text_atomic

__all__ = ["MARKER", "claim", "owns", "check_apart", "folder_lock", "output_folder", "result_name", "image_root"]

MARKER = ".adsuite.json"
LOCK = ".lock"
_TEMP = re.compile(r"^\..+\.\d+-[^.]*\.tmp(\.[^.]+)?$")   # adbase.atomic_path / make_temp_dir

# What each kind of folder holds besides per-image files; a folder of one kind is never written as another.
VAL_NAMES = {"metrics.json", "scores.csv", "vis", "report.html"}
MODEL_FILES = ("inference.json", "inference.pdmodel")   # the graph: Paddle 3 (PIR) writes .json, Paddle 2.6 .pdmodel
EXPORT_NAMES = {"inference.json", "inference.pdmodel", "inference.pdiparams", "inference.pdiparams.info",
                "inference.yml", "inference.onnx"}
RESULT_NAMES = {"scores.csv", "predictions.jsonl", "report.html", "auto_log.log", "run.json", "summary.json"}
CATEGORY_NAMES = VAL_NAMES | {"model.pdparams", "candidate.pdparams", "last.pdparams", "args.yml", "train.log",
                              "inference", "predict", "infer", "run.log", "run_all.done", "quickstart.log", "vdl"}
KINDS = {
    "category": ("a training folder", CATEGORY_NAMES),
    "export": ("an exported model", EXPORT_NAMES),
    "results": ("a results folder of predict.py / infer.py", RESULT_NAMES),
    "val": ("a results folder of val.py", VAL_NAMES),
}


def _marker(folder):
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            m = json.load(f)
        return m if isinstance(m, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _write_marker(folder, kind, flag):
    write_text_atomic(os.path.join(folder, MARKER), json.dumps(
        {"kind": kind, "written_by": os.path.basename(sys.argv[0] or "python"), "flag": flag,
         "created": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")


def _ours(folder, name, kind, owned):
    """Whether ``name`` in ``folder`` is a file of ours for a folder of ``kind``."""
    p = os.path.join(folder, name)
    if name == "vis" and kind in ("category", "val"):
        # val.py's pictures, replaced as a whole by the next evaluation: only PNG files may be in it
        with contextlib.suppress(OSError):
            return os.path.isdir(p) and all(n.endswith(".png") or _TEMP.match(n) for n in os.listdir(p))
        return False
    if name == "vdl" and kind == "category":
        # train.py --use_vdl's VisualDL records: only its vdlrecords.*.log files may be in it
        with contextlib.suppress(OSError):
            return os.path.isdir(p) and all(n.startswith("vdlrecords.") for n in os.listdir(p))
        return False
    if name in (MARKER, LOCK) or _TEMP.match(name) or name in KINDS[kind][1] or name in owned:
        return True
    if kind == "category" and os.path.isdir(p) and not os.path.islink(p):
        # a subfolder val.py wrote (KDAD's per-localization results): marked, or only val.py's names
        m = _marker(p)
        if m is not None:
            return m.get("kind") in KINDS
        with contextlib.suppress(OSError):
            return all(_ours(p, n, "val", ()) for n in os.listdir(p))
    return False


def _signed(folder, kind, names):
    """Whether an unmarked folder whose names are all ours was written by an earlier version of this suite
    and not by another tool that uses the same names (a PaddleX export also holds inference.yml): a
    training folder has its train.log or args.yml, an export our inference.yml, results our
    predictions.jsonl."""
    if kind == "category":   # run.log, quickstart.log: the scripts' logs, written just before their train.py starts
        return bool({"train.log", "args.yml", "run.log", "quickstart.log"} & set(names))
    if kind == "export":
        try:
            import yaml
            with open(os.path.join(folder, "inference.yml"), encoding="utf-8") as f:
                meta = yaml.safe_load(f)
            return isinstance(meta, dict) and "postprocess" in meta and "outputs" in meta
        except Exception:  # noqa: BLE001 - unreadable or malformed YAML (OSError, yaml.YAMLError): not ours
            return False
    if kind == "results":
        return "predictions.jsonl" in names or "scores.csv" in names
    return "metrics.json" in names or "scores.csv" in names


def owns(folder, kind="category"):
    """Whether ``folder`` is a folder of ours of ``kind`` (marked, or an earlier version's by its names)."""
    if not os.path.isdir(folder):
        return False
    m = _marker(folder)
    if m is not None:
        return m.get("kind") == kind
    try:
        names = [n for n in os.listdir(folder) if n not in (LOCK,) and not _TEMP.match(n)]
    except OSError:
        return False
    return bool(names) and all(_ours(folder, n, kind, ()) for n in names) and _signed(folder, kind, names)


def _same_or_inside(a, b):
    """Whether path ``a`` is ``b`` or lies inside it (real paths: links resolved)."""
    try:
        return os.path.commonpath([a, b]) == b
    except ValueError:   # different drives
        return False


def check_apart(folder, inputs, flag):
    """One line when the output ``folder`` is, contains or lies inside one of the ``inputs`` (folders):
    results written among the images would be read as images by the next run, or mix with them."""
    out = os.path.realpath(folder)
    for src in inputs:
        if not src:
            continue
        s = os.path.realpath(src)
        if out == s or _same_or_inside(out, s):
            where = "is" if out == s else "lies inside"
            raise UserError(f"{flag} {printable(folder)} {where} the input folder {printable(src)}: results there "
                            "would mix with the images (and be read as images next time); give a folder outside it")
        if _same_or_inside(s, out):
            raise UserError(f"{flag} {printable(folder)} contains the input folder {printable(src)}: give an output "
                            "folder that is not above the images")


def claim(folder, kind, flag, inputs=(), owned=()):
    """Make ``folder`` an output folder of ``kind`` for this run, or refuse in one line, before any work:
    a name that is not UTF-8, a file in the way, an overlap with an input folder (check_apart), a folder
    of another kind, or files that we did not write (``owned``: names an earlier run of ours recorded).
    Creates it (with its marker) when missing. Returns (created, marked): whether this call made the folder,
    or put the marker into a folder that had none."""
    check_utf8(folder, flag)
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise UserError(f"{flag} {printable(folder)} is a file, not a folder")
    check_apart(folder, inputs, flag)
    if not os.path.isdir(folder):
        make_dirs(folder)
        _write_marker(folder, kind, flag)
        return True, True
    m = _marker(folder)
    if m is not None and m.get("kind") != kind:
        what = KINDS.get(m.get("kind"), ("a folder of another kind",))[0]
        raise UserError(f"{flag} {printable(folder)} is {what}, not {KINDS[kind][0]}: give another folder")
    names = sorted(n for n in os.listdir(folder) if n not in (MARKER, LOCK) and not _TEMP.match(n))
    foreign = [n for n in names if not _ours(folder, n, kind, set(owned))]
    if foreign and m is None:   # an earlier version's folder of another kind
        other = next((k for k in KINDS if k != kind and owns(folder, k)), None)
        if other:
            raise UserError(f"{flag} {printable(folder)} is {KINDS[other][0]}, not {KINDS[kind][0]}: give another "
                            "folder")
    if m is None and not foreign and names and not _signed(folder, kind, names):
        foreign = names   # our file names, but not the files of an earlier version of ours (another tool's?)
    if foreign:
        shown = ", ".join(printable(n) for n in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3
                                                               else "")
        raise UserError(f"{flag} {printable(folder)} holds files this suite did not write ({shown}); nothing there "
                        "is deleted or overwritten: move them away, or give an empty or new folder")
    if m is None:
        _write_marker(folder, kind, flag)
    return False, m is None


# ----------------------------------------------------------------------------- locks

_HELD = {}   # real path of a locked folder -> [file descriptor or None, depth]: this process holds it


def _holder(path):
    """Who holds a lock: from the lock file's JSON ({"pid", "script", "since"}) or an older version's pid."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
    except OSError:
        return "another run"
    try:
        info = json.loads(text) if text.startswith("{") else {"pid": int(text)}
    except ValueError:
        return "another run"
    parts = [str(info.get("script") or "another run"), f"pid {info.get('pid')}"]
    if info.get("since"):
        parts.append(f"since {info['since']}")
    return f"{parts[0]} ({', '.join(parts[1:])})"


def _python_pid(pid):
    """Whether ``pid`` is a live Python process (an earlier version's lock holds only a pid)."""
    try:
        with open(f"/proc/{int(pid)}/cmdline", "rb") as f:
            return b"python" in f.read().lower()
    except (OSError, ValueError):
        from adbase import process_alive
        return process_alive(int(pid)) if str(pid).isdigit() else False


def _busy(folder, path):
    return UserError(f"{printable(folder)} is in use by {_holder(path)}: wait for it to end, or write elsewhere")


def _acquire(folder):
    path = os.path.join(folder, LOCK)
    try:
        import fcntl
    except ImportError:   # no flock (Windows): a pid file made with O_EXCL, stale when its process is gone
        return _acquire_pid_file(folder, path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise _busy(folder, path) from None
        try:   # the holder may have removed the file between our open and our flock: try the new one
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    old = os.read(fd, 64).decode("ascii", "replace").strip()
    if old.isdigit() and int(old) != os.getpid() and _python_pid(old):   # an earlier version's live lock
        os.close(fd)
        raise _busy(folder, path)
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "script": os.path.basename(sys.argv[0] or "python"),
                             "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
    return fd


def _acquire_pid_file(folder, path):
    from adbase import process_alive
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            info = _holder(path)
            pid = re.search(r"pid (\d+)", info)
            if pid and process_alive(int(pid.group(1))):
                raise _busy(folder, path) from None
            with contextlib.suppress(OSError):
                os.remove(path)
            continue
        os.write(fd, json.dumps({"pid": os.getpid(), "script": os.path.basename(sys.argv[0] or "python")}).encode())
        os.close(fd)
        return None


def _defer_stop_signals():
    """Ctrl-C and SIGTERM recorded instead of raised while the lock file is made and taken: a stop between
    the two would leave a .lock that no ``finally`` removes. Returns what _undefer needs (None where the
    handlers cannot be set: not the main thread)."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        return None
    pending = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.getsignal(sig)
        if previous[sig] in (signal.SIG_IGN, None):
            continue
        signal.signal(sig, lambda signum, frame: pending.append(signum))
    return previous, pending


def _undefer(deferred, raise_pending=True):
    """Put the handlers back; with ``raise_pending``, run the handler of a signal that came meanwhile."""
    import signal
    if deferred is None:
        return
    previous, pending = deferred
    for sig, handler in previous.items():
        if handler not in (signal.SIG_IGN, None):
            signal.signal(sig, handler)
    if raise_pending and pending:
        handler = previous.get(pending[0])
        if callable(handler):
            handler(pending[0], None)
        else:   # the default action (SIG_DFL): the signal again, now that it is restored
            signal.raise_signal(pending[0])


@contextlib.contextmanager
def folder_lock(folder):
    """Hold ``folder`` for this process: a second run writing into it at the same time refuses in one line
    naming the holder, instead of interleaving files. The lock (``folder/.lock``) is an flock, released by
    the kernel when its process ends however it ends, so it is never stale; the same process may enter
    again (train.py --val evaluates inside its own training's lock)."""
    key = os.path.realpath(folder)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    make_dirs(folder)
    deferred = _defer_stop_signals()
    try:
        fd = _acquire(folder)
    except BaseException:
        _undefer(deferred, raise_pending=False)
        raise
    _HELD[key] = [fd, 1]
    try:
        _undefer(deferred)   # a Ctrl-C or SIGTERM that came while the lock was taken is raised here, inside
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.remove(os.path.join(folder, LOCK))
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def output_folder(folder, kind, flag, inputs=(), owned=(), also_lock=()):
    """``claim`` the folder, then hold it (and the folders of ``also_lock`` that are ours: the category
    folder a default result folder lies in, the checkpoint's folder) with folder_lock for the block. A
    run that fails leaves no folder it made behind (nor one holding only its train.log), and takes back
    the marker it put into an existing folder."""
    created, marked = claim(folder, kind, flag, inputs, owned)
    held = False
    with contextlib.ExitStack() as stack:
        try:
            for other in sorted({os.path.realpath(f) for f in also_lock if f and owns(f)} |
                                {os.path.realpath(folder)}):
                stack.enter_context(folder_lock(other))
            held = True
            yield folder
        except BaseException:
            with contextlib.suppress(OSError):
                left = set(os.listdir(folder)) - {MARKER, LOCK, "train.log"}
                if created and held and not left:
                    import shutil
                    shutil.rmtree(folder, ignore_errors=True)
                elif marked and not created and not left:   # the folder as it was: without our marker
                    os.remove(os.path.join(folder, MARKER))
            raise


# ----------------------------------------------------------------------------- result names

_NAME_MAX = 200   # bytes of a result name before its suffix (file systems allow 255)


def image_root(img_path):
    """The folder that --img_path's images are named relative to: the folder itself, a file's folder, or
    the part of a glob before its first wildcard."""
    import glob
    if os.path.isdir(img_path):
        return img_path
    if os.path.isfile(img_path):
        return os.path.dirname(os.path.abspath(img_path))
    parts, keep = os.path.abspath(img_path).split(os.sep), []
    for part in parts:
        if glob.has_magic(part):
            break
        keep.append(part)
    return os.sep.join(keep) or os.sep


def result_name(path, root):
    """The base name of an image's result files: its path below ``root`` with '%' -> '%25', '+' -> '%2B',
    each folder separator -> '+', and each byte of a name that is not UTF-8 -> '%XX', so two images
    never share a name (lineA/cam/000.png -> lineA+cam+000.png, lineA/cam_000.png -> lineA+cam_000.png).
    Over 200 bytes, the end is replaced by a hash of the whole path."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel.startswith(os.pardir + os.sep) or rel == os.pardir:
        rel = os.path.basename(path)
    out = []
    for ch in rel:
        if ch == "%":
            out.append("%25")
        elif ch == "+":
            out.append("%2B")
        elif ch == os.sep or ch == "/":
            out.append("+")
        elif "\udc80" <= ch <= "\udcff":   # a byte of a non-UTF-8 name, as Python keeps it
            out.append(f"%{ord(ch) - 0xDC00:02X}")
        else:
            out.append(ch)
    name = "".join(out)
    if len(name.encode("utf-8")) > _NAME_MAX:
        import hashlib
        digest = hashlib.sha1(os.fsencode(rel)).hexdigest()[:16]
        name = name.encode("utf-8")[:_NAME_MAX - 40].decode("utf-8", "ignore") + "~" + digest + \
            os.path.splitext(name)[1][-10:]
    return name
