"""VisualDL training logs: ``train.py --use_vdl True [--vdl_log_dir DIR]`` in every paper folder (the flag
names of PaddleClas), for the panel AIStudio shows beside a notebook or ``visualdl --logdir ...``.

What is written, per category: the training scalars each engine already records in its history (loss and
its parts, learning rate, held-out score, images/s) against the epoch or update, and with ``--val`` the
test metrics and a few anomaly-map panels (the highest-scored defective and normal images). The log goes
to <output_dir>/<category>/vdl, or with --vdl_log_dir to DIR/<method>-<category>, as a new
vdlrecords.*.log file each run (VisualDL never overwrites one). ``visualdl`` is an optional extra
(``pip install -e .[vdl]``); without it, --use_vdl True is one error line before any work.
"""
import contextlib
import math
import os

from adbase import UserError

__all__ = ["check_available", "board", "scalars", "evaluation"]

_ACTIVE = []   # the board of the category being trained (at most one per process)
LOG_DIR = "vdl"   # its folder inside the category's training folder


def check_available(args):
    """One line, before any work, when --use_vdl True is asked for and VisualDL is not installed."""
    if not getattr(args, "use_vdl", False):
        return
    try:
        import visualdl  # noqa: F401
    except ImportError:
        raise UserError("--use_vdl True needs VisualDL: pip install visualdl (or pip install -e .[vdl])") from None


def log_dir(args, method, category, out):
    """Where a category's VisualDL records go."""
    if getattr(args, "vdl_log_dir", None):
        return os.path.join(args.vdl_log_dir, f"{method}-{category}")
    return os.path.join(out, LOG_DIR)


@contextlib.contextmanager
def board(args, method, category, out, main=True):
    """The VisualDL writer of one category's run while the block runs (nothing without --use_vdl, or on
    the processes of a data-parallel run that do not write)."""
    if not (getattr(args, "use_vdl", False) and main):
        yield None
        return
    from visualdl import LogWriter

    from adbase import make_dirs
    folder = log_dir(args, method, category, out)
    make_dirs(folder)
    writer = LogWriter(logdir=folder, display_name=f"{method} {category}")
    _ACTIVE.append(writer)
    try:
        yield writer
    finally:
        _ACTIVE.remove(writer)
        writer.close()


def _writer():
    return _ACTIVE[-1] if _ACTIVE else None


def scalars(step, values, prefix="train"):
    """The finite numbers of ``values`` (one history record) as scalars at ``step``; nothing without a
    board. Keys ending in _s (seconds) are left out, *_per_s and img/s kept."""
    w = _writer()
    if w is None:
        return
    for k, v in values.items():
        if k in ("epoch", "step") or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if k.endswith("_s") and not k.endswith("per_s"):
            continue
        if math.isfinite(float(v)):
            w.add_scalar(tag=f"{prefix}/{k}", value=float(v), step=int(step))


def evaluation(res, panels=()):
    """The test metrics of ``res`` (metrics.json) as scalars and ``panels`` [(tag, RGB uint8)] as images;
    nothing without a board."""
    w = _writer()
    if w is None:
        return
    for k in ("image_auroc", "pixel_auroc", "aupro", "f1_max", "recall_at_threshold", "fpr_at_threshold"):
        v = res.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
            w.add_scalar(tag=f"test/{k}", value=float(v), step=0)
    for tag, img in panels:
        w.add_image(tag=f"test/{tag}", img=img, step=0)


def wanted():
    """Whether a board is open (the evaluation draws its panels only then)."""
    return _writer() is not None
