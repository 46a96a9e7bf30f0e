"""Checkpoint files of every method: one format, atomic writes, one-line errors, resumable optimizer state.

A checkpoint is ``{"method", "model_args", "state_dict", ...}`` written with ``paddle.save``; it describes
itself (docs/design.md#the-checkpoint-describes-itself): ``model_args`` rebuild the architecture, so
val/predict/export need no repeated flags.
"""
import os

from adbase import UserError, atomic_path

from . import pdfile

__all__ = ["save_checkpoint", "check_finite_weights", "load_checkpoint", "set_state_strict", "checkpoint_path",
           "optimizer_state", "load_optimizer_state", "rewrite_checkpoint", "save_training_state",
           "training_state", "restore_training", "MODEL", "CANDIDATE", "STATE", "finished_run",
           "promote_candidate"]

# A category folder while a training runs: the finished model of an earlier run stays in MODEL until this
# run finishes; meanwhile its model so far is CANDIDATE and its resumable state STATE.
MODEL, CANDIDATE, STATE = "model.pdparams", "candidate.pdparams", "last.pdparams"


def check_finite_weights(state_dict):
    """A model whose weights hold NaN or infinite values scores nothing meaningful: a diverged training
    stops here with one line instead of saving it (a loss can stay finite while the weights are not,
    e.g. behind a batch norm)."""
    import numpy as np
    for name, v in state_dict.items():
        a = v.numpy() if hasattr(v, "numpy") else np.asarray(v)
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise UserError(f"training diverged: the weight {name} holds NaN or infinite values (lower --lr, or "
                            "check the images and settings); nothing of it is saved")


def save_checkpoint(path, method, model_args, state_dict, **extra):
    """Write {'method', 'model_args', 'state_dict', **extra} atomically with paddle.save; weights that are
    not finite are refused (check_finite_weights)."""
    import paddle
    check_finite_weights(state_dict)
    obj = {"method": method, "model_args": dict(model_args), "state_dict": state_dict}
    obj.update(extra)
    with atomic_path(path) as tmp:
        paddle.save(obj, tmp)


def rewrite_checkpoint(path, obj):
    """Write a loaded checkpoint dict back atomically (after adding fields to it)."""
    import paddle
    with atomic_path(path) as tmp:
        paddle.save(obj, tmp)


def load_checkpoint(path, method):
    """Load a checkpoint written by save_checkpoint; one-line errors for a missing, corrupt or foreign file."""
    if not path or not os.path.isfile(path):
        raise UserError(f"checkpoint not found: {path} (run train.py first)")
    try:
        obj = pdfile.load(path)
    except UserError:
        raise
    except Exception as e:  # paddle raises a variety of types for a non-paddle file
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"cannot read checkpoint {path}: {why}") from None
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


def checkpoint_path(model_path, output_dir, category, name="model.pdparams"):
    """--model_path, else <output_dir>/<category>/model.pdparams; one-line error when neither is given."""
    if model_path:
        return model_path
    if not category:
        raise UserError(f"give --model_path, or --category to use <output_dir>/<category>/{name}")
    return os.path.join(output_dir, category, name)


def optimizer_state(opt, layer):
    """The optimizer's state keyed by structured parameter names ("net.conv1.weight|_velocity_0").

    Paddle keys it by runtime names (conv2d_7.w_0_velocity_0) that depend on how many layers the
    process built before, so a resumed run in another process would not find its velocities.
    """
    names = sorted(((p.name, n) for n, p in layer.named_parameters()), key=lambda t: -len(t[0]))
    out = {}
    for k, v in opt.state_dict().items():
        hit = next(((pn, sn) for pn, sn in names if k.startswith(pn + "_")), None)
        out[f"{hit[1]}|{k[len(hit[0]):]}" if hit else k] = v
    return out


def load_optimizer_state(opt, layer, state):
    """Inverse of optimizer_state. Also reads the earlier "features.0.weight_moment1_0" spelling
    (structured name and suffix joined by '_', longest name first)."""
    names = {n: p.name for n, p in layer.named_parameters()}
    by_length = sorted(names, key=len, reverse=True)
    sd = {}
    for k, v in state.items():
        if "|" in k:
            sn, suffix = k.split("|", 1)
            if sn not in names:
                raise UserError(f"resume: optimizer state for unknown parameter {sn}")
            k = names[sn] + suffix
        else:
            sn = next((n for n in by_length if k.startswith(n + "_")), None)
            if sn is not None:
                k = names[sn] + k[len(sn):]
        sd[k] = v
    opt.set_state_dict(sd)


# ----------------------------------------------------------------------------- --resume


def save_training_state(path, method, model, opt, trained_layer, settings, progress):
    """last.pdparams: weights, the optimizer's state (by structured names), the settings a resumed run
    must share (``settings``) and the method's own progress (epoch/step, history, best so far)."""
    save_checkpoint(path, method, model.model_args, model.state_dict(), kind="train_state",
                    optimizer=optimizer_state(opt, trained_layer), settings=dict(settings), progress=progress)


def finished_run(out, method, key, target):
    """The line saying that ``out`` holds a finished run with nothing left to resume (train.py --resume then
    stops there), or None: a finished model, no candidate of a run in progress, and no training state
    short of ``target`` (the ``key`` "epoch" or "step" this run asks for)."""
    model, state = os.path.join(out, MODEL), os.path.join(out, STATE)
    if not os.path.isfile(model) or os.path.isfile(os.path.join(out, CANDIDATE)):
        return None
    if load_checkpoint(model, method).get("complete") is False:
        return None
    done = None
    if os.path.isfile(state):
        done = int((load_checkpoint(state, method).get("progress") or {}).get(key, 0))
        if done < target:
            return None
    at = f" after {done} {key}s" if done is not None else ""
    return (f"nothing to resume in {out}: its run finished{at} ({MODEL}); train without --resume to train "
            f"again{f', or ask for more than {done} {key}s to continue it' if done is not None else ''}")


def promote_candidate(out, method, **fields):
    """The run has finished: its candidate, marked complete and given ``fields`` (the training's summary),
    becomes the category's model (replacing an earlier run's only now). Returns the model's path."""
    ck = load_checkpoint(os.path.join(out, CANDIDATE), method)
    ck.update(fields, complete=True)
    ck.pop("progress", None)
    rewrite_checkpoint(os.path.join(out, MODEL), ck)
    os.remove(os.path.join(out, CANDIDATE))
    return os.path.join(out, MODEL)


def training_state(path, method, log=print, resume=True):
    """The training state saved at ``path`` for --resume, or None: without ``resume`` (the flag), or (said
    in the log) when there is none yet."""
    if not resume:
        return None
    if not os.path.isfile(path):
        log(f"--resume: no {path} yet, starting from the beginning")
        return None
    ck = load_checkpoint(path, method)
    if ck.get("kind") != "train_state" or "optimizer" not in ck or "progress" not in ck:
        raise UserError(f"{path} is not a training state of this version (resume reads last.pdparams written "
                        "by this train.py): delete it, or train without --resume, to start again")
    return ck


# model_args that decide only how a trained model scores images, never what training does: a state
# resumes under other values (the run's own are the ones saved at the end)
SCORING_ONLY = ("weights", "postprocess", "image_score", "image_score_top")


def restore_training(ck, path, model, opt, trained_layer, settings):
    """Put a training state into the model and its optimizer after checking that it was written with
    this model's architecture and these settings (SCORING_ONLY keys aside); returns the saved progress."""
    mine = {k: v for k, v in model.model_args.items() if k not in SCORING_ONLY}
    saved = {k: v for k, v in ck["model_args"].items() if k not in SCORING_ONLY}
    diff = [k for k in sorted(set(mine) | set(saved)) if mine.get(k) != saved.get(k)]
    written = ck.get("settings") or {}
    diff += [k for k in sorted(set(settings) | set(written)) if written.get(k) != settings.get(k)]
    if diff:
        k = diff[0]
        old = saved.get(k, written.get(k))
        new = mine.get(k, settings.get(k))
        raise UserError(f"cannot resume from {path}: it was written with {k}={old!r}, this run has {new!r} "
                        "(same flags, or delete it to start again)")
    set_state_strict(model, ck["state_dict"], f"training state {path}")
    load_optimizer_state(opt, trained_layer, ck["optimizer"])
    return ck.get("progress") or {}
