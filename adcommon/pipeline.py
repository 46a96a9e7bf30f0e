"""The steps every paper's val.py / predict.py / infer.py share: raw model outputs -> maps and scores
(one post-processing path, recorded in the checkpoint and in inference.yml), thresholds from normal
images, metrics.json + scores.csv, panel pictures.

A post-processing spec is a dict:
    {"out_size": 224, "combine": "product", "sigma": 4.0, "map_outputs": [0], "score_output": None,
     "map_size": None}
``map_outputs`` are the indices of the model outputs holding (N, 1, h, w) maps (combined after
upsampling, at ``map_size`` when given, else at ``out_size``); ``score_output`` is the index of an (N,)
image-score output, or None for "max of the map".
"""
import os
import platform
import time

import numpy as np

from shared_data.errors import UserError

from . import postprocess as PP
from .cli import save_json, write_scores_csv


def postprocess(outputs, spec):
    """Model outputs (list of numpy arrays) -> (maps (N, H, W) float32 or None, scores (N,) float32)."""
    maps = None
    idx = spec.get("map_outputs") or []
    if idx:
        maps = PP.anomaly_maps([np.asarray(outputs[i]) for i in idx], spec["out_size"],
                               spec.get("combine", "product"), spec.get("sigma"), spec.get("map_size"))
    if spec.get("score_output") is not None:
        scores = np.asarray(outputs[spec["score_output"]], np.float32).reshape(-1)
    elif maps is not None:
        scores = PP.image_scores(maps)
    else:
        raise ValueError("post-processing spec has neither map outputs nor a score output")
    return maps, scores


THRESHOLD_RULES = ("robust", "quantile")
MAD_TO_SIGMA = 1.4826  # the MAD of normal data times this is its standard deviation


def threshold_from_normals(scores, quantile=0.99, rule="robust"):
    """Decision threshold from image scores of NORMAL images only (never test labels).

    ``robust`` (default): fit a normal distribution to the log scores with the median and the MAD
    (sigma = 1.4826 MAD) and return its ``quantile``: exp(median + z_q sigma). Anomaly scores are
    positive and right-skewed, close to log-normal. With ~32 held-out normals the empirical 0.99
    quantile is their maximum, so one or two odd normals set it; the median and MAD ignore them.
    Scores that are not all positive are fitted without the log.
    ``quantile``: the empirical quantile (np.quantile, linear), the rule of earlier versions.
    """
    from scipy.stats import norm

    s = np.asarray(scores, np.float64).reshape(-1)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return None
    if rule == "quantile" or s.size < 3:
        return float(np.quantile(s, quantile))
    if rule != "robust":
        raise UserError(f"unknown threshold rule {rule!r}; choose one of {', '.join(THRESHOLD_RULES)}")
    log = bool(np.all(s > 0))
    x = np.log(s) if log else s
    med = float(np.median(x))
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(x - med)))
    if sigma <= 0:  # more than half the scores equal: nothing to fit, keep the largest
        return float(s.max())
    t = med + float(norm.ppf(quantile)) * sigma
    return float(np.exp(t) if log else t)


def vis_range(normal_maps, threshold):
    """Fixed colour scale for pictures: typical normal pixel -> blue, the threshold -> mid scale.

    A per-image min-max scale (the seed ports) paints a hot spot on every image, normal ones included.
    """
    lo = float(np.mean(normal_maps)) if normal_maps is not None and np.size(normal_maps) else 0.0
    if threshold is None:
        hi = float(np.max(normal_maps)) * 2 - lo if normal_maps is not None and np.size(normal_maps) else 1.0
    else:
        hi = 2 * float(threshold) - lo
    return lo, max(hi, lo + 1e-6)


def run_batches(fn, dataset, batch_size):
    """Apply ``fn(images (B,3,S,S) numpy) -> list of numpy outputs`` over a dataset; concat per output.

    Returns (outputs, seconds). Masks/labels are read from the dataset separately, so the
    dataset's images are decoded once here.
    """
    outs, t = None, 0.0
    for i in range(0, len(dataset), batch_size):
        xb = np.stack([dataset[j][0] for j in range(i, min(i + batch_size, len(dataset)))])
        t0 = time.perf_counter()
        res = fn(xb)
        t += time.perf_counter() - t0
        outs = [[r] for r in res] if outs is None else [o + [r] for o, r in zip(outs, res)]
    return [np.concatenate(o) for o in outs], t


def machine():
    import paddle
    return {"python": platform.python_version(), "paddle": paddle.__version__, "cpu": _cpu_name(),
            "cores": os.cpu_count(), "device": paddle.device.get_device()}


def git_commit():
    """Short commit of the code that produced a result ('+dirty' with local changes), or None."""
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        c = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                           timeout=10)
        if c.returncode != 0:
            return None
        d = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, timeout=10)
        return c.stdout.strip() + ("+dirty" if d.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fmt_metric(v):
    """A metric for a one-line summary: four decimals, 'n/a' when it cannot be computed."""
    return "n/a" if v is None or (isinstance(v, float) and v != v) else f"{v:.4f}"


def summary_line(category, res, path, pixel_note="", **more):
    """The line val.py prints per category: image / pixel AUROC, AUPRO, any extra metrics, where it went."""
    parts = [f"Category: {category}", f"Image AUROC: {fmt_metric(res.get('image_auroc'))}",
             f"Pixel AUROC{pixel_note}: {fmt_metric(res.get('pixel_auroc'))}",
             f"AUPRO{pixel_note}: {fmt_metric(res.get('aupro'))}"]
    parts += [f"{k.replace('_', ' ')}: {fmt_metric(v)}" for k, v in more.items()]
    return "\t".join(parts) + f"\t-> {path}"


def save_val_outputs(out_dir, method, dataset, maps, scores, threshold, extra=None, save_vis=False,
                     vrange=None, fpr_limit=0.3, map_threshold=None, region_only_if_anomalous=False):
    """Metrics on the test split -> metrics.json and scores.csv (and pictures with save_vis).

    Metrics use the raw scores: the references' min-max over the test set is monotonic, so AUROC,
    AUPRO and F1-max are unchanged by it. ``map_threshold`` (pictures only) is for maps whose units
    differ from the image score's (KDAD's per-image scaled gradient maps); default: ``threshold``.
    """
    from .metrics import evaluate
    labels = dataset.labels
    masks = None
    if maps is not None and dataset.has_masks:
        masks = np.stack([dataset.load_mask(i) for i in range(len(dataset))])
    res = evaluate(labels, scores, masks=masks, maps=maps, fpr_limit=fpr_limit, threshold=threshold)
    res = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in res.items()}
    out = {"method": method, "category": dataset.category, "data_dir": os.path.abspath(dataset.root),
           "n_test": int(len(labels)), "n_anomalous": int(labels.sum()), "threshold": threshold}
    out.update(res)
    out.update(extra or {})
    out["machine"] = machine()
    out["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
    out["commit"] = git_commit()
    os.makedirs(out_dir, exist_ok=True)
    save_json(os.path.join(out_dir, "metrics.json"), out)
    rows = [(s.path, s.label, float(sc)) + ((_verdict(sc, threshold),) if threshold is not None else ())
            for s, sc in zip(dataset.samples, scores)]
    header = ("path", "label", "score") + (("verdict",) if threshold is not None else ())
    write_scores_csv(os.path.join(out_dir, "scores.csv"), rows, header)
    if save_vis:
        from .visualize import save_roc
        vis_dir = os.path.join(out_dir, "vis")
        save_roc(labels, scores, os.path.join(vis_dir, "roc.png"), title=f"{method} {dataset.category}")
        if maps is not None:
            lo, hi = vrange or vis_range(maps[labels == 0], threshold if map_threshold is None else map_threshold)
            for i in range(len(dataset)):
                s = dataset.samples[i]
                name = f"{s.kind}_{os.path.splitext(os.path.basename(s.path))[0]}.png"
                save_panel(os.path.join(vis_dir, name), dataset.load_rgb(i), maps[i], scores[i], threshold,
                           lo, hi, masks[i] if masks is not None else None, map_threshold, region_only_if_anomalous)
    return out


def _verdict(score, threshold):
    return "anomalous" if threshold is not None and score >= threshold else "normal"


def save_panel(path, rgb, amap, score, threshold, vmin, vmax, gt_mask=None, map_threshold=None,
               region_only_if_anomalous=False):
    """One picture: image | overlay | predicted mask | ground truth (when given).

    The verdict uses the image ``threshold``; the predicted region uses ``map_threshold`` when the map
    has other units than the score (default: ``threshold``). ``region_only_if_anomalous`` draws the
    region only for images over the image threshold (maps scaled per image always have a hot spot).
    """
    from .visualize import panel, save_png
    if threshold is None:
        title = f"score {score:.3f} (no threshold)"
    else:
        title = f"score {score:.3f} / thr {threshold:.3f}: {_verdict(score, threshold).upper()}"
    region = map_threshold if map_threshold is not None else threshold
    if region is None:
        region = vmax
    if region_only_if_anomalous and threshold is not None and score < threshold:
        region = float("inf")
    save_png(path, panel(rgb, amap, region, vmin, vmax, gt_mask=gt_mask, title=title))


def print_verdicts(paths, scores, threshold):
    for p, s in zip(paths, scores):
        v = _verdict(s, threshold) if threshold is not None else "no threshold stored"
        print(f"{p}\tscore {float(s):.4f}\t{v}")


def require(value, what):
    if value is None:
        raise UserError(f"{what} is required")
    return value
