"""Files the scripts read and write: image lists, YAML/JSON/CSV, all written atomically; the lock of an
output folder."""
import contextlib
import csv
import glob
import io
import json
import os

import numpy as np
import yaml

from shared_data.categories import IMAGE_EXTENSIONS
from shared_data.errors import UserError, process_alive, write_text_atomic

__all__ = ["find_images", "save_yaml", "save_json", "write_scores_csv", "folder_lock"]


def find_images(img_path):
    """A file, a folder (searched recursively) or a glob -> sorted image paths; error if none."""
    if img_path is None:
        raise UserError("--img_path is required (a file, a folder or a glob)")
    if os.path.isfile(img_path):
        return [img_path]
    if os.path.isdir(img_path):
        out = []
        for d, dirs, files in os.walk(img_path):
            dirs[:] = sorted(x for x in dirs if not x.startswith("."))
            out += [os.path.join(d, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)
                    and not f.startswith(".") and not f.lower().endswith(("_mask.png",))]
        out = sorted(out)
    else:
        out = sorted(p for p in glob.glob(img_path, recursive=True)
                     if os.path.isfile(p) and p.lower().endswith(IMAGE_EXTENSIONS))
    if not out:
        raise UserError(f"no images found at {img_path}")
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


def write_scores_csv(path, rows, header=("path", "label", "score")):
    """Write rows atomically as CSV (path, label, score[, verdict])."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for r in rows:
        w.writerow([f"{v:.6f}" if isinstance(v, float) else v for v in r])
    write_text_atomic(path, buf.getvalue())


@contextlib.contextmanager
def folder_lock(folder):
    """Hold ``folder`` (a category's output folder) for this process: a second run writing into it at
    the same time refuses in one line instead of interleaving logs and checkpoints. The lock file
    ``.lock`` holds the owner's pid; a lock whose process has gone is stale and taken over; the same
    process may enter again (train.py --val evaluates inside its own training's lock). A folder this run
    created is removed again when the run fails before writing anything but its train.log."""
    created = not os.path.isdir(folder)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, ".lock")
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path, encoding="utf-8") as f:
                    pid = int(f.read().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid == os.getpid():
                yield
                return
            if pid and process_alive(pid):
                raise UserError(f"{folder} is in use by another run (pid {pid}): wait for it to end, or give "
                                "another --output_dir") from None
            with contextlib.suppress(OSError):
                os.remove(path)   # stale: its process has gone
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(str(os.getpid()))
        break
    try:
        yield
    except Exception:
        # a run that failed before writing anything but its log leaves no folder behind
        if created and set(os.listdir(folder)) <= {".lock", "train.log"}:
            import shutil
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
