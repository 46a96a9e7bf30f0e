"""KDAD's engine (the method contract, adcommon.method.contract): the cloner's training, the held-out
calibration, checkpoints, and the runner and deployment description of its localization methods."""
import dataclasses
import os
import time
from typing import Optional

import numpy as np
import paddle

from adcommon import checkpoint as C
from adcommon import distributed as D
from adcommon.evaluate.maps import postprocess, threshold_from_normals, vis_range
from adcommon.method import loop
from adcommon.method.compiled import CompiledForward
from shared_data.dataset import ImageCache

from .localization import detect, localize, paper_localization_auroc, soft_masks
from .localization import discrepancy as discrepancy_outputs
from .loss import distill_loss
from .model import KDAD, TRAIN_LAYERS, Architecture

METHOD = "kdad"
TITLE = "KDAD (Multiresolution Knowledge Distillation)"   # for people: notebooks and docs (adcommon.method.contract)
SUMMARY = ("KDAD distils a frozen expert network into a smaller cloner on normal images; the cloner's disagreement "
           "with the expert scores the image, and its maps locate the defect.")
# the paper's own localization number; the image AUROC of the other image score (map maximum or the paper's)
SUMMARY_EXTRA = ("paper_localization_auroc", "image_auroc_map_max", "image_auroc_loss")
SIGMA = 4.0                 # reference: gaussian_filter(sigma=4) on the 128 x 128 map
GRADIENT_MAP_THRESHOLD = 0.5  # the seed's predict.py display threshold on the [0, 1] gradient map
# The cloner (VGG-like: 3x3 convolutions, BN, ReLU, max-pools) trains faster as a static oneDNN graph
# on a CPU (README benchmark), whatever the expert.
COMPILE_BY_DEFAULT = True


def postprocess_spec(kind, image_size, image_score="loss"):
    """Raw outputs -> maps: the map outputs are resized to the input size (bilinear), summed
    (discrepancy: over pool3..pool5) and blurred with sigma 4. The image score is output 0 (the paper's
    detection score) or, with image_score 'map_max', the maximum of the discrepancy map."""
    maps = [1, 2, 3] if kind == "discrepancy" else [1]
    by_map = image_score == "map_max" and kind == "discrepancy"
    return {"out_size": int(image_size), "combine": "sum", "sigma": SIGMA, "map_outputs": maps,
            "score_output": None if by_map else 0}


IMAGE_SCORE_DOC = {"loss": "the paper's detection score: eq. 3 on pool3..pool5 of the whole image",
                   "map_max": "maximum of the discrepancy map (ours)"}


def image_score_of(model_args):
    """'loss' (the paper; checkpoints before the option) or 'map_max'."""
    return model_args.get("image_score", "loss")


def check_image_score(image_score, localization):
    """One line when the image score cannot come from the run's maps: map_max needs discrepancy maps
    (``localization`` None: detection only, no maps)."""
    if image_score == "map_max" and localization != "discrepancy":
        from adbase import UserError
        raise UserError("image_score map_max scores an image by the maximum of its discrepancy map: it needs "
                        "--localization_method discrepancy"
                        + (" and --localization_test True" if localization is None else f" (got {localization})"))


def build(model_args, pretrained="none"):
    """The KDAD of ``model_args`` (expert weights: ``pretrained``; a checkpoint brings all of them)."""
    a = dict(model_args)
    a.setdefault("cloner_pools", "relu")   # checkpoints before the option: ReLU'd pools
    a["image_score"] = image_score_of(a)
    model = KDAD(Architecture.of(a), pretrained)
    if pretrained == "none" and a.get("weights"):
        model.model_args["weights"] = a["weights"]  # the weights the checkpoint's expert came from
    return model


def stack_images(ds):
    """All images of a dataset as one float32 array (N, 3, S, S) in [0, 1] (shared_data.dataset.ImageCache;
    MVTec's largest train set is 77 MB at 128), or None for no dataset."""
    if ds is None or not len(ds):
        return None
    return ImageCache(ds).batch(range(len(ds)))


@paddle.no_grad()
def expert_targets(model, images, batch_size):
    """Expert pool2..pool5 of every training image, computed once: the expert is frozen and the
    reference uses no augmentation, so its outputs never change (about 1 MB per image at 128)."""
    model.expert.eval()
    parts = None
    for i in range(0, len(images), batch_size):
        feats = [f.numpy() for f in model.expert(paddle.to_tensor(images[i:i + batch_size]))]
        parts = [[f] for f in feats] if parts is None else [p + [f] for p, f in zip(parts, feats)]
    return [np.concatenate(p) for p in parts]


@paddle.no_grad()
def calibrate_feature_scale(model, images, batch_size, targets=None):
    """With model_args feature_scale 'rms': set the expert's per-layer divisors to each matched layer's
    RMS over the training images (``targets``: their cached raw expert features). Returns the
    targets divided the same way (None stays None)."""
    if model.model_args.get("feature_scale") != "rms":
        return targets
    model.expert.feature_scale.set_value(np.ones([4], np.float32))
    if targets is not None:
        ms = [float((t * t).mean()) for t in targets]
    else:
        acc, n = np.zeros(4), 0
        for i in range(0, len(images), batch_size):
            feats = model.expert(paddle.to_tensor(images[i:i + batch_size]))
            acc += [float((f * f).mean()) * len(f) for f in feats]
            n += len(feats[0])
        ms = list(acc / n)
    rms = np.sqrt(np.maximum(ms, 1e-12)).astype(np.float32)
    model.expert.feature_scale.set_value(rms)
    return None if targets is None else [t / float(r) for t, r in zip(targets, rms)]


@paddle.no_grad()
def detection_scores(model, images, batch_size=32):
    """Detection scores (N,) of an image array, eval mode, no gradients."""
    model.eval()
    out = [model.score(paddle.to_tensor(images[i:i + batch_size])).numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def shared_detection_scores(model, images, batch_size=32):
    """detection_scores with every process scoring its share (adcommon.distributed), gathered in order."""
    mine = D.shard(len(images))
    return D.gather_shares(len(images), mine, detection_scores(model, images[mine], batch_size))


# ------------------------------------------------------------------ training


PROGRESS = "epoch"   # --epochs, resumable from last.pdparams


def prepare_args(args):
    """train.py's flags: the ones not given from --config, then the paper's; checked before any work."""
    from adbase import UserError

    from .config import apply_config
    apply_config(args)
    for name in ("epochs", "batch_size", "image_size"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be >= 1")
    if not 0 <= args.holdout_ratio < 1:
        raise UserError("--holdout_ratio must be in [0, 1)")
    check_image_score(args.image_score, args.localization_method)


def val_settings(args):
    """train.py --val: val.py's batch (16: the gradient maps hold both networks' activations per image)
    and the run's localization flags."""
    run = LocalizationRun(args.localization_method, test=bool(args.localization_test), seed=args.seed)
    return 16, run.configure


def train_category(args, category, out, log, main=True):
    """The training half of the contract (adcommon.method.training): the cloner trained on ``category``'s
    normal images (``train``, --resume from last.pdparams), then the threshold and picture ranges from
    the held-out normal images (``holdout_calibration``), written to out/model.pdparams."""
    from adcommon import cli
    from adcommon.method.compiled import resolve
    from shared_data.dataset import train_split
    resume = C.training_state(os.path.join(out, C.STATE), METHOD, log, args.resume)
    # built from the flags; a resumed run refuses a state written with other ones (restore_training)
    model = build({"backbone": args.backbone, "image_size": args.image_size, "lamda": args.lamda,
                   "use_bias": args.use_bias, "equal_network_size": args.equal_network_size,
                   "direction_loss_only": args.direction_loss_only, "feature_scale": args.feature_scale,
                   "cloner_pools": args.cloner_pools, "image_score": args.image_score}, args.pretrained)
    s = model.model_args["image_size"]
    # [0, 1] inputs, no normalisation (the reference's)
    fit_ds, holdout_ds = train_split(args.data_dir, category, args.holdout_ratio, image_size=s, crop_size=None,
                                  mean=None, std=None)
    n_holdout = len(holdout_ds) if holdout_ds is not None else 0
    compiled = resolve(args.compile, COMPILE_BY_DEFAULT)
    log(f"KDAD {category}: expert {args.backbone} ({model.model_args['weights']}), cloner "
        f"{'A' if args.equal_network_size else 'B'}, {len(fit_ds)} fit + {n_holdout} held-out normal images, "
        f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, lamda {args.lamda}, seed {args.seed}, "
        f"expert features scaled: {model.model_args['feature_scale']}, "
        f"cloner pools: {model.model_args['cloner_pools']}, image score: {args.image_score}, "
        f"{'compiled (static oneDNN graph)' if compiled else 'eager'} cloner")
    fit, holdout = stack_images(fit_ds), stack_images(holdout_ds)
    stats = train(model, fit, holdout, out, cli.settings_from(TrainSettings, args, compile=compiled), log, resume)
    if not main:
        return None
    calib = holdout_calibration(model, holdout, args.batch_size, args.threshold_quantile, args.threshold_rule)
    stats["peak_rss_mb"] = round(cli.peak_rss_mb(), 1)
    path = os.path.join(out, C.MODEL)
    save(path, model, category, calib, stats, args.experiment_name, localization=args.localization_method)
    thr = calib["threshold"]
    log(f"saved {path}; threshold {'none (no held-out images)' if thr is None else f'{thr:.4f}'}, "
        f"{stats['train_images_per_s']} train images/s, peak RSS {stats['peak_rss_mb']} MB")
    return None


@dataclasses.dataclass
class TrainSettings:
    """The training's settings (train.py's flags of the same names; the defaults are the reference's)."""
    epochs: int = 601
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    eval_interval: int = 10    # the held-out normal images scored every N epochs (and after the first and last)
    save_interval: int = 10    # last.pdparams every N epochs
    cache_expert: bool = True  # the frozen expert's targets computed once (the reference uses no augmentation)
    select: str = "last"       # last: the final epoch (the reference); holdout: the lowest held-out mean score
    compile: bool = False      # the cloner's training forward and backward as a static oneDNN graph
    sync_bn: bool = True   # several processes: batch norm over the global batch (False: each share)


class ClonerTrainer(loop.Trainer):
    """Adam on the cloner with the distillation loss over pool2..pool5 (docs/reference.md#kdad-training), one
    epoch per unit; the held-out score is the mean detection score of the held-out NORMAL images."""
    method = METHOD

    def __init__(self, model, images, holdout, s):
        self.model, self.network, self.images, self.held, self.s = model, model.cloner, images, holdout, s
        self.optimizer = paddle.optimizer.Adam(learning_rate=float(s.lr), parameters=model.cloner.parameters())
        self.settings = {"batch_size": s.batch_size, "lr": float(s.lr), "seed": int(s.seed), "select": s.select}
        if not s.sync_bn:   # a resumed run keeps the batch norm it started with (absent: synchronised)
            self.settings["sync_bn"] = False
        self.has_holdout, self.targets, self.best = holdout is not None, None, None

    def prepare(self, start, log):
        t0, n = time.perf_counter(), len(self.images)
        targets = expert_targets(self.model, self.images, self.s.batch_size) if self.s.cache_expert else None
        if start == 0:   # a resumed run keeps the divisors its checkpoint holds; its expert applies them
            targets = calibrate_feature_scale(self.model, self.images, self.s.batch_size, targets)
        if self.model.model_args.get("feature_scale") == "rms":
            log("expert layers scaled to unit RMS, divisors " +
                ", ".join(f"{v:.3f}" for v in self.model.expert.feature_scale.numpy()))
        if targets is not None:
            self.targets = [paddle.to_tensor(t) for t in targets]
            mb = sum(int(np.prod(t.shape)) for t in targets) * 4 / 2 ** 20
            log(f"expert pool2-pool5 of {n} training images cached ({mb:.0f} MB, {time.perf_counter() - t0:.1f} s)")
        self.cloner = CompiledForward(self.network, enabled=D.data_parallel(
            self.network, self.s.batch_size, self.s.compile, log, "cloner", self.s.sync_bn))

    def step(self, epoch):
        self.network.train()
        n, b = len(self.images), self.s.batch_size   # epoch e's order: Generator([seed, e]), so resume repeats it
        perm, total = np.random.default_rng([int(self.s.seed), epoch - 1]).permutation(n), 0.0
        for i in range(0, n, b):
            full = perm[i:i + b]
            idx, weight = D.batch_share(full)   # several processes: each takes a share of every batch
            x = paddle.to_tensor(self.images[idx])
            outs = self.cloner(x)
            if self.targets is not None:
                real = [paddle.gather(t, paddle.to_tensor(idx)) for t in self.targets]
            else:
                with paddle.no_grad():
                    real = self.model.expert(x)
            loss = distill_loss([outs[k] for k in TRAIN_LAYERS], real, self.model.lamda, self.model.direction_only)
            D.backward_share(loss, weight, self.network.parameters(), self.cloner.backward)
            self.optimizer.step()
            self.optimizer.clear_grad()
            total += float(loss) * weight * len(full)
        return {"loss": float(D.all_sum(np.array([total]))[0]) / n, "images": n, "lr": self.s.lr}

    def holdout(self, epoch):
        hs = shared_detection_scores(self.model, self.held, self.s.batch_size)
        return {"holdout_score": float(hs.mean()), "holdout_mean_score": float(hs.mean())}

    def keep(self, epoch, record):
        if self.s.select == "holdout" and record.get("holdout_score") is not None:
            self.best = {"epoch": epoch, "score": record["holdout_score"],
                         "state": {k: v.numpy() for k, v in self.network.state_dict().items()}}

    def line(self, r, best):   # the seed's [Train] / [Eval] lines
        lines = [f"[Train] epoch {r['epoch']}/{self.s.epochs} loss {r['loss']:.4f} ({r['seconds']:.2f} s)"]
        if "holdout_score" in r:
            lines.append(f"[Eval] epoch {r['epoch']}: held-out normal mean score {r['holdout_score']:.4f} "
                         f"({len(self.held)} images){' (best so far)' if best and self.s.select == 'holdout' else ''}")
        return lines

    def state(self):
        return {"best": self.best}

    def restore(self, progress):
        self.best = progress.get("best")

    def finish(self, stats):
        if self.s.select == "holdout" and self.best is not None:
            self.network.set_state_dict({k: paddle.to_tensor(v) for k, v in self.best["state"].items()})
        self.model.eval()
        stats.update(select=self.s.select, n_fit=len(self.images), n_holdout=0 if self.held is None else len(self.held),
                     expert_cached=self.targets is not None, compiled=self.cloner.enabled)


def train(model, images, holdout, out_dir, settings, log=print, resume=None):
    """Train the cloner (ClonerTrainer, adcommon.method.loop). ``images``, ``holdout``: training and held-out
    normal images, float32 (N, 3, S, S) in [0, 1] (``stack_images``; ``holdout`` may be None). No test
    image is ever looked at. ``<out_dir>/last.pdparams`` is rewritten every ``save_interval`` epochs;
    ``resume``: a training state to continue from (adcommon.checkpoint.training_state; the model built
    from its model_args). Returns the run's summary."""
    s = settings
    sched = loop.Schedule("epoch", s.epochs, eval_every=s.eval_interval, save_every=s.save_interval, select=s.select)
    stats = loop.run(ClonerTrainer(model, images, holdout, s), sched, out_dir, log, resume)
    if s.select == "holdout" and stats["selected_epoch"] is not None:
        log(f"selected epoch {stats['selected_epoch']} (lowest held-out normal mean score "
            f"{stats['holdout_score']:.4f})")
    return stats


def holdout_calibration(model, images, batch_size=32, quantile=0.99, rule="robust"):
    """Thresholds and colour ranges from held-out NORMAL images only (never test labels): ``images``
    float32 (N, 3, S, S) in [0, 1] (``stack_images``), or None.

    threshold: the ``quantile`` of their image scores (adcommon's threshold rule). Gradient maps are
    scaled per image to [0, 1], so their display threshold is the seed's fixed 0.5 and the colour range [0, 1];
    discrepancy maps have absolute units, so theirs come from the held-out maps (quantile of the
    per-image maximum, as PaDiM/STFPM do for their maps).
    """
    s = model.model_args["image_size"]
    out = {"threshold": None, "threshold_quantile": quantile, "threshold_rule": rule, "holdout_scores": [],
           "map_thresholds": {"gradients": GRADIENT_MAP_THRESHOLD, "smooth_grad": GRADIENT_MAP_THRESHOLD,
                              "gbp": GRADIENT_MAP_THRESHOLD, "discrepancy": None},
           "vis_ranges": {"gradients": [0.0, 1.0], "smooth_grad": [0.0, 1.0], "gbp": [0.0, 1.0],
                          "discrepancy": None}}
    if images is None:
        return out
    model.eval()
    raw = None
    for i in range(0, len(images), batch_size):
        r = discrepancy_outputs(model, images[i:i + batch_size])
        raw = [[a] for a in r] if raw is None else [p + [a] for p, a in zip(raw, r)]
    raw = [np.concatenate(p) for p in raw]
    maps, scores = postprocess(raw, postprocess_spec("discrepancy", s, image_score_of(model.model_args)))
    out["threshold"] = threshold_from_normals(scores, quantile, rule)
    out["holdout_scores"] = [float(v) for v in scores]
    mthr = threshold_from_normals(maps.reshape(len(maps), -1).max(1), quantile, rule)
    out["map_thresholds"]["discrepancy"] = mthr
    out["vis_ranges"]["discrepancy"] = list(vis_range(maps, mthr))
    return out


# ------------------------------------------------------------------ checkpoints and deployment


def save(path, model, category, calib, train_stats, config_name=None, localization="gradients"):
    s = model.model_args["image_size"]
    score = image_score_of(model.model_args)
    args = dict(model.model_args, postprocess={k: postprocess_spec(k, s, score) for k in ("gradients", "discrepancy")})
    # threshold: image level (detection score); map_threshold / vis_range: the paper's gradient map;
    # the *_ranges / *_thresholds dicts hold them per localization method.
    C.save_checkpoint(path, METHOD, args, model.state_dict(), category=category, threshold=calib["threshold"],
                        map_threshold=calib["map_thresholds"]["gradients"],
                        vis_range=calib["vis_ranges"]["gradients"],
                        map_thresholds=calib["map_thresholds"], vis_ranges=calib["vis_ranges"],
                        calibration={k: calib[k] for k in ("threshold_quantile", "threshold_rule", "holdout_scores")},
                        train=train_stats, experiment_name=config_name, localization_method=localization)


def upgrade(ck, path):
    """Checkpoints written before the expert's feature scale existed trained on unscaled features."""
    sd = ck["state_dict"]
    if "expert.feature_scale" in sd:
        return ck
    return dict(ck, model_args=dict(ck["model_args"], feature_scale="none"),
                state_dict=dict(sd, **{"expert.feature_scale": np.ones([4], np.float32)}))


def localization_of(ck, flag=None):
    """The localization method: the flag if given, else the one stored at training (paper: gradients)."""
    return flag or ck.get("localization_method") or "gradients"


def map_kind(localization):
    """Maps of smooth_grad / gbp share the gradient post-processing (one map output, sigma 4)."""
    return "discrepancy" if localization == "discrepancy" else "gradients"


@dataclasses.dataclass
class LocalizationRun:
    """A script's localization choices (val.py, predict.py, export_model.py, train.py --val), stored as
    ck["run"] by ``configure`` (adcommon.method.contract): ``localization`` (None: the checkpoint's, else
    ``fallback``, else the paper's gradients), ``test`` (False: detection scores only), the smooth_grad
    copies and their seed."""
    localization: Optional[str] = None
    fallback: Optional[str] = None
    test: bool = True
    smooth_grad_n: int = 50
    seed: int = 0

    def method(self, ck):
        """The localization method of this run on ``ck``, or None for detection only."""
        if not self.test:
            return None
        return self.localization or ck.get("localization_method") or self.fallback or "gradients"

    def configure(self, ck):
        """The step a script runs on the loaded checkpoint: this run's choices into ck["run"]."""
        check_image_score(image_score_of(ck["model_args"]), self.method(ck))
        ck["run"] = self
        label = map_kind(self.method(ck) or "gradients")
        self.label = f"the {label} graph" if self.localization else None   # export's line (contract)


def _run(ck):
    """The run's choices of ``ck`` (a script's LocalizationRun, else the defaults: the checkpoint's method)."""
    run = ck.get("run") or LocalizationRun()
    return run, run.method(ck)


def runner(model, ck):
    """batch (B, 3, S, S) numpy -> [score, map outputs...] of the run's localization method."""
    run, localization = _run(ck)
    n, seed = run.smooth_grad_n, run.seed
    model.eval()

    def run(x):
        return localize(model, x, localization, n, seed) if localization else detect(model, x)
    return run


def result_dir(out, ck):
    """val.py's folder: the checkpoint's own localization method writes next to it, another one into a
    subfolder named after it (so two evaluations never overwrite each other)."""
    localization = _run(ck)[1]
    return out if localization in (None, localization_of(ck)) else os.path.join(out, localization)


def extra_metrics(ck, ds, raw, maps, scores):
    """The paper's own localization AUROC (anomalous images only) beside the standard metrics (its
    threshold sweep (0..0.999) is defined for gradient maps in [0, 1] only), and the image AUROC of the
    score that does not decide: with the paper's score, the discrepancy map's maximum (discrepancy maps
    only: gradient maps are scaled per image); with image_score map_max, the paper's detection score."""
    from adcommon.evaluate.metrics import SingleClassError, image_auroc
    localization = _run(ck)[1]
    kind = image_score_of(ck["model_args"])
    paper = other = None
    if maps is not None and ds.has_masks and localization not in (None, "discrepancy"):
        idx, gt = soft_masks(ds, ck["model_args"]["image_size"])
        paper = paper_localization_auroc(maps[idx], gt)
    if kind == "map_max" or (maps is not None and localization == "discrepancy"):
        try:
            other = image_auroc(ds.labels, raw[0] if kind == "map_max" else maps.reshape(len(maps), -1).max(1))
        except SingleClassError:
            pass
    other_name = "loss" if kind == "map_max" else "map_max"
    return {"localization_method": localization, "paper_localization_auroc": paper,
            "image_score": IMAGE_SCORE_DOC[kind],
            f"image_auroc_{other_name}": other,
            f"image_auroc_{other_name}_note": f"the image AUROC of {IMAGE_SCORE_DOC[other_name]} "
                                              f"(image_auroc: {IMAGE_SCORE_DOC[kind]})",
            "paper_localization_auroc_note": "paper metric: anomalous test images only, 1000 thresholds, "
                                             "3x3 elliptical opening (docs/reference.md#kdad-localization-auroc); "
                                             "not a pixel AUROC"}


def export_layer(model, ck):
    """The graph to export: the model with its deploy map (gradients or discrepancy) switched on."""
    model.deploy_map = map_kind(_run(ck)[1] or "gradients")
    return model


def deploy_meta(ck):
    """What a deployment needs besides the graph (inference.yml; predict.py and val.py use the same dict)."""
    a = ck["model_args"]
    localization = _run(ck)[1]
    if localization is None:  # detection only (val.py --localization_test False)
        spec, outputs = {"map_outputs": [], "score_output": 0}, ["score"]
    else:
        kind = map_kind(localization)
        spec = postprocess_spec(kind, a["image_size"], image_score_of(a))
        outputs = ["score", "discrepancy_pool3", "discrepancy_pool4", "discrepancy_pool5"] \
            if kind == "discrepancy" else ["score", "gradient_map"]
    return {"method": METHOD, "category": ck.get("category"), "localization": localization,
            "preprocess": {"image_size": a["image_size"], "crop_size": None, "mean": None, "std": None},
            "postprocess": spec, "outputs": outputs,
            "threshold": ck.get("threshold"),
            "map_threshold": (ck.get("map_thresholds") or {}).get(localization),
            "vis_range": (ck.get("vis_ranges") or {}).get(localization),
            # Paddle Inference's oneDNN kernels cannot run the backward ops of the gradient graph
            "graph_has_gradients": localization is not None and map_kind(localization) == "gradients",
            # gradient maps are scaled per image (every image has a hot spot): draw the region only
            # for images over the image threshold
            "region_only_if_anomalous": True,
            "model_args": {k: v for k, v in a.items() if k != "postprocess"}}
