"""The command line every paper's scripts share (docs/design.md#interfaces-users-rely-on): flag names
and types, the device and its CPU threads, seeds, the category list, the training log.

Plain helpers; each paper's scripts still parse their own arguments and stay readable alone.
"""
import argparse
import contextlib
import os
import random

import numpy as np

from adbase import UserError, run_cli  # noqa: F401 (re-exported: every script uses them)

__all__ = ["str2bool", "auto_or_bool", "add_common_args", "add_infer_args", "add_compile_arg", "add_sync_bn_arg",
           "add_threshold_args", "add_val_args", "add_workers_arg", "add_result_args", "crop_arg", "resolve_crop",
           "set_seed", "cpu_threads", "set_device", "categories_arg", "writable_dir", "training_categories",
           "make_logger", "training_output", "peak_rss_mb", "UserError", "run_cli"]


def str2bool(v):
    """argparse type for booleans: True/False/true/false/1/0/yes/no (argparse's bool() would read "False" as True)."""
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "y", "on"):
        return True
    if s in ("false", "0", "no", "n", "off", "none"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (True/False/1/0), got {v!r}")


def auto_or_bool(v):
    """argparse type for auto / True / False flags (``--compile auto``)."""
    if str(v).strip().lower() == "auto":
        return "auto"
    return str2bool(v)


def crop_arg(v):
    """argparse type of --crop_size: auto, none, or a side in pixels (>= 32)."""
    text = str(v).strip().lower()
    if text in ("auto", "none"):
        return text
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes auto, none or an integer, got {v!r}") from None
    if n < 32:
        raise argparse.ArgumentTypeError(f"must be >= 32 (or auto / none), got {v}")
    return n


def resolve_crop(crop, image_size, category):
    """The centre crop a run uses: none for the whole image (the default on any data of one's own); with
    ``auto``, the papers' MVTec AD setting on an MVTec AD category only: 224 of 256, i.e. 7/8 of
    --image_size rounded down to a multiple of 16 (the backbones' coarsest stride)."""
    from shared_data import MVTEC_CATEGORIES
    if crop == "auto":
        return image_size * 7 // 8 // 16 * 16 if category in MVTEC_CATEGORIES else None
    return None if crop in (None, "none") else int(crop)


def add_compile_arg(p):
    """--compile, the training speed flag of the trained methods: it changes no number beyond float noise."""
    p.add_argument("--compile", type=auto_or_bool, default="auto",
                   help="run the network's training step as a static oneDNN graph (CPU, Paddle >= 3): "
                        "auto = where it is faster for this backbone (README benchmarks), True, False")
    return p


def add_sync_bn_arg(p):
    """--sync_bn, for training under paddle.distributed.launch: batch norm over the global batch (the
    single-process numbers), or over each process's share (faster on a CPU, other numbers)."""
    p.add_argument("--sync_bn", type=str2bool, default=True,
                   help="several processes (paddle.distributed.launch): batch norm over the whole batch, as one "
                        "process (True), or over each process's share, about 1.5x faster on 2 CPU cores and "
                        "no longer the single-process numbers (False; README benchmarks)")
    return p


def add_val_args(p, val_aliases=(), vis_aliases=()):
    """train.py's --val (evaluate the test split after training, never to choose anything) and
    --save_vis (its pictures); the seeds' names of either as aliases."""
    p.add_argument("--val", *val_aliases, dest="val", type=str2bool, default=False,
                   help="evaluate on the test split after training (never used to choose anything)")
    p.add_argument("--save_vis", *vis_aliases, dest="save_vis", type=str2bool, nargs="?", const=True, default=False,
                   help="with --val: the pictures too")
    p.add_argument("--use_vdl", type=str2bool, default=False,
                   help="write VisualDL logs: the training scalars, and with --val the test metrics and a few "
                        "anomaly-map panels (pip install visualdl)")
    p.add_argument("--vdl_log_dir", default=None,
                   help="with --use_vdl: VisualDL's folder (a run per method and category inside it; "
                        "default: <output_dir>/<category>/vdl)")
    return p


def add_threshold_args(p):
    """--threshold_quantile and --threshold_rule: the threshold from normal scores (adcommon.evaluate.maps)."""
    p.add_argument("--threshold_quantile", type=float, default=0.99,
                   help="the share of normal images below the threshold")
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
    add_image_limit(p)
    return p


def add_image_limit(p):
    """--max_megapixels: larger images are refused, one line each, before they are decoded."""
    p.add_argument("--max_megapixels", type=float, default=100.0,
                   help="refuse images larger than this (a 20000 x 20000 PNG needs 1.2 GB once decoded)")
    return p


def set_image_limit(args):
    """Apply --max_megapixels (where the script has it) to every image read (shared_data.dataset)."""
    if getattr(args, "max_megapixels", None) is not None:
        from shared_data.dataset import set_max_megapixels
        set_max_megapixels(args.max_megapixels)


def add_workers_arg(p):
    """--num_workers for the scripts that decode images while they work (PaDiM's fit, CutPaste's
    augmentations): Paddle DataLoader worker processes; 0 decodes in the main process."""
    p.add_argument("--num_workers", type=int, default=0, help="DataLoader worker processes (0: none)")
    return p


def add_result_args(p, maps=True):
    """What predict.py / infer.py (``maps``) and val.py write besides scores: --report, --save_maps."""
    p.add_argument("--report", type=str2bool, nargs="?", const=True, default=False,
                   help="also write report.html (a page to sort and filter the pictures, the score histogram "
                        "with the threshold, the metrics); implies the pictures")
    if maps:
        p.add_argument("--save_maps", default="none", choices=["none", "npy", "png16"],
                       help="also write each anomaly map at the image's own size: float32 .npy, or 16-bit PNG "
                            "(scaling in predictions.jsonl)")
        p.add_argument("--strict", type=str2bool, default=False,
                       help="stop at the first unreadable image and keep nothing of the run (exit code 2); "
                            "default: record it as unreadable, score the rest, exit code 3")
        p.add_argument("--resume", type=str2bool, nargs="?", const=True, default=False,
                       help="continue the run in --save_dir: keep its lines, score only the images without one")
        p.add_argument("--workers", type=int, default=None,
                       help="threads that decode images ahead of the network and write results behind it "
                            "(default: one per core; 0: every step in turn, in one thread)")
    return p


def add_export_args(p):
    """export_model.py's flags shared by every folder: --onnx."""
    p.add_argument("--onnx", type=str2bool, default=False,
                   help="also write inference.onnx (paddle2onnx; pip install -e .[onnx]) for infer.py --backend "
                        "onnxruntime | openvino, checked against the Paddle graph")
    return p


def add_infer_args(p):
    """Paddle Inference flags (TIPC names kept: --use_gpu --use_mkldnn --cpu_threads ...), and the runtime."""
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
    p.add_argument("--backend", default="paddle", choices=["paddle", "onnxruntime", "openvino"],
                   help="runtime: Paddle Inference, or ONNX Runtime / OpenVINO on inference.onnx "
                        "(export_model.py --onnx True)")
    return p


def set_seed(seed):
    """Seed python, numpy and paddle (the same seed gives the same run on CPU)."""
    if seed is None:
        return
    import paddle
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def cpu_threads():
    """Threads for Paddle's CPU math library: $OMP_NUM_THREADS when the user set it (Paddle's import
    overwrites an unset one with 1, so the value seen before that import is used), else every core
    this process may use."""
    from adcommon import USER_OMP_NUM_THREADS
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
    if d == "gpu":   # under paddle.distributed.launch each process has its own card
        from adcommon.distributed import launched
        if launched():
            d = f"gpu:{paddle.distributed.ParallelEnv().device_id}"
    try:
        paddle.set_device(d)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"--device {device}: {str(e).splitlines()[0]}") from None
    if d == "cpu":
        set_threads = getattr(getattr(paddle.base, "core", None), "set_num_threads", None)
        if set_threads is not None:
            set_threads(cpu_threads())
    return d


def writable_dir(path, flag="--output_dir"):
    """Check, before any work and without creating anything, that ``path`` is a folder this process can
    write into or can create: one line when it is a file, lies under a file, or is not writable."""
    p = os.path.abspath(path)
    if os.path.exists(p) and not os.path.isdir(p):
        raise UserError(f"{flag} {path} is a file, not a folder")
    probe = p
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise UserError(f"{flag} {path}: a part of the path ({probe}) is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path} is not writable ({probe}: permission denied)")
    return path


def training_categories(args):
    """What every train.py checks before any work: the output folder (writable_dir), the device, and the
    categories of --category in --data_dir (categories_arg). Returns those categories."""
    writable_dir(args.output_dir)
    set_image_limit(args)
    set_device(args.device)
    return categories_arg(args.data_dir, args.category)


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

    from adbase import make_dirs, printable
    make_dirs(os.path.dirname(os.path.abspath(path)))

    def log(msg):
        msg = printable(msg)
        print(msg, flush=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}\n")
    return log


@contextlib.contextmanager
def training_output(out, main=True, data=None):
    """A category's training folder for the run: on the process that writes (``main``; the only one
    without paddle.distributed.launch) it is claimed (adcommon.outputs: ours or new, apart from the
    category's data folder ``data``) and held with folder_lock (a second run into it refuses), and the
    block gets make_logger's train.log writer; the other processes write nothing and log nowhere."""
    if not main:
        yield lambda msg: None
        return
    from adcommon.outputs import output_folder
    with output_folder(out, "category", "--output_dir", inputs=[data]):
        yield make_logger(os.path.join(out, "train.log"))


def peak_rss_mb():
    """Peak resident memory of this process so far (MB)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def settings_from(cls, args, **given):
    """A settings dataclass ``cls`` filled from train.py's flags ``args`` (each field from the flag of its
    name; ``given`` for the fields that are resolved, not read): settings are typed once, at the entry."""
    import dataclasses
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: getattr(args, k) for k in names if k not in given and hasattr(args, k)}
    return cls(**values, **given)
