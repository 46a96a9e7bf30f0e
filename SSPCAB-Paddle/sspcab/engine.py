"""CutPaste + SSPCAB's engine (the method contract, adcommon.method.contract): the training loop, the density
fit and the checkpoints; the runner and the deployment description are the contract's defaults."""
import dataclasses
import math
import os
import time

import numpy as np
import paddle

from adbase import UserError
from adcommon import checkpoint as C
from adcommon import distributed as D
from adcommon.evaluate.evaluation import run_batches
from adcommon.evaluate.maps import postprocess, threshold_from_normals, vis_range
from adcommon.method import loop
from shared_data.dataset import image_batches, to_tensor

from .cutpaste import VARIANTS, batch_indices, cutpaste_views, step_rng
from .density import fit_gaussian, l2_normalize, subsample
from .loss import class_labels, total_loss
from .model import BlockShape, ProjectionNet

METHOD = "sspcab"
TITLE = "CutPaste with the SSPCAB block"   # for people: notebooks and docs (adcommon.method.contract)
SUMMARY = ("CutPaste learns to tell normal images from ones with a pasted patch (3-way self-supervision, with the "
           "SSPCAB block), then scores images with a Gaussian density of its features.")
OUTPUTS = ["score", "patch_map"]  # the exported graph's (adcommon.method.contract)
PIXEL_NOTE = " (ours)"  # neither paper localises: the patch map is ours
SUMMARY_EXTRA = ("image_auroc_patch_max", "image_auroc_pooled")  # the other image score's AUROC
SIGMA = 4.0          # Gaussian smoothing of the upsampled patch map (as PaDiM; CutPaste smooths its patch maps too)
MAX_PATCHES = 16384  # layer4 positions used to fit the patch GDE (random subset above that; keeps fit time flat)
# What the training hyper-parameters of a resumable state must match.
TRAIN_KEYS = ("steps", "batch_size", "lr", "momentum", "weight_decay", "freeze_steps", "sspcab_lambda", "seed",
              "frozen_stages")


def postprocess_spec(image_size, image_score="pooled"):
    """Outputs [score (N,), patch map (N, 1, h, w)] -> map bilinear to the input size, blur sigma 4;
    the image score is the GDE score of the pooled embedding (output 0, the paper) or, with
    image_score 'patch_max', the maximum of the map (as PaDiM and STFPM score an image)."""
    return {"out_size": int(image_size), "combine": "product", "sigma": SIGMA, "map_outputs": [1],
            "score_output": 0 if image_score == "pooled" else None}


def lr_at(step, steps, lr):
    """One cosine decay over the run: lr * (1 + cos(pi * step / steps)) / 2 (the reference's
    CosineAnnealingWarmRestarts with T_0 = all steps, stepped every update)."""
    return 0.5 * lr * (1.0 + math.cos(math.pi * step / max(1, steps)))


class CutPasteSteps(paddle.io.Dataset):
    """Item k = sample (k % B) of training step first_step + k // B: its views (V, 3, S, S) float32.

    Batch composition and augmentations are keyed by (seed, step, index), so a DataLoader with
    batch_size = B, in order, yields the same step-k batch for any worker count and after a resume.
    """

    def __init__(self, images, model_args, batch_size, seed, steps, first_step=0, share=None):
        super().__init__()
        self.images, self.B, self.seed = images, batch_size, seed
        self.first, self.steps, self.variant = first_step, steps, model_args["variant"]
        self.mean, self.std = model_args["mean"], model_args["std"]
        self.share = list(range(batch_size)) if share is None else list(share)   # this process's samples

    def __len__(self):
        return (self.steps - self.first) * len(self.share)

    def __getitem__(self, k):
        step, i = self.first + k // len(self.share), self.share[k % len(self.share)]
        img = self.images[batch_indices(len(self.images), self.B, self.seed, step)[i]]
        views = cutpaste_views(img, step_rng(self.seed, step, i), self.variant)
        return np.stack([to_tensor(v, self.mean, self.std) for v in views])


def _batches(ds, batch_size, num_workers):
    """Consecutive batches of ``ds`` as tensors (B, V, 3, S, S); see shared_data.dataset.image_batches."""
    for x in image_batches(ds, batch_size, num_workers):
        yield paddle.to_tensor(x)


@dataclasses.dataclass
class TrainSettings:
    """The training's settings (train.py's flags of the same names; the defaults are the reference's)."""
    steps: int = 256
    batch_size: int = 64
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 3e-5
    freeze_steps: int = 20      # the pretrained backbone frozen for the first N updates
    sspcab_lambda: float = 0.1
    seed: int = 0
    frozen_stages: str = "none"  # layer1..layer3: the backbone up to that stage keeps its ImageNet weights
    num_workers: int = 0
    save_interval: int = 100     # last.pdparams every N updates (and after the last)
    log_interval: int = 10
    eval_interval: int = 0       # the held-out curve every N updates (0: none; it picks nothing)
    sync_bn: bool = True   # several processes: batch norm over the global batch (False: each share)


class CutPasteTrainer(loop.Trainer):
    """CutPaste training (+ lambda * L_SSPCAB), one update per unit: SGD with momentum, one cosine decay over
    the run, each update 3 x batch_size images (one per class for 3-way). ``curve_data`` (fit_ds,
    holdout_ds: normal images only): the image GDE fitted on fit_ds and the held-out normals' mean score
    logged every eval_interval updates (a convergence curve; it picks nothing)."""
    method = METHOD

    def __init__(self, model, images, s, curve_data=None):
        self.model, self.network, self.images, self.s, self.curve = model, model, images, s, curve_data
        self.settings = dict(zip(TRAIN_KEYS, (int(s.steps), int(s.batch_size), float(s.lr), float(s.momentum),
                                              float(s.weight_decay), int(s.freeze_steps), float(s.sspcab_lambda),
                                              int(s.seed), str(s.frozen_stages))))
        if not s.sync_bn:   # a resumed run keeps the batch norm it started with (absent: synchronised)
            self.settings["sync_bn"] = False
        if s.frozen_stages and s.frozen_stages != "none":
            model.freeze_stages(s.frozen_stages)
        self.optimizer = paddle.optimizer.Momentum(learning_rate=s.lr, momentum=s.momentum,
                                                   parameters=model.parameters(), weight_decay=s.weight_decay)
        self.freeze = model.model_args["pretrained"] != "none" and s.freeze_steps > 0   # not a random backbone
        self.has_holdout = bool(curve_data) and D.is_main()
        self.n_views = VARIANTS[model.model_args["variant"]]

    def prepare(self, start, log):
        a, s = self.model.model_args, self.s
        # several processes: a share of every step
        D.data_parallel(self.model, s.batch_size, False, log, "network", s.sync_bn)
        self.share, self.weight = D.batch_share(np.arange(s.batch_size))
        ds = CutPasteSteps(self.images, a, s.batch_size, s.seed, s.steps, start, self.share)
        self.loader = _batches(ds, len(self.share), s.num_workers)
        self.labels = class_labels(self.n_views, len(self.share))          # (V B,)
        self.model.train()

    def step(self, unit):
        s, step = self.s, unit - 1
        self.model.set_backbone_trainable(not (self.freeze and step < s.freeze_steps))
        # stochastic layers (Lite0's drop-connect) draw from paddle's RNG: seeded per step for resume
        paddle.seed(int(step_rng(s.seed, step).integers(2 ** 31)))
        self.optimizer.set_lr(lr_at(step, s.steps, s.lr))
        views = next(self.loader)
        x = views.transpose([1, 0, 2, 3, 4]).reshape([-1] + views.shape[2:])   # (V B, 3, S, S), view-major
        _, logits, io = self.model.train_forward(x)
        loss, ce, rec = total_loss(logits, self.labels, io, s.sspcab_lambda)
        D.backward_share(loss, self.weight, self.model.parameters())
        self.optimizer.step()
        self.optimizer.clear_grad()
        # the step's figures over the whole batch (each process's share weighted, then added)
        loss_v, ce_v, rec_v, acc = D.all_sum(np.array([float(loss), float(ce), float(rec), float(
            (logits.argmax(axis=1) == self.labels).astype("float32").mean())]) * self.weight)
        return {"loss": float(loss_v), "ce": float(ce_v), "sspcab": float(rec_v), "acc": float(acc),
                "lr": lr_at(step, s.steps, s.lr), "images": self.n_views * s.batch_size}   # the whole step's

    def holdout(self, unit):
        score = holdout_mean_score(self.model, *self.curve)
        self.model.train()
        return {"holdout_score": score, "holdout_mean_score": score}

    def line(self, r, best):
        lines = [f"step {r['step']}/{self.s.steps}: held-out normal mean score {r['holdout_score']:.4f}"] \
            if "holdout_score" in r else []
        return lines + [f"step {r['step']}/{self.s.steps} loss {r['loss']:.4f} (ce {r['ce']:.4f} + "
                        f"{self.s.sspcab_lambda} x sspcab {r['sspcab']:.4f}) acc {r['acc']:.3f} lr {r['lr']:.6f} "
                        f"{r['images_per_s']:.1f} img/s"]

    def finish(self, stats):
        self.model.set_backbone_trainable(True)
        stats.update(self.settings, variant=self.model.model_args["variant"])


def train(model, images, settings, out_dir=None, log=print, resume=None, curve_data=None):
    """Train ``model`` on ``images`` (CutPasteTrainer, adcommon.method.loop): <out_dir>/last.pdparams every
    save_interval updates and after the last (``out_dir`` None: none); ``resume``: a training state to
    continue from (adcommon.checkpoint.training_state). Returns the run's summary."""
    s = settings
    sched = loop.Schedule("step", s.steps, eval_every=s.eval_interval if curve_data else 0,
                          save_every=s.save_interval, log_every=s.log_interval, select="none")
    return loop.run(CutPasteTrainer(model, images, s, curve_data), sched, out_dir, log, resume)


@paddle.no_grad()
def holdout_mean_score(model, fit_ds, holdout_ds, batch_size=32):
    """Mean image GDE score of held-out normal images under a Gaussian fitted on fit_ds (eval mode)."""
    pooled, _ = embed_dataset(model, fit_ds, batch_size)
    holdout, _ = embed_dataset(model, holdout_ds, batch_size)
    mean, prec = fit_gaussian(l2_normalize(pooled))
    from .density import mahalanobis
    return float(mahalanobis(l2_normalize(holdout), mean, prec).mean())


@paddle.no_grad()
def embed_dataset(model, ds, batch_size=32):
    """(pooled (n, D), patch-layer features (n, C, h, w)) float32 of a dataset, test-time preprocessing."""
    model.eval()
    (fmaps, pooled), _ = run_batches(lambda x: [t.numpy() for t in model.embed(paddle.to_tensor(x))],
                                     ds, batch_size)
    return pooled, fmaps


def _positions(fmaps):
    """(n, C, h, w) patch-layer features -> (n h w, C) L2-normalised position embeddings."""
    return l2_normalize(fmaps.transpose(0, 2, 3, 1).reshape(-1, fmaps.shape[1]))


def set_gaussians(model, pooled, fmaps, seed=0, max_patches=MAX_PATCHES):
    """Fit both GDEs on normal images and store them in the model's buffers."""
    mean, prec = fit_gaussian(l2_normalize(pooled))
    pmean, pprec = fit_gaussian(subsample(_positions(fmaps), max_patches, seed))
    for buf, v in ((model.density_mean, mean), (model.density_precision, prec),
                   (model.patch_mean, pmean), (model.patch_precision, pprec)):
        buf.set_value(v.astype(np.float32))


@paddle.no_grad()
def fit_density(model, fit_ds, holdout_ds=None, batch_size=32, threshold_quantile=0.99,
                seed=0, log=print, threshold_rule="robust"):
    """GDE on train/good embeddings; threshold from held-out normals; then refit on all train images.

    1. fit the image and patch Gaussians on ``fit_ds``;
    2. score ``holdout_ds`` (normal images the network and the Gaussians never saw): the image
       threshold comes from their image scores (threshold_from_normals). With the pooled image score
       the patch map is scaled in the graph (buffer map_scale) so that the same number marks the
       map's own held-out threshold, because the adcommon panel draws one threshold on the map (a
       positive scale leaves pixel metrics unchanged); with 'patch_max' the score is the map's maximum;
    3. refit both Gaussians on fit + held-out images (map_scale and thresholds stay).
    """
    if len(fit_ds) < 2:
        raise UserError(f"the Gaussian needs at least 2 normal training images, got {len(fit_ds)} "
                            "(after the held-out share: add images or use --holdout_ratio 0)")
    t0 = time.perf_counter()
    pooled, fmaps = embed_dataset(model, fit_ds, batch_size)
    set_gaussians(model, pooled, fmaps, seed)
    threshold, vr, holdout_scores, n_holdout = None, None, [], 0
    if holdout_ds is not None and len(holdout_ds):
        hp, hf = embed_dataset(model, holdout_ds, batch_size)
        n_holdout = len(hp)
        model.map_scale.set_value(np.ones([1], np.float32))
        raw = [model.score(paddle.to_tensor(hp)).numpy(), model.patch_map(paddle.to_tensor(hf)).numpy()]
        a = model.model_args
        maps, holdout_scores = postprocess(raw, postprocess_spec(a["image_size"], a["image_score"]))
        threshold = threshold_from_normals(holdout_scores, threshold_quantile, threshold_rule)
        map_threshold = threshold_from_normals(maps.reshape(len(maps), -1).max(1), threshold_quantile, threshold_rule)
        scale = threshold / map_threshold if a["image_score"] == "pooled" and map_threshold and map_threshold > 0 \
            else 1.0
        model.map_scale.set_value(np.array([scale], np.float32))
        vr = list(vis_range(maps * scale, threshold))
        pooled, fmaps = np.concatenate([pooled, hp]), np.concatenate([fmaps, hf])
        set_gaussians(model, pooled, fmaps, seed)
    n_pos = len(pooled) * fmaps.shape[2] * fmaps.shape[3]
    stats = {"n_fit": len(fit_ds), "n_holdout": n_holdout, "n_gaussian": int(len(pooled)),
             "n_patches": int(min(n_pos, MAX_PATCHES)),
             "threshold": threshold, "threshold_quantile": threshold_quantile, "threshold_rule": threshold_rule,
             "map_scale": float(model.map_scale.numpy().reshape(-1)[0]),
             "holdout_scores": [float(s) for s in holdout_scores],
             "vis_range": vr, "fit_seconds": round(time.perf_counter() - t0, 3)}
    log(f"GDE fitted on {stats['n_gaussian']} images ({stats['n_patches']} {model.model_args['patch_layer']} "
        f"positions for the map) "
        f"in {stats['fit_seconds']} s; threshold "
        f"{'none' if threshold is None else round(threshold, 4)} from {n_holdout} held-out normals")
    return stats


PROGRESS = "step"   # --steps (parameter updates), resumable from last.pdparams


def prepare_args(args):
    """train.py's seed aliases (--cuda, --pretrained_resnet, --no-pretrained) and checks, before any work."""
    if args.cuda is not None:
        args.device = "gpu" if args.cuda else "cpu"
    if args.pretrained_resnet is not None:
        args.pretrained = "imagenet" if args.pretrained_resnet else "none"
    if args.no_pretrained:
        args.pretrained = "none"
    for name in ("batch_size", "image_size"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.steps < 0:
        raise UserError(f"--steps must be >= 0 (0: no training, the GDE of ImageNet features), got {args.steps}")
    if not 0 <= args.holdout_ratio < 1:
        raise UserError(f"--holdout_ratio must be in [0, 1), got {args.holdout_ratio}")


def val_settings(args):
    """train.py --val: val.py's batch (32), whatever the training batch."""
    return 32, None


def train_category(args, category, out, log, main=True):
    """The training half of the contract (adcommon.method.training): CutPaste (+ SSPCAB) trained on
    ``category``'s normal images (``train``, --resume from last.pdparams), then the Gaussian densities
    and the threshold from the held-out normal images (``fit_density``), written to out/model.pdparams
    (which supersedes the training state)."""
    from adcommon import cli
    from shared_data.dataset import ImageCache, train_split
    if args.test_epochs:
        log("--test_epochs ignored: the final model is the model (no selection on test labels)")
    block = BlockShape(args.sspcab_kernel, args.sspcab_dilation) if not args.no_sspcab else False
    model = ProjectionNet(args.backbone, args.pretrained, args.head_layer, args.variant, block,
                          args.image_size, patch_layer=args.patch_layer,
                          image_score=args.image_score)
    a = model.model_args
    fit_ds, holdout_ds = train_split(args.data_dir, category, args.holdout_ratio, image_size=a["image_size"],
                                  mean=a["mean"], std=a["std"])
    what = (f"CutPaste + SSPCAB (at {a['sspcab_site']}, lambda {args.sspcab_lambda})" if a["sspcab"]
            else "CutPaste (no SSPCAB)")
    log(f"{what} {args.variant} {category}: {a['backbone']} ({a['weights']}); "
        f"{len(fit_ds)} training + {len(holdout_ds) if holdout_ds else 0} held-out "
        f"normal images at {args.image_size} px; {args.steps} updates of {args.batch_size} x "
        f"{VARIANTS[args.variant]} images")
    if args.steps == 0 and a["sspcab"]:
        log("warning: --steps 0 keeps SSPCAB at its random initialisation; add --no_sspcab for the "
            "untrained ImageNet-feature baseline")
    state = os.path.join(out, C.STATE)
    if holdout_ds is not None:
        ImageCache(holdout_ds)  # read the held-out images now: a bad one fails before training, not after
    train_stats = train(model, ImageCache(fit_ds).rgb, cli.settings_from(TrainSettings, args), out, log,
                        C.training_state(state, METHOD, log, args.resume),
                        curve_data=(fit_ds, holdout_ds) if holdout_ds else None)
    if not main:
        return None   # the density fit, the threshold and every file: rank 0
    fit_stats = fit_density(model, fit_ds, holdout_ds, batch_size=min(args.batch_size, 32),
                            threshold_quantile=args.threshold_quantile, seed=args.seed, log=log,
                            threshold_rule=args.threshold_rule)
    train_stats["peak_rss_mb"] = round(cli.peak_rss_mb(), 1)
    save(os.path.join(out, C.MODEL), model, category, fit_stats, train_stats)
    if os.path.exists(state):
        os.remove(state)  # the fitted model supersedes the resumable state
    log(f"saved {os.path.join(out, C.MODEL)} ({train_stats['train_seconds']} s training, "
        f"{train_stats['train_images_per_s']} img/s, peak RSS {train_stats['peak_rss_mb']} MB)")
    return None


def save(path, model, category, fit_stats, train_stats):
    a = model.model_args
    args = dict(a, postprocess=postprocess_spec(a["image_size"], a["image_score"]))
    C.save_checkpoint(path, METHOD, args, model.state_dict(), kind="model", category=category,
                        threshold=fit_stats["threshold"], vis_range=fit_stats["vis_range"], fit=fit_stats,
                        train=train_stats)


LOCALIZATION = ("ours, not in the papers: a GDE fitted to every position of the patch-layer features "
                "(model_args patch_layer; patch map, bilinear upsampling, Gaussian blur sigma 4)")
IMAGE_SCORE_DOC = {"pooled": "GDE: Mahalanobis distance of the L2-normalised pooled embedding (paper)",
                   "patch_max": "maximum of the patch map (ours)"}


def build(a, pretrained="none"):
    """The architecture described by model_args ``a`` (weights come from the checkpoint)."""
    # checkpoints written before patch_layer existed mapped layer4 and scored the pooled embedding
    block = BlockShape(a["sspcab_kernel"], a["sspcab_dilation"], a["sspcab_reduction"]) if a["sspcab"] else False
    model = ProjectionNet(a["backbone"], pretrained, a["head_layer"], a["variant"], block, a["image_size"],
                          a.get("patch_layer", "layer4"), a.get("image_score", "pooled"))
    if pretrained == "none" and a.get("weights"):
        model.model_args.update(weights=a["weights"], pretrained=a.get("pretrained"))
    return model


def upgrade(ck, path):
    """Only fitted models are models: a training state (last.pdparams) has no Gaussian yet."""
    if ck.get("kind") != "model":
        raise UserError(f"{path} is a training state (step {ck.get('step')}), not a fitted model; finish it with "
                        "train.py --resume")
    return ck


def extra_metrics(ck, ds, raw, maps, scores):
    """Both image scores, whichever decides: the pooled GDE (output 0) and the map's maximum."""
    from adcommon.evaluate.metrics import SingleClassError, image_auroc
    kind = ck["model_args"].get("image_score", "pooled")
    other_name = "patch_max" if kind == "pooled" else "pooled"
    other = maps.reshape(len(maps), -1).max(1) if other_name == "patch_max" else raw[0]
    try:
        other_auroc = image_auroc(ds.labels, other)
    except SingleClassError:
        other_auroc = None
    return {"image_score": IMAGE_SCORE_DOC[kind], f"image_auroc_{other_name}": other_auroc,
            "localization": LOCALIZATION}
