"""PaDiM's engine (the method contract, adcommon.method.contract): build, and the fit with out-of-fold
calibration; the runner and the deployment description are the contract's defaults."""
import dataclasses
import os
import sys
import time

import numpy as np
import paddle
from tqdm import tqdm

from adbase import UserError
from adcommon import cli, vdl
from adcommon import distributed as D
from adcommon.checkpoint import save_checkpoint
from adcommon.evaluate.maps import postprocess, threshold_from_normals, vis_range
from shared_data.dataset import image_batches

from .gaussian import GaussianAccumulator
from .model import PaDiM

METHOD = "padim"
TITLE = "PaDiM (Patch Distribution Modeling)"   # for people: notebooks and docs (adcommon.method.contract)
SUMMARY = ("PaDiM fits one Gaussian per feature-map position on the normal images (no training, one pass) and scores "
           "a test image by the Mahalanobis distance of each patch.")
OUTPUTS = ["distance_map"]  # the exported graph's (adcommon.method.contract)
SIGMA = 4.0  # reference: scipy gaussian_filter(sigma=4) on the 224 x 224 map


def input_size(model_args):
    """The side of the network's input: the crop, or the whole resized image without one."""
    return int(model_args.get("crop_size") or model_args["image_size"])


def postprocess_spec(side):
    """Distance map -> bilinear to the input size, Gaussian blur sigma 4, image score = max."""
    return {"out_size": int(side), "combine": "product", "sigma": SIGMA, "map_outputs": [0],
            "score_output": None}


EMBED_CACHE_MB = 2048  # keep the training embeddings in memory up to this size, else embed twice


def fold_of(n, folds, seed=0):
    """Fold number (0..folds-1) of each of n training images: a seeded permutation dealt round-robin."""
    return np.random.default_rng(seed).permutation(n) % folds


@dataclasses.dataclass
class FitSettings:
    """The fit's settings (train.py's flags of the same names)."""
    batch_size: int = 32
    num_workers: int = 0
    folds: int = 5                 # out-of-fold scoring of the training images for the threshold (< 2: none)
    threshold_quantile: float = 0.99
    threshold_rule: str = "robust"
    seed: int = 0


def _embed(model, ds, s):
    """The embeddings (B, d, P) of ``ds`` batch by batch."""
    for x in image_batches(ds, s.batch_size, s.num_workers):
        yield model.embed(paddle.to_tensor(x)).numpy()


def _accumulate(model, part_ds, s):
    """The Gaussians' sums over ``part_ds`` (this process's images), added over the processes, and the
    embeddings kept in memory (None above EMBED_CACHE_MB)."""
    P, d = model.mean.shape
    world, acc = D.world_size(), None
    cache = [] if len(part_ds) * P * d * 4 <= EMBED_CACHE_MB * 2 ** 20 else None
    for e in tqdm(_embed(model, part_ds, s), desc="fit", unit="batch", total=-(-len(part_ds) // s.batch_size),
                  leave=False, file=sys.stdout, disable=not D.is_main()):
        if acc is None:   # the shift of the sums: the first batch's mean (averaged over the processes)
            shift = e.astype(np.float32).transpose(2, 0, 1).mean(axis=1)
            acc = GaussianAccumulator(d, P, shift=D.all_sum(shift) / np.float32(world) if world > 1 else shift)
        acc.add(e)
        if cache is not None:
            cache.append(e)
    acc.all_reduce()
    return acc, None if cache is None else np.concatenate(cache)


def _out_of_fold(model, train_ds, acc, embs, folds, s):
    """Every training image scored by the Gaussians of the other folds (the total sums minus its fold's):
    (the scores of all processes' images in order, the sum of their maps)."""
    P, d = model.mean.shape
    n, mine = len(train_ds), D.shard(len(train_ds))
    fold = fold_of(n, folds, s.seed)[mine]                                # of this process's images
    own, map_sum = np.zeros(len(mine), np.float32), np.zeros(1, np.float64)
    spec = postprocess_spec(input_size(model.model_args))
    for k in range(folds):
        idx = np.flatnonzero(fold == k)
        if embs is not None or not len(idx):
            part = embs[idx] if embs is not None else np.zeros((0, d, P), np.float32)
        else:
            part = np.concatenate(list(_embed(model, paddle.io.Subset(train_ds, [mine[i] for i in idx]), s)))
        left_out = GaussianAccumulator(d, P, shift=acc.shift)
        if len(part):
            left_out.add(part)
        left_out.all_reduce()
        model.mean.set_value(acc.mean(minus=left_out))
        acc.write_inverse(model.inv_cov, minus=left_out)
        for i in range(0, len(part), s.batch_size):
            maps, scores = postprocess([model.distance(paddle.to_tensor(part[i:i + s.batch_size])).numpy()], spec)
            own[idx[i:i + s.batch_size]] = scores
            map_sum += float(maps.sum(dtype=np.float64))
    return D.gather_shares(n, mine, own), float(D.all_sum(map_sum)[0])


@paddle.no_grad()
def fit(model, train_ds, settings, log=print):
    """Fit the Gaussians on every training image, and score every training image out of fold.

    The images are dealt into ``folds`` parts; part k is scored by Gaussians of the other parts, which
    are the total sums minus part k's sums (one more accumulator and one inversion per part, no second
    pass over the data while the embeddings fit in EMBED_CACHE_MB). The threshold comes from all these
    normal scores (``threshold_from_normals``); ``folds`` < 2 sets none. Returns fit statistics.

    Under paddle.distributed.launch each process embeds its share of the images (adcommon.distributed);
    the sums (count, sum of x, sum of x x^T per position, about a common shift) and each fold's sums are
    added over the processes, so every process ends with the single-process model, and the out-of-fold
    scores of all shares set the same threshold everywhere. Memory per process stays flat in the images.
    """
    s = settings
    model.eval()
    P, d = model.mean.shape
    n, world = len(train_ds), D.world_size()
    if n < world:
        raise UserError(f"{n} training images cannot be shared by {world} processes")
    t0 = time.perf_counter()
    acc, embs = _accumulate(model, train_ds if world == 1 else paddle.io.Subset(train_ds, D.shard(n)), s)
    threshold, vr, scores = None, None, np.zeros(0, np.float32)
    folds = int(s.folds) if s.folds and s.folds >= 2 and n >= 2 * s.folds else 0
    if folds:
        scores, map_sum = _out_of_fold(model, train_ds, acc, embs, folds, s)
        threshold = threshold_from_normals(scores, s.threshold_quantile, s.threshold_rule)
        side = input_size(model.model_args)
        vr = list(vis_range(np.full((1, 1), map_sum / (n * side * side)), threshold))
    model.mean.set_value(acc.mean())
    acc.write_inverse(model.inv_cov)
    stats = {"n_fit": n, "folds": folds, "n_gaussian": acc.n, "threshold": threshold,
             "threshold_quantile": s.threshold_quantile, "threshold_rule": s.threshold_rule,
             "holdout_scores": [float(v) for v in scores], "vis_range": vr,
             "fit_seconds": round(time.perf_counter() - t0, 3), "processes": world}
    vdl.scalars(1, {"images_per_s": n / max(stats["fit_seconds"], 1e-9), "threshold": threshold,
                    "holdout_mean_score": float(np.mean(scores)) if len(scores) else None})
    log(f"fitted {P} Gaussians of dim {d} on {acc.n} images in {stats['fit_seconds']} s"
        f"{f' ({world} processes)' if world > 1 else ''}; threshold "
        f"{threshold if threshold is None else round(threshold, 4)} from {len(scores)} out-of-fold normal scores "
        f"({folds} folds)")
    return stats


def save(path, model, stats, category):
    args = dict(model.model_args, postprocess=postprocess_spec(input_size(model.model_args)))
    save_checkpoint(path, METHOD, args, model.state_dict(), category=category, threshold=stats["threshold"],
                    vis_range=stats["vis_range"], fit=stats)


DEPTHS = {18: "resnet18", 50: "wide_resnet50_2"}   # the seed's --depth


def prepare_args(args):
    """train.py's seed aliases: --depth, --holdout_ratio (r > 0 means round(1 / r) folds)."""
    if args.depth:
        args.backbone = DEPTHS[args.depth]
    if args.holdout_ratio is not None:
        args.folds = int(round(1 / args.holdout_ratio)) if args.holdout_ratio > 0 else 0


def train_category(args, category, out, log, main=True):
    """The training half of the contract (adcommon.method.training): the Gaussians of ``category``'s normal
    images and the threshold from their out-of-fold scores (``fit``), written to out/model.pdparams.
    Every process of the launcher fits its share; the one that writes saves."""
    from shared_data.dataset import MVTecAD
    crop = cli.resolve_crop(args.crop_size, args.image_size, category)
    model = PaDiM(args.backbone, args.pretrained, args.d, args.image_size, crop, args.seed)
    a = model.model_args
    train_ds = MVTecAD(args.data_dir, category, "train", image_size=a["image_size"], crop_size=a["crop_size"],
                       mean=a["mean"], std=a["std"])
    if len(train_ds) < 2:   # a mean and a covariance per position need two images at the very least
        raise UserError(f"PaDiM needs at least 2 training images to fit its Gaussians; "
                        f"{os.path.join(args.data_dir, category, 'train', 'good')} has {len(train_ds)}")
    log(f"PaDiM {category}: {args.backbone} ({a['weights']}), d={a['d']}, {len(train_ds)} normal images, "
        f"threshold from {args.folds}-fold out-of-fold scores")
    stats = fit(model, train_ds, cli.settings_from(FitSettings, args), log)
    peaks = D.all_gather(round(cli.peak_rss_mb(), 1))   # every process's peak memory
    stats["peak_rss_mb"] = max(peaks)
    if len(peaks) > 1:
        stats["peak_rss_mb_per_process"] = peaks
    if main:
        save(os.path.join(out, "model.pdparams"), model, stats, category)
        log(f"saved {os.path.join(out, 'model.pdparams')} (peak RSS {stats['peak_rss_mb']} MB)")
    return {"crop_size": crop}


def build(model_args):
    """The PaDiM of ``model_args`` with zero Gaussians (the checkpoint brings them)."""
    a = model_args
    return PaDiM(a["backbone"], pretrained="none", d=a["d"], image_size=a["image_size"], crop_size=a.get("crop_size"),
                 seed=a["seed"])
