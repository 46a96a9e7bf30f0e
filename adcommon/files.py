"""Files the scripts read and write: image lists, YAML/JSON/CSV, all written atomically."""
import csv
import glob
import io
import json
import os

import numpy as np
import yaml

from shared_data.categories import IMAGE_EXTENSIONS
from shared_data.errors import UserError, write_text_atomic

__all__ = ["find_images", "save_yaml", "save_json", "write_scores_csv"]


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
