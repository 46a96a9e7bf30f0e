"""STFPM's engine (the method contract, adcommon.method.contract): build, and the training with held-out
selection; the runner and the deployment description are the contract's defaults.

Training follows the official code (docs/reference.md#stfpm-training): SGD lr 0.4, momentum 0.9, weight
decay 1e-4, batch 32, 100 epochs, 80/20 split of train/good; after every epoch the student is scored on
the held-out normal images and kept when their mean anomaly map value drops. The test split is never
looked at during training.
"""
import dataclasses
import os
import sys
import time

import numpy as np
import paddle
import paddle.nn.functional as F
from tqdm import tqdm

from adbase import UserError
from adcommon import checkpoint as C
from adcommon import distributed as D
from adcommon.evaluate.maps import postprocess, threshold_from_normals, vis_range_of
from adcommon.method import loop
from adcommon.method.compiled import CompiledForward
from shared_data.dataset import ImageCache

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
    stats = train(model, fit_ds, holdout_ds, out, category, cli.settings_from(TrainSettings, args, compile=compiled),
                  resume, log)
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


@dataclasses.dataclass
class TrainSettings:
    """The training's settings (train.py's flags of the same names; the defaults are the paper's)."""
    epochs: int = 100
    batch_size: int = 32
    lr: float = 0.4
    momentum: float = 0.9
    weight_decay: float = 1e-4
    seed: int = 42
    threshold_quantile: float = 0.99
    threshold_rule: str = "robust"
    compile: bool = False        # the student's training forward and backward as a static oneDNN graph
    cache_teacher: bool = True   # the frozen teacher's features computed once (the same numbers, less work)
    sync_bn: bool = True   # several processes: batch norm over the global batch (False: each share)


class StudentTrainer(loop.Trainer):
    """The student (Eq. 4) trained on normal images, one epoch per unit; the held-out score is the mean
    held-out anomaly map (the official code), and its best epoch becomes <out_dir>/candidate.pdparams (best
    teacher + student, threshold, vis_range), promoted to model.pdparams when the run ends."""
    method = METHOD

    def __init__(self, model, fit_ds, holdout_ds, out_dir, category, s):
        self.model, self.network, self.s, self.out, self.category = model, model.student, s, out_dir, category
        self.optimizer = paddle.optimizer.Momentum(learning_rate=s.lr, momentum=s.momentum, weight_decay=s.weight_decay,
                                                   parameters=model.student.parameters())  # coupled, as torch SGD
        self.settings = {"category": category, "batch_size": s.batch_size, "lr": s.lr, "momentum": s.momentum,
                         "weight_decay": s.weight_decay, "seed": s.seed}
        if not s.sync_bn:   # a resumed run keeps the batch norm it started with (absent: synchronised)
            self.settings["sync_bn"] = False
        self.fit = ImageCache(fit_ds)
        self.held = ImageCache(holdout_ds) if holdout_ds is not None and len(holdout_ds) else None
        self.has_holdout, self.t_fit, self.t_held = self.held is not None, None, None
        self.calibration = {"threshold": None, "vis_range": None, "holdout_scores": []}   # of the last held-out score

    def prepare(self, start, log):
        if self.held is None:
            log("no held-out normal images: the last epoch is kept and no threshold is set")
        mb = teacher_cache_mb(self.model, len(self.fit) + (len(self.held) if self.held else 0))
        if self.s.cache_teacher and mb <= TEACHER_CACHE_MB:
            t0 = time.perf_counter()
            self.t_fit = teacher_features(self.model, self.fit, self.s.batch_size)
            self.t_held = teacher_features(self.model, self.held, self.s.batch_size) if self.held else None
            log(f"teacher features cached ({mb:.0f} MB, {time.perf_counter() - t0:.1f} s)")
        elif self.s.cache_teacher:
            log(f"teacher features not cached: {mb:.0f} MB > {TEACHER_CACHE_MB} MB")
        self.student = CompiledForward(self.network, enabled=D.data_parallel(
            self.network, self.s.batch_size, self.s.compile, log, "student", self.s.sync_bn))

    def step(self, epoch):
        self.model.train()  # the student's BN learns; the teacher is a frozen backbone and stays in eval mode
        n, b = len(self.fit), self.s.batch_size   # the order depends on (seed, epoch) only: resume repeats it
        perm, t0, seen, total = np.random.default_rng([self.s.seed, epoch]).permutation(n), time.perf_counter(), 0, 0.0
        bar = tqdm(range(0, n, b), desc=f"epoch {epoch}/{self.s.epochs}", unit="batch", leave=False, file=sys.stdout,
                   disable=not D.is_main())
        for i in bar:
            idx = perm[i:i + b]  # drop_last=False, as the reference
            share, weight = D.batch_share(idx)   # several processes: each takes a share of every batch
            x = paddle.to_tensor(self.fit.batch(share))
            if self.t_fit is not None:
                t_feats = [paddle.to_tensor(t[share]) for t in self.t_fit]
            else:
                with paddle.no_grad():
                    t_feats = [F.normalize(t, axis=1) for t in self.model.teacher(x)]
            loss = stfpm_loss(t_feats, self.student(x), teacher_normalized=True)
            self.optimizer.clear_grad()
            D.backward_share(loss, weight, self.network.parameters(), self.student.backward)
            self.optimizer.step()
            lv = float(loss) * weight   # this process's part of the batch's mean loss (all of it alone)
            total, seen = total + lv * len(idx), seen + len(idx)
            bar.set_postfix(loss=f"{lv:.4f}", img_s=f"{seen / (time.perf_counter() - t0):.1f}")
        bar.close()
        return {"loss": float(D.all_sum(np.array([total]))[0]) / seen, "images": seen, "lr": self.s.lr}

    def holdout(self, epoch):
        map_mean, scores, map_max = holdout_scores(self.model, self.held, self.s.batch_size, self.t_held)
        threshold = threshold_from_normals(scores, self.s.threshold_quantile, self.s.threshold_rule)
        self.calibration = {"threshold": threshold, "vis_range": list(vis_range_of(map_mean, map_max, threshold)),
                            "holdout_scores": [float(v) for v in scores]}
        # the reference's score: the mean of the held-out maps; the mean image score as KDAD and SSPCAB
        return {"holdout_score": map_mean, "holdout_mean_score": float(scores.mean())}

    def keep(self, epoch, record):
        if not D.is_main():   # one process writes
            return
        args = dict(self.model.model_args, postprocess=spec_of(self.model.model_args))
        C.save_checkpoint(os.path.join(self.out, C.CANDIDATE), METHOD, args, self.model.state_dict(),
                          category=self.category, selected_epoch=epoch, holdout_score=record.get("holdout_score"),
                          threshold_quantile=self.s.threshold_quantile, threshold_rule=self.s.threshold_rule,
                          **self.calibration,
                          # until the run ends: val/predict/export say that it is an unfinished one
                          complete=False, progress={"epoch": epoch, "epochs": self.s.epochs})

    def line(self, r, best):
        hs = f", held-out score {r['holdout_score']:.6f}" if "holdout_score" in r else ""
        return (f"epoch {r['epoch']}/{self.s.epochs}: loss {r['loss']:.5f}{hs}, {r['images_per_s']:.1f} img/s, "
                f"{r['seconds']:.1f} s{' *best' if best else ''}")

    def finish(self, stats):
        stats.update(n_fit=len(self.fit), n_holdout=len(self.held) if self.held else 0, compiled=self.student.enabled,
                     teacher_cached=self.t_fit is not None,
                     **{k: getattr(self.s, k) for k in ("batch_size", "lr", "momentum", "weight_decay", "seed")})
        best, model_path = os.path.join(self.out, C.CANDIDATE), os.path.join(self.out, C.MODEL)
        if D.is_main() and os.path.isfile(best):
            C.promote_candidate(self.out, METHOD, train=stats)   # the run's summary joins the kept checkpoint
        elif D.is_main() and os.path.isfile(model_path):   # a resumed run that found no better epoch
            ck = C.load_checkpoint(model_path, METHOD)
            ck.update(train=stats, complete=True)
            C.rewrite_checkpoint(model_path, ck)


def train(model, fit_ds, holdout_ds, out_dir, category, settings, resume=None, log=print):
    """Train the student and keep the epoch with the lowest mean held-out anomaly map (StudentTrainer,
    adcommon.method.loop: last.pdparams every epoch, ``resume`` a training state from
    adcommon.checkpoint.training_state, the model built from its model_args). Returns the run's summary."""
    sched = loop.Schedule("epoch", settings.epochs, unit_bar=False)
    return loop.run(StudentTrainer(model, fit_ds, holdout_ds, out_dir, category, settings), sched, out_dir, log,
                    resume)
