"""Fitting, checkpoint and deployment description of a PaDiM model (what train/val/predict/export share)."""
import sys
import time

import numpy as np
import paddle
from tqdm import tqdm

from adcommon import cli
from adcommon.pipeline import postprocess, threshold_from_normals, vis_range
from shared_data.dataset import image_batches

from .gaussian import GaussianAccumulator
from .model import PaDiM

METHOD = "padim"
SIGMA = 4.0  # reference: scipy gaussian_filter(sigma=4) on the 224 x 224 map


def postprocess_spec(crop_size):
    """Distance map -> bilinear to the input size, Gaussian blur sigma 4, image score = max."""
    return {"out_size": int(crop_size), "combine": "product", "sigma": SIGMA, "map_outputs": [0],
            "score_output": None}


@paddle.no_grad()
def fit(model, fit_ds, holdout_ds, batch_size=32, num_workers=0, threshold_quantile=0.99, log=print):
    """Fit the Gaussians; the threshold comes from held-out normal images scored by a model fitted
    without them; the final Gaussians then use all training images (the sums simply add).

    Returns a dict of fit statistics (threshold, vis_range, counts, seconds).
    """
    model.eval()
    P, d = model.mean.shape
    t0 = time.perf_counter()
    acc_fit = GaussianAccumulator(d, P)
    n_batches = -(-len(fit_ds) // batch_size)
    for x in tqdm(image_batches(fit_ds, batch_size, num_workers), desc="fit", unit="batch", total=n_batches,
                  leave=False, file=sys.stdout):
        acc_fit.add(model.embed(paddle.to_tensor(x)))
    threshold, vr, hold_scores = None, None, []
    if holdout_ds is not None and len(holdout_ds):
        # Score the held-out normals with Gaussians fitted without them, then add them to the sums
        # (their embeddings are kept: far smaller than a second set of (P, d, d) sums).
        embs = [model.embed(paddle.to_tensor(x)) for x in image_batches(holdout_ds, batch_size, num_workers)]
        model.mean.set_value(acc_fit.mean())
        acc_fit.write_inverse(model.inv_cov)
        spec = postprocess_spec(model.model_args["crop_size"])
        maps = np.concatenate([postprocess([model.distance(e).numpy()], spec)[0] for e in embs])
        hold_scores = maps.reshape(len(maps), -1).max(1)
        threshold = threshold_from_normals(hold_scores, threshold_quantile)
        vr = list(vis_range(maps, threshold))
        for e in embs:
            acc_fit.add(e)
        del embs, maps
    model.mean.set_value(acc_fit.mean())
    acc_fit.write_inverse(model.inv_cov)
    stats = {"n_fit": len(fit_ds), "n_holdout": len(holdout_ds) if holdout_ds is not None else 0,
             "n_gaussian": acc_fit.n, "threshold": threshold, "threshold_quantile": threshold_quantile,
             "holdout_scores": [float(s) for s in hold_scores], "vis_range": vr,
             "fit_seconds": round(time.perf_counter() - t0, 3)}
    log(f"fitted {P} Gaussians of dim {d} on {acc_fit.n} images in {stats['fit_seconds']} s; "
        f"threshold {threshold if threshold is None else round(threshold, 4)} from {stats['n_holdout']} held-out normals")
    return stats


def save(path, model, stats, category):
    args = dict(model.model_args, postprocess=postprocess_spec(model.model_args["crop_size"]))
    cli.save_checkpoint(path, METHOD, args, model.state_dict(), category=category, threshold=stats["threshold"],
                        vis_range=stats["vis_range"], fit=stats)


def load(path):
    """(model, checkpoint) from a saved model.pdparams; the architecture comes from model_args."""
    ck = cli.load_checkpoint(path, METHOD)
    a = ck["model_args"]
    model = PaDiM(a["backbone"], pretrained="none", d=a["d"], image_size=a["image_size"],
                  crop_size=a["crop_size"], seed=a["seed"])
    cli.set_state_strict(model, ck["state_dict"], f"PaDiM checkpoint {path}")
    model.model_args["weights"] = a.get("weights")
    model.eval()
    return model, ck


def deploy_meta(ck):
    """What a deployment needs besides the graph (inference.yml; predict.py uses the same dict)."""
    a = ck["model_args"]
    return {"method": METHOD, "category": ck.get("category"),
            "preprocess": {"image_size": a["image_size"], "crop_size": a["crop_size"],
                           "mean": a["mean"], "std": a["std"]},
            "postprocess": a["postprocess"], "outputs": ["distance_map"],
            "threshold": ck.get("threshold"), "vis_range": ck.get("vis_range"),
            "model_args": {k: v for k, v in a.items() if k != "postprocess"}}
