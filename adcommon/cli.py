"""Flags, checkpoints and files that every paper's scripts share (docs/design.md#interfaces-users-rely-on).

Plain helpers; each paper's scripts still parse their own arguments and stay readable alone.
"""
import csv
import glob
import io
import json
import os
import random

import numpy as np
import yaml

from shared_data.categories import IMAGE_EXTENSIONS
from shared_data.errors import UserError, atomic_path, run_cli, write_text_atomic  # noqa: F401 (re-exported)

__all__ = ["str2bool", "add_common_args", "add_infer_args", "set_seed", "set_device", "category_dir",
           "save_checkpoint", "load_checkpoint", "save_yaml", "save_json", "find_images",
           "write_scores_csv", "UserError", "run_cli", "atomic_path"]


def str2bool(v):
    """argparse type for booleans: True/False/true/false/1/0/yes/no (argparse's bool() would read "False" as True)."""
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "y", "on"):
        return True
    if s in ("false", "0", "no", "n", "off", "none"):
        return False
    import argparse
    raise argparse.ArgumentTypeError(f"expected a boolean (True/False/1/0), got {v!r}")


def auto_or_bool(v):
    """argparse type for auto / True / False flags (``--compile auto``)."""
    if str(v).strip().lower() == "auto":
        return "auto"
    return str2bool(v)


def add_speed_args(p):
    """Training speed flags of the trained methods: neither changes the numbers beyond float noise."""
    p.add_argument("--compile", type=auto_or_bool, default="auto",
                   help="run the network's training step as a static oneDNN graph (CPU, Paddle >= 3): "
                        "auto = where it is faster for this backbone (README benchmarks), True, False")
    p.add_argument("--threshold_rule", default="robust", choices=["robust", "quantile"],
                   help="threshold from held-out normal scores: robust = log-normal fit by median and MAD; "
                        "quantile = empirical quantile (with ~30 normals: their maximum)")
    return p


def add_common_args(p, data=True, output="output"):
    """The flag names shared by every paper folder. Seeds' names are added by each script as aliases."""
    if data:
        p.add_argument("--data_dir", default="data/synthetic", help="root of an MVTec-layout dataset")
        p.add_argument("--category", default=None, help="category folder inside --data_dir")
    p.add_argument("--output_dir", default=output, help="files go to OUTPUT_DIR/<category>/")
    p.add_argument("--device", default="cpu", help="cpu, gpu or gpu:N")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--num_workers", type=int, default=0)
    return p


def add_infer_args(p):
    """Paddle Inference flags (TIPC names kept: --use_gpu --use_mkldnn --cpu_threads ...)."""
    p.add_argument("--use_gpu", type=str2bool, default=False)
    p.add_argument("--use_mkldnn", "--enable_mkldnn", dest="use_mkldnn", type=str2bool, default=False)
    p.add_argument("--cpu_threads", type=int, default=None,
                   help="CPU math threads (default: $OMP_NUM_THREADS, else every available core)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    p.add_argument("--use_tensorrt", type=str2bool, default=False)
    p.add_argument("--gpu_mem", type=int, default=500)
    p.add_argument("--gpu_id", type=int, default=0)
    p.add_argument("--ir_optim", type=str2bool, default=True)
    p.add_argument("--benchmark", "--enable_benchmark", dest="benchmark", type=str2bool, default=False)
    return p


def set_seed(seed):
    """Seed python, numpy and paddle (the same seed gives the same run on CPU)."""
    if seed is None:
        return
    import paddle
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def load_script(path):
    """Import a paper folder's script (train.py, val.py, bench.py, ...) from its path, under a name
    unique to that folder: every paper folder has its own val.py, so a bare ``import val`` can return
    another folder's module when several run in one process (a notebook, a test session)."""
    import importlib.util
    path = os.path.abspath(path)
    folder, name = os.path.basename(os.path.dirname(path)), os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f"{folder.replace('-', '_')}_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sibling(script_file, name):
    """The script ``name`` (e.g. "val") beside ``script_file`` (a script's __file__), via load_script."""
    return load_script(os.path.join(os.path.dirname(os.path.abspath(script_file)), f"{name}.py"))


def cpu_threads():
    """Threads for Paddle's CPU math library: $OMP_NUM_THREADS when the user set it (Paddle's import
    overwrites an unset one with 1, so the value seen before that import is used), else every core
    this process may use."""
    from . import USER_OMP_NUM_THREADS
    env = (USER_OMP_NUM_THREADS or "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_device(device):
    """paddle.set_device with a one-line error when a GPU is asked for on a CPU-only build.

    On CPU it also gives Paddle's math library every available core: eager Paddle uses one thread
    by default (ResNet-18 to layer3, batch 8 at 224, eager: 0.79 s with one thread, 0.38 s with two
    on a 2-core machine).
    """
    import paddle
    d = (device or "cpu").lower()
    if d.startswith("gpu") and not paddle.device.is_compiled_with_cuda():
        raise UserError(f"--device {device}: this Paddle build has no CUDA support "
                        "(install paddlepaddle-gpu, or use --device cpu)")
    try:
        paddle.set_device(d)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"--device {device}: {str(e).splitlines()[0]}") from None
    if d == "cpu":
        set_threads = getattr(getattr(paddle.base, "core", None), "set_num_threads", None)
        if set_threads is not None:
            set_threads(cpu_threads())
    return d


def category_dir(output_dir, category):
    return os.path.join(output_dir, category)


def save_checkpoint(path, method, model_args, state_dict, **extra):
    """Write {'method', 'model_args', 'state_dict', **extra} atomically with paddle.save.

    The checkpoint describes itself (docs/design.md#the-checkpoint-describes-itself): val/predict/export
    need no repeated flags.
    """
    import paddle
    obj = {"method": method, "model_args": dict(model_args), "state_dict": state_dict}
    obj.update(extra)
    with atomic_path(path) as tmp:
        paddle.save(obj, tmp)


def load_checkpoint(path, method):
    """Load a checkpoint written by save_checkpoint; one-line errors for a missing, corrupt or foreign file."""
    import paddle
    if not path or not os.path.isfile(path):
        raise UserError(f"checkpoint not found: {path} (run train.py first)")
    try:
        obj = paddle.load(path)
    except Exception as e:  # paddle raises a variety of types for a non-paddle file
        raise UserError(f"cannot read checkpoint {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
            from None
    if not isinstance(obj, dict) or "method" not in obj or "state_dict" not in obj:
        raise UserError(f"{path} is not a checkpoint of this suite (no 'method'/'state_dict' fields)")
    if obj["method"] != method:
        raise UserError(f"{path} is a {obj['method']} checkpoint, not {method}")
    return obj


def set_state_strict(layer, state_dict, what="model"):
    """set_state_dict that refuses missing or unexpected keys (a silent partial load is a wrong model)."""
    own = layer.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        raise UserError(f"{what}: checkpoint does not match the model (missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]})")
    layer.set_state_dict(state_dict)


def save_yaml(path, obj):
    write_text_atomic(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def save_json(path, obj):
    write_text_atomic(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


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


def write_scores_csv(path, rows, header=("path", "label", "score")):
    """Write rows atomically as CSV (path, label, score[, verdict])."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for r in rows:
        w.writerow([f"{v:.6f}" if isinstance(v, float) else v for v in r])
    write_text_atomic(path, buf.getvalue())


def categories_arg(data_dir, category):
    """--category: one name, a comma list, or 'all' (every category folder under data_dir)."""
    from shared_data.dataset import available_categories, category_dir
    if not category:
        raise UserError("--category is required (a name, a comma-separated list, or 'all')")
    if category == "all":
        cats = available_categories(data_dir)
        if not cats:
            category_dir(data_dir, "all")  # raises the dataset-folder error
            raise UserError(f"no categories found in {data_dir}")
        return cats
    cats = [c for c in category.replace(" ", ",").split(",") if c]
    for c in cats:
        category_dir(data_dir, c)
    return cats


def make_logger(path):
    """log(msg): print and append a time-stamped line to ``path`` (train.log)."""
    import time
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def log(msg):
        print(msg, flush=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}\n")
    return log


def peak_rss_mb():
    """Peak resident memory of this process so far (MB)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def checkpoint_path(model_path, output_dir, category, name="model.pdparams"):
    """--model_path, else <output_dir>/<category>/model.pdparams; one-line error when neither is given."""
    if model_path:
        return model_path
    if not category:
        raise UserError(f"give --model_path, or --category to use <output_dir>/<category>/{name}")
    return os.path.join(output_dir, category, name)
