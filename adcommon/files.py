"""Files the scripts read and write: image lists, YAML/JSON/CSV, all written atomically; the lock of an
output folder."""
import csv
import glob
import io
import json
import os
import stat
import sys

import numpy as np
import yaml

from adbase import UserError, printable, write_bytes_atomic, write_text_atomic
from adcommon.outputs import folder_lock  # noqa: F401 (re-exported: the lock's home before adcommon.outputs)
from shared_data.categories import IMAGE_EXTENSIONS

__all__ = ["iter_images", "find_images", "save_yaml", "save_json", "write_scores_csv", "write_png", "png_bytes",
           "folder_lock"]


def _warn_once(key, message, warned=None):
    """One warning line; with ``warned`` (a set), only the first time for ``key`` (a hot folder's polls)."""
    if warned is not None:
        if key in warned:
            return
        warned.add(key)
    print(f"warning: {printable(message)}", file=sys.stderr, flush=True)


def _regular(path, warned=None):
    """True for a regular file (or a link to one). A FIFO, socket or device named like an image is
    skipped with a warning: opening a FIFO blocks until a writer comes, a device may never end."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False   # vanished or a dangling link: the image reader reports what it cannot open
    if stat.S_ISREG(mode):
        return True
    _warn_once(path, f"skipping {path}: not a regular file (a FIFO, socket or device)", warned)
    return False


def iter_images(folder, strict=False, warned=None):
    """The image files below ``folder``, searched recursively in sorted order; hidden files and folders
    and ground-truth masks (``*_mask.png``) skipped, and so are special files (with a warning, once per
    path in ``warned``). A subfolder that cannot be read is named in a warning; ``strict``: an error."""
    def unreadable(err):
        if strict:
            raise UserError(f"cannot read the folder {printable(err.filename)} ({err.strerror}) "
                            "(--strict True: every folder must be readable)")
        _warn_once(err.filename, f"cannot read the folder {err.filename} ({err.strerror}): its images are not "
                   "scored", warned)

    for d, dirs, files in os.walk(folder, onerror=unreadable):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        for f in sorted(files):
            if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".") and not f.lower().endswith("_mask.png"):
                path = os.path.join(d, f)
                if _regular(path, warned):
                    yield path


def find_images(img_path, strict=False):
    """A file, a folder (searched recursively) or a glob -> sorted image paths; error if none. Special
    files are skipped with a warning; an unreadable subfolder is a warning (``strict``: an error)."""
    if img_path is None:
        raise UserError("--img_path is required (a file, a folder or a glob)")
    if os.path.exists(img_path) and not os.path.isdir(img_path):
        if os.path.isfile(img_path):
            return [img_path]
        raise UserError(f"--img_path {printable(img_path)} is not a regular file (a FIFO, socket or device)")
    if os.path.isdir(img_path):
        out = sorted(iter_images(img_path, strict))
    else:
        out = sorted(p for p in glob.glob(img_path, recursive=True)
                     if p.lower().endswith(IMAGE_EXTENSIONS) and _regular(p))
    if not out:
        raise UserError(f"no images found at {printable(img_path)}")
    return out


def save_yaml(path, obj):
    write_text_atomic(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def replace_block(path, name, text):
    """Replace what stands between '<!-- NAME:start -->' and '<!-- NAME:end -->' in the Markdown file
    ``path`` with ``text`` (atomically): how README tables are generated, never typed."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    with open(path, encoding="utf-8") as f:
        whole = f.read()
    if start not in whole or end not in whole:
        raise UserError(f"{path} has no {start} ... {end} block")
    head, rest = whole.split(start, 1)
    write_text_atomic(path, f"{head}{start}\n{text}{end}{rest.split(end, 1)[1]}")
    return path


def save_json(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def csv_row(values):
    """One CSV line: floats with 6 decimals, None empty, paths that are not UTF-8 shown with \\xNN."""
    buf = io.StringIO()
    csv.writer(buf).writerow(["" if v is None else f"{v:.6f}" if isinstance(v, float) else printable(v)
                              for v in values])
    return buf.getvalue()


def write_scores_csv(path, rows, header=("path", "label", "score")):
    """Write rows atomically as CSV (path, label, score[, verdict])."""
    write_text_atomic(path, csv_row(header) + "".join(csv_row(r) for r in rows))


def write_png(path, img, clean=True):
    """Write a uint8 / uint16 image (RGB, or one channel) as PNG, atomically. Encoded in memory and written
    by Python, so any path works (cv2.imwrite crashes on a name that is not UTF-8)."""
    return write_bytes_atomic(path, png_bytes(img, path), clean)


def png_bytes(img, what="image"):
    """A uint8 / uint16 image (RGB, or one channel) encoded as PNG in memory."""
    import cv2
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 3:
        a = cv2.cvtColor(a, cv2.COLOR_RGB2BGR)   # cv2 encodes BGR
    ok, buf = cv2.imencode(".png", a)
    if not ok:
        raise UserError(f"could not encode image {printable(what)}")
    return buf.tobytes()
