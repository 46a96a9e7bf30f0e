"""STFPM's engine (the method contract, adcommon.method.contract): build, and the training with held-out
selection; the runner and the deployment description are the contract's defaults.

Training follows the official code (docs/reference.md#stfpm-training): SGD lr 0.4, momentum 0.9, weight
decay 1e-4, batch 32, 100 epochs, 80/20 split of train/good; after every epoch the student is scored on
the held-out normal images and kept when their mean anomaly map value drops. The test split is never
looked at during training.
"""
import os
import sys
import time

import numpy as np
import paddle
import paddle.nn.functional as F
from tqdm import tqdm

from adcommon import checkpoint as C
from adcommon import distributed as D
from adcommon import vdl
from adcommon.evaluate.maps import postprocess, threshold_from_normals, vis_range_of
from adcommon.method.compiled import CompiledForward
from shared_data.dataset import ImageCache
from shared_data.errors import UserError

from .loss import stfpm_loss
from .model import STFPM

METHOD = "stfpm"
TITLE = "STFPM (Student-Teacher Feature Pyramid Matching)"   # for people: notebooks and docs (adcommon.method.contract)
SUMMARY = ("STFPM trains a student network to reproduce a frozen ImageNet teacher's features on normal images; where "
           "they disagree, the image is anomalous.")
OUTPUTS = ["layer1_distance", "layer2_distance", "layer3_distance"]  # the graph's (adcommon.method.contract)
TEACHER_CACHE_MB = 4096   # cache the teacher's features of the training images up to this size
# Backbones whose student trains faster as a static oneDNN graph than eagerly (README benchmark:
# ResNet-18 1.8x; EfficientNet-Lite0 slower, its depthwise convolutions are slow in oneDNN's backward).
COMPILE_BY_DEFAULT = ("resnet18", "wide_resnet50_2")


def postprocess_spec(image_size, top=None):
    """Sec. 3.3 as the official code: each layer map bilinear to layer1's size (64 x 64 for 256),
    product over the 3 layers there, the product bilinear to the input size; no blur; score = max, or
    with ``top`` (train.py --image_score_top) the mean of the map's highest ``top`` share of pixels."""
    spec = {"out_size": int(image_size), "combine": "product", "sigma": None, "map_outputs": [0, 1, 2],
            "score_output": None, "map_size": int(image_size) // 4}
    if top:
        spec["score_top"] = float(top)
    return spec


def spec_of(model_args):
    """The post-processing of a model built from ``model_args``."""
    return postprocess_spec(model_args["image_size"], model_args.get("image_score_top"))


PROGRESS = "epoch"   # --epochs, resumable from last.pdparams
DEPTHS = {18: "resnet18"}  # the seed's --depth; 34/50/101 have no backbone here


def prepare_args(args):
    """train.py's checks and seed alias (--depth), before any work."""
    if args.depth:
        args.backbone = DEPTHS[args.depth]
    if args.image_size % 32 or args.image_size < 32:
        raise UserError(f"--image_size must be a positive multiple of 32, got {args.image_size}")
    if args.epochs < 1 or args.batch_size < 1:
        raise UserError("--epochs and --batch_size must be >= 1")


def train_category(args, category, out, log, main=True):
    """The training half of the contract (adcommon.method.training): the student trained on ``category``'s
    normal images, the best epoch on the held-out ones kept (``train``: candidate.pdparams, promoted to
    model.pdparams when the run ends), --resume from last.pdparams."""
    from adcommon import cli
    from adcommon.method.compiled import resolve
    from shared_data.dataset import train_split
    resume = C.training_state(os.path.join(out, C.STATE), METHOD, log, args.resume)
    # built from the flags; a resumed run refuses a state written with other ones (restore_training)
    model = STFPM(args.backbone, args.pretrained, args.image_size)
    if args.image_score_top:   # kept out of model_args unless asked for: checkpoints stay as they were
        model.model_args["image_score_top"] = args.image_score_top
    a = model.model_args
    fit_ds, holdout_ds = train_split(args.data_dir, category, args.holdout_ratio, image_size=a["image_size"],
                                  crop_size=None, mean=a["mean"], std=a["std"])
    compiled = resolve(args.compile, a["backbone"] in COMPILE_BY_DEFAULT)
    log(f"STFPM {category}: teacher {a['weights']}, student {a['backbone']} random init, {a['image_size']}px, "
        f"{len(fit_ds)} training + {len(holdout_ds) if holdout_ds else 0} held-out normal images, "
        f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, seed {args.seed}, device {args.device}, "
        f"{'compiled (static oneDNN graph)' if compiled else 'eager'} student" +
        (f", image score: mean of the top {a['image_score_top']:g} of the map" if a.get("image_score_top") else ""))
    stats = train(model, fit_ds, holdout_ds, out, category, args.epochs, args.batch_size, args.lr, args.momentum,
                  args.weight_decay, args.seed, resume, args.threshold_quantile, log,
                  threshold_rule=args.threshold_rule, compiled=compiled, cache_teacher=args.cache_teacher)
    if main:
        log(f"saved {os.path.join(out, C.MODEL)} (selected epoch {stats['selected_epoch']}, "
            f"{stats['train_seconds']:.1f} s training, peak RSS {cli.peak_rss_mb():.0f} MB)")


def build(model_args):
    """An untrained STFPM with the architecture in ``model_args`` (weights come from a checkpoint)."""
    model = STFPM(model_args["backbone"], pretrained="none", image_size=model_args["image_size"])
    model.model_args["weights"] = model_args.get("weights")
    if model_args.get("image_score_top"):
        model.model_args["image_score_top"] = model_args["image_score_top"]
    return model


@paddle.no_grad()
def teacher_features(model, images, batch_size=32):
    """The frozen teacher's channel-normalised features of an ImageCache set, computed once: STFPM
    trains without augmentation, so they never change. List of 3 float32 arrays (N, C_l, h_l, w_l)."""
    parts = None
    for i in range(0, len(images), batch_size):
        t = [F.normalize(f, axis=1).numpy() for f in model.teacher(paddle.to_tensor(images.batch(
            range(i, min(i + batch_size, len(images))))))]
        parts = [[a] for a in t] if parts is None else [p + [a] for p, a in zip(parts, t)]
    return [np.concatenate(p) for p in parts]


def teacher_cache_mb(model, n):
    """Size of the teacher cache of n images in MB."""
    s = model.model_args["image_size"]
    return n * sum(c * (s // st) ** 2 for c, st in zip(model.teacher.channels, model.teacher.strides)) * 4 / 2 ** 20


@paddle.no_grad()
def maps_of(model, images, batch_size=32, teacher=None, indices=None):
    """Full-size anomaly maps (N, S, S) and image scores (N,) of an ImageCache set (or of its items
    ``indices``), eval mode. ``teacher``: its normalised teacher features (teacher_features), so only
    the student runs."""
    model.eval()
    size = model.model_args["image_size"]
    spec = spec_of(model.model_args)
    idx = np.arange(len(images)) if indices is None else np.asarray(indices, np.int64)
    maps, scores = [np.zeros((0, size, size), np.float32)], [np.zeros(0, np.float32)]
    for i in range(0, len(idx), batch_size):
        chunk = idx[i:i + batch_size]
        x = paddle.to_tensor(images.batch(chunk))
        if teacher is None:
            raw = [m.numpy() for m in model(x)]
        else:
            raw = [(paddle.to_tensor(t[chunk]) - F.normalize(s, axis=1)).pow(2).sum(axis=1, keepdim=True)
                   .numpy() for t, s in zip(teacher, model.student(x))]
        m, s = postprocess(raw, spec)
        maps.append(m)
        scores.append(s)
    return np.concatenate(maps), np.concatenate(scores)


def holdout_scores(model, holdout, batch_size, teacher):
    """(mean of the held-out anomaly maps, image scores (N,) in order, the maps' max) over every
    process's share of the held-out images (adcommon.distributed; all of them for one process)."""
    mine = D.shard(len(holdout))
    maps, scores = maps_of(model, holdout, batch_size, teacher, mine)
    total, size = D.all_sum(np.array([maps.sum(dtype=np.float64), maps.size], np.float64))
    peak = max(D.all_gather(float(maps.max()) if maps.size else -np.inf))
    return float(total / size), D.gather_shares(len(holdout), mine, scores), peak


def train(model, fit_ds, holdout_ds, out_dir, category, epochs=100, batch_size=32, lr=0.4, momentum=0.9,
          weight_decay=1e-4, seed=42, resume=None, threshold_quantile=0.99, log=print, threshold_rule="robust",
          compiled=False, cache_teacher=True):
    """Train the student (Eq. 4) and keep the epoch with the lowest mean held-out anomaly map.

    ``cache_teacher``: compute the frozen teacher's features once (the same numbers, a quarter less
    work per step); ``compiled``: run the student's training forward and backward as a static oneDNN
    graph (adcommon.method.compiled; the same numbers, faster on CPU for ResNets).

    Writes <out_dir>/candidate.pdparams (best teacher + student, threshold, vis_range) whenever the
    held-out score improves and <out_dir>/last.pdparams (adcommon.checkpoint's training state) after
    every epoch; at the end the candidate becomes model.pdparams (an earlier run's model is replaced only
    then). ``resume``: a training state to continue from (adcommon.checkpoint.training_state; the
    model must have been built from its model_args). Returns a dict of training statistics.
    """
    best_path, last_path = os.path.join(out_dir, C.CANDIDATE), os.path.join(out_dir, C.STATE)
    opt = paddle.optimizer.Momentum(learning_rate=lr, momentum=momentum, parameters=model.student.parameters(),
                                    weight_decay=weight_decay)  # coupled L2 decay, like torch SGD(weight_decay)
    state = {"epoch": 0, "holdout_score": None, "selected_epoch": None, "history": [], "train_seconds": 0.0}
    settings = {"category": category, "batch_size": batch_size, "lr": lr, "momentum": momentum,
                "weight_decay": weight_decay, "seed": seed}
    if resume is not None:
        state.update(C.restore_training(resume, last_path, model, opt, model.student, settings))
        log(f"resumed after epoch {state['epoch']}: best held-out score {state['holdout_score']} "
            f"at epoch {state['selected_epoch']}")
    if state["epoch"] >= epochs:
        log(f"already trained for {state['epoch']} epochs (--epochs {epochs}): nothing to do")
    fit = ImageCache(fit_ds)
    holdout = ImageCache(holdout_ds) if holdout_ds is not None and len(holdout_ds) else None
    if holdout is None:
        log("no held-out normal images: the last epoch is kept and no threshold is set")
    n = len(fit)
    t_fit = t_holdout = None
    mb = teacher_cache_mb(model, n + (len(holdout) if holdout else 0))
    if cache_teacher and mb <= TEACHER_CACHE_MB:
        t0 = time.perf_counter()
        t_fit = teacher_features(model, fit, batch_size)
        t_holdout = teacher_features(model, holdout, batch_size) if holdout is not None else None
        log(f"teacher features cached ({mb:.0f} MB, {time.perf_counter() - t0:.1f} s)")
    elif cache_teacher:
        log(f"teacher features not cached: {mb:.0f} MB > {TEACHER_CACHE_MB} MB")
    world, main = D.world_size(), D.is_main()   # several processes: each takes a share of every batch
    compiled = D.data_parallel(model.student, batch_size, compiled, log, "student")
    student = CompiledForward(model.student, enabled=compiled)
    args = dict(model.model_args, postprocess=spec_of(model.model_args))
    for epoch in range(state["epoch"] + 1, epochs + 1):
        model.train()  # the student's BN learns; the teacher is a frozen backbone and stays in eval mode
        # The order depends only on (seed, epoch): a resumed run sees the same batches as an uninterrupted one.
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        t0, seen, losses = time.perf_counter(), 0, []
        bar = tqdm(range(0, n, batch_size), desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False, file=sys.stdout,
                   disable=not main)
        for i in bar:
            idx = perm[i:i + batch_size]  # drop_last=False, as the reference
            share, weight = D.batch_share(idx)
            x = paddle.to_tensor(fit.batch(share))
            if t_fit is not None:
                t_feats = [paddle.to_tensor(t[share]) for t in t_fit]
            else:
                with paddle.no_grad():
                    t_feats = [F.normalize(t, axis=1) for t in model.teacher(x)]
            loss = stfpm_loss(t_feats, student(x), teacher_normalized=True)
            opt.clear_grad()
            D.backward_share(loss, weight, model.student.parameters(), student.backward)
            opt.step()
            lv = float(loss) * weight   # this process's part of the batch's mean loss (all of it alone)
            losses.append(lv * len(idx))
            seen += len(idx)
            bar.set_postfix(loss=f"{lv:.4f}", img_s=f"{seen / (time.perf_counter() - t0):.1f}")
        bar.close()
        t_train = time.perf_counter() - t0
        rec = {"epoch": epoch, "loss": float(D.all_sum(np.array([sum(losses)]))[0]) / seen,
               "images_per_s": seen / t_train, "seconds": round(t_train, 3)}
        threshold = vr = None
        if holdout is not None:
            map_mean, scores, map_max = holdout_scores(model, holdout, batch_size, t_holdout)
            rec["holdout_score"] = map_mean  # reference: mean of the score maps of the val split
            rec["holdout_mean_score"] = float(scores.mean())  # as KDAD and SSPCAB
            threshold = threshold_from_normals(scores, threshold_quantile, threshold_rule)
            vr = list(vis_range_of(map_mean, map_max, threshold))
        improved = holdout is None or state["holdout_score"] is None or rec["holdout_score"] < state["holdout_score"]
        state["train_seconds"] += t_train
        if improved:
            state["holdout_score"], state["selected_epoch"] = rec.get("holdout_score"), epoch
        if improved and main:   # one process writes
            C.save_checkpoint(best_path, METHOD, args, model.state_dict(), category=category,
                              threshold=threshold, vis_range=vr, selected_epoch=epoch,
                              holdout_score=rec.get("holdout_score"), threshold_quantile=threshold_quantile,
                              threshold_rule=threshold_rule,
                              holdout_scores=[float(v) for v in scores] if holdout is not None else [],
                              # until the run ends: val/predict/export say that it is an unfinished one
                              complete=False, progress={"epoch": epoch, "epochs": epochs})
        state["epoch"] = epoch
        state["history"].append(rec)
        vdl.scalars(epoch, dict(rec, lr=lr))
        if main:
            C.save_training_state(last_path, METHOD, model, opt, model.student, settings, state)
        hs = f", held-out score {rec['holdout_score']:.6f}" if holdout is not None else ""
        log(f"epoch {epoch}/{epochs}: loss {rec['loss']:.5f}{hs}, {rec['images_per_s']:.1f} img/s, "
            f"{t_train:.1f} s{' *best' if improved else ''}")
    stats = {"epochs": state["epoch"], "selected_epoch": state["selected_epoch"],
             "holdout_score": state["holdout_score"],
             "n_fit": n, "n_holdout": len(holdout) if holdout else 0, "train_seconds": round(state["train_seconds"], 3),
             "train_images_per_s": round(n * len(state["history"]) / state["train_seconds"], 2)
             if state["train_seconds"] > 0 else None,
             "batch_size": batch_size, "lr": lr, "momentum": momentum, "weight_decay": weight_decay, "seed": seed,
             "compiled": student.enabled, "teacher_cached": t_fit is not None, "processes": world,
             "history": state["history"]}
    if main and os.path.isfile(best_path):
        C.promote_candidate(out_dir, METHOD, train=stats)   # the run's summary joins the kept checkpoint
    elif main and os.path.isfile(os.path.join(out_dir, C.MODEL)):   # a resumed run that found no better epoch
        ck = C.load_checkpoint(os.path.join(out_dir, C.MODEL), METHOD)
        ck.update(train=stats, complete=True)
        C.rewrite_checkpoint(os.path.join(out_dir, C.MODEL), ck)
    return stats
