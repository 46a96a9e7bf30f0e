"""The method lifecycle: what every method's scripts share around its own model, written once.

A paper package provides its own parts in its ``engine`` module (the written contract; CONTRIBUTING.md
shows them filled in for a new method):

    METHOD                         the method's name in checkpoints, metrics.json and output folders
    build(model_args)              the untrained Layer of that architecture (weights come from a checkpoint)
    runner(model, ck, options)     fn(images (B, 3, S, S) float32 numpy) -> list of numpy outputs, exactly
                                   what the exported graph returns (eval mode)
    deploy_meta(ck, options)       what a deployment needs besides the graph (inference.yml, predict.py):
                                   method, preprocess {image_size, crop_size, mean, std}, postprocess spec,
                                   outputs, threshold, vis_range, model_args (+ map_threshold,
                                   region_only_if_anomalous for maps in other units than the score)
    extra_metrics(ck, ds, raw, maps, scores, options)      optional: method-specific metrics.json entries
    export_layer(model, ck, options)                       optional: the Layer to trace (default: the model)
    upgrade(ck, path)                                      optional: read checkpoints of earlier versions
    result_dir(out, ck, options)                           optional: val.py's folder (default: out)
    PIXEL_NOTE, SUMMARY_EXTRA                              optional: " (ours)" where the papers do not localise;
                                                           metrics.json keys for the printed summary line
    and its training (train / fit, calibration on held-out normal images), called by its own train.py.

This module runs, for every method: ``load`` (a checkpoint into its model), ``evaluate`` (the only
writer of metrics.json, scores.csv and the test pictures), ``export``; the val.py / predict.py /
export_model.py mains; the one post-processing path from raw outputs to full-size maps and image
scores (val.py and infer.py call the same code, so their numbers agree by construction); thresholds
from normal images. adcommon.checkpoint holds the checkpoint files, shared_data.dataset the data.

A post-processing spec is a dict:
    {"out_size": 224, "combine": "product", "sigma": 4.0, "map_outputs": [0], "score_output": None,
     "map_size": None}
``map_outputs`` are the indices of the model outputs holding (N, 1, h, w) maps (combined after
upsampling, at ``map_size`` when given, else at ``out_size``); ``score_output`` is the index of an (N,)
image-score output, or None for "max of the map". The models stop at feature resolution because
``F.interpolate`` breaks Paddle 3.3's oneDNN predictor (docs/reference.md#interpolate-breaks-the-onednn-predictor).
"""
import contextlib
import os
import platform
import sys
import time

import numpy as np

from shared_data.errors import UserError, printable

from . import checkpoint as C
from .files import save_json, write_scores_csv
from .regions import aspect_note, crop_note


# ----------------------------------------------------------------------------- raw maps -> maps and scores
def _to_numpy(x):
    """numpy array from a numpy array, list, or a paddle Tensor (``.numpy()``)."""
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    return np.asarray(x)


def _as_nhw(maps, name="maps"):
    """(N, H, W) float32 from (N, H, W) or (N, 1, H, W)."""
    a = _to_numpy(maps)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3:
        raise UserError(f"{name} must have shape (N, H, W) or (N, 1, H, W), got {a.shape}")
    return a.astype(np.float32, copy=False)


def _size(size):
    if np.isscalar(size):
        size = (int(size), int(size))
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise UserError(f"output size must be positive, got {size}")
    return h, w


def _bilinear_matrix(n_out, n_in):
    """(n_out, n_in) weights of 1-D linear interpolation with half-pixel centres, align_corners=False.

    src = (dst + 0.5) * n_in / n_out - 0.5, clamped at 0 below and at n_in - 1 above: the rule of
    Paddle/PyTorch ``F.interpolate(mode='bilinear', align_corners=False)`` (no antialiasing).
    """
    ratio = float(np.float32(n_in) / np.float32(n_out))  # Paddle keeps the ratio in float32
    src = ((np.arange(n_out, dtype=np.float64) + 0.5) * ratio - 0.5).astype(np.float32).astype(np.float64)
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    l1 = src - i0
    m = np.zeros((n_out, n_in), np.float64)
    rows = np.arange(n_out)
    np.add.at(m, (rows, i0), 1.0 - l1)
    np.add.at(m, (rows, i1), l1)
    return m.astype(np.float32)


def upsample(maps, size):
    """Bilinear resize (N, h, w) or (N, 1, h, w) -> (N, H, W) float32; ``size`` = int or (H, W).

    Equal to Paddle ``F.interpolate(mode='bilinear', align_corners=False)`` in both directions, and to
    ``cv2.resize(INTER_LINEAR)`` when enlarging (same half-pixel rule). When shrinking cv2 differs (it
    switches to area averaging for integer factors), so never mix cv2 in for downsampling.
    Separable: out[n] = Ry (H, h) @ map[n] (h, w) @ Rx.T (w, W).
    """
    a = _as_nhw(maps)  # (N, h, w)
    h_out, w_out = _size(size)
    n, h, w = a.shape
    if (h, w) == (h_out, w_out):
        return a.copy()
    if h_out >= h and w_out >= w:
        # Enlarging: cv2's INTER_LINEAR uses the same half-pixel rule and is ~100x faster than the
        # matmul below (and immune to BLAS thread contention); equal to it within 1e-6.
        import cv2
        return np.stack([cv2.resize(m, (w_out, h_out), interpolation=cv2.INTER_LINEAR) for m in a]).astype(
            np.float32, copy=False)
    ry = _bilinear_matrix(h_out, h)  # (H, h)
    rx = _bilinear_matrix(w_out, w)  # (W, w)
    return np.ascontiguousarray(np.matmul(np.matmul(ry, a), rx.T), dtype=np.float32)  # (N, H, W)


def combine(maps_list, mode="product"):
    """Element-wise product / sum / mean of same-size maps, e.g. STFPM's product over layers."""
    if mode not in ("product", "sum", "mean"):
        raise UserError(f"combine mode must be 'product', 'sum' or 'mean', got {mode!r}")
    maps_list = [_as_nhw(m, "each map") for m in maps_list]
    if not maps_list:
        raise UserError("combine needs at least one map")
    shape = maps_list[0].shape
    for m in maps_list[1:]:
        if m.shape != shape:
            raise UserError(f"maps to combine differ in shape: {shape} vs {m.shape}; upsample first")
    out = maps_list[0].copy()  # (N, H, W)
    for m in maps_list[1:]:
        if mode == "product":
            out *= m
        else:
            out += m
    if mode == "mean":
        out /= len(maps_list)
    return out


def gaussian_blur(maps, sigma):
    """Per-map Gaussian blur = ``scipy.ndimage.gaussian_filter(m, sigma)`` (reflect border,
    truncate 4.0), as in PaDiM's reference (σ = 4). sigma None or 0 returns the maps unchanged."""
    from scipy.ndimage import gaussian_filter

    a = _as_nhw(maps)  # (N, H, W)
    if not sigma:
        return a.copy()
    if sigma < 0:
        raise UserError(f"sigma must be >= 0, got {sigma}")
    # sigma 0 on the batch axis: each map is filtered on its own, exactly like a per-map call
    return gaussian_filter(a, sigma=(0.0, float(sigma), float(sigma)), mode="reflect", truncate=4.0)


def anomaly_maps(raw, out_size, combine_mode="product", sigma=None, map_size=None):
    """Raw map(s) at feature resolution -> (N, H, W) float32 full-size anomaly maps.

    ``raw`` is one array or a list of per-layer arrays, each (N, 1, h, w) or (N, h, w), possibly at
    different resolutions. Order, as in STFPM's reference: each layer is upsampled to ``out_size``
    first, then the layers are combined (``combine_mode``), then the optional blur (PaDiM σ = 4).
    With ``map_size`` the layers are first brought to that size, combined there, and the combined map
    is resized to ``out_size`` (STFPM's official order: product at 64 x 64, then resize to 256).
    """
    layers = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    if not layers:
        raise UserError("anomaly_maps got an empty list of raw maps")
    up = [upsample(r, map_size or out_size) for r in layers]  # each (N, H, W)
    out = up[0] if len(up) == 1 else combine(up, combine_mode)
    if map_size:
        out = upsample(out, out_size)
    if sigma:
        out = gaussian_blur(out, sigma)
    return out


def image_scores(maps, reduce="max"):
    """(N,) image scores from (N, H, W) maps: ``max`` (STFPM, PaDiM, MVTec script) or ``mean``."""
    a = _as_nhw(maps)
    if reduce == "max":
        return a.max(axis=(1, 2))
    if reduce == "mean":
        return a.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)
    raise UserError(f"reduce must be 'max' or 'mean', got {reduce!r}")


def postprocess(outputs, spec):
    """Model outputs (list of numpy arrays) -> (maps (N, H, W) float32 or None, scores (N,) float32)."""
    maps = None
    idx = spec.get("map_outputs") or []
    if idx:
        maps = anomaly_maps([np.asarray(outputs[i]) for i in idx], spec["out_size"],
                               spec.get("combine", "product"), spec.get("sigma"), spec.get("map_size"))
    if spec.get("score_output") is not None:
        scores = np.asarray(outputs[spec["score_output"]], np.float32).reshape(-1)
    elif maps is not None:
        scores = image_scores(maps)
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
    have = normal_maps is not None and np.size(normal_maps)
    return vis_range_of(float(np.mean(normal_maps)) if have else None, float(np.max(normal_maps)) if have else None,
                        threshold)


def vis_range_of(mean, peak, threshold):
    """vis_range from the normal maps' mean and maximum (None: no normal maps)."""
    lo = 0.0 if mean is None else float(mean)
    if threshold is None:
        hi = float(peak) * 2 - lo if peak is not None else 1.0
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
    parts += [f"{k.replace('_', ' ').replace('auroc', 'AUROC')}: {fmt_metric(v)}" for k, v in more.items()]
    return "\t".join(parts) + f"\t-> {path}"


def save_val_outputs(out_dir, method, dataset, maps, scores, threshold, extra=None, save_vis=False,
                     vrange=None, fpr_limit=0.3, map_threshold=None, region_only_if_anomalous=False, report=False):
    """Metrics on the test split -> metrics.json and scores.csv (and pictures with save_vis; pictures and
    report.html with report).

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
    rows = [(s.path, s.label, float(sc)) + ((_verdict(sc, threshold),) if threshold is not None else ())
            for s, sc in zip(dataset.samples, scores)]
    header = ("path", "label", "score") + (("verdict",) if threshold is not None else ())
    # built aside and moved in when complete (metrics.json last: its presence means the evaluation
    # finished), so an interrupted run never mixes its files with the previous run's
    with _built_aside(out_dir, "val") as work:
        write_scores_csv(os.path.join(work, "scores.csv"), rows, header)
        pictures = {}
        if save_vis or report:
            from .visualize import save_roc
            vis_dir = os.path.join(work, "vis")
            save_roc(labels, scores, os.path.join(vis_dir, "roc.png"), title=f"{method} {dataset.category}")
            if maps is not None:
                from .outputs import result_name
                from .results import SUFFIX
                lo, hi = vrange or vis_range(maps[labels == 0], threshold if map_threshold is None else map_threshold)
                test_root = os.path.join(dataset.root, dataset.category, "test")
                for i in range(len(dataset)):
                    s = dataset.samples[i]
                    name = result_name(s.path, test_root) + SUFFIX["picture"]
                    rgb, amap, gt = _panel_frame(dataset, i, maps[i], masks)
                    save_panel(os.path.join(vis_dir, name), rgb, amap, scores[i], threshold, lo, hi, gt,
                               map_threshold, region_only_if_anomalous)
                    pictures[i] = f"vis/{name}"
        if report:
            from .report import write_report
            records = [{"path": s.path, "score": float(sc), "label": s.kind, "picture": pictures.get(i),
                        "verdict": _verdict(sc, threshold) if threshold is not None else None}
                       for i, (s, sc) in enumerate(zip(dataset.samples, scores))]
            write_report(work, records, threshold, out, title=f"{method} {dataset.category}: test split",
                         note=crop_note(dataset.image_size, dataset.crop_size))
        save_json(os.path.join(work, "metrics.json"), out)
    return out


def _panel_frame(dataset, i, amap, masks):
    """(image, map, ground truth) of test image i for its picture: with a centre crop, the whole resized
    image with the map on the inspected square (NaN around it, framed in the picture), else as scored."""
    from shared_data.dataset import load_image, load_mask, resize_image, resize_mask

    from .regions import to_image
    S, C = dataset.image_size, dataset.crop_size
    gt = masks[i] if masks is not None else None
    if not C or C >= S:
        return dataset.load_rgb(i), amap, gt
    s = dataset.samples[i]
    if gt is not None:
        gt = resize_mask(load_mask(s.mask_path), S) if s.mask_path else np.zeros((S, S), bool)
    return resize_image(load_image(s.path), S), to_image(amap, S, S, S, C), gt


@contextlib.contextmanager
def _built_aside(out_dir, stem):
    """Yield a temporary folder in ``out_dir``; when the block succeeds, move its entries into ``out_dir``
    (a folder replaces the folder of that name; metrics.json moves last), else remove it."""
    import shutil

    from shared_data.errors import make_temp_dir
    work = make_temp_dir(stem, out_dir)
    replaced = []
    try:
        yield work
        for name in sorted(os.listdir(work), key=lambda n: n == "metrics.json"):
            src, dst = os.path.join(work, name), os.path.join(out_dir, name)
            if os.path.isdir(src) and os.path.isdir(dst):
                replaced.append(make_temp_dir(f"old-{name}", out_dir))
                os.replace(dst, os.path.join(replaced[-1], name))
            os.replace(src, dst)
    finally:
        for d in [work] + replaced:
            shutil.rmtree(d, ignore_errors=True)


def _verdict(score, threshold):
    return "anomalous" if threshold is not None and score >= threshold else "normal"


def save_panel(path, rgb, amap, score, threshold, vmin, vmax, gt_mask=None, map_threshold=None,
               region_only_if_anomalous=False, clean=True):
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
    save_png(path, panel(rgb, amap, region, vmin, vmax, gt_mask=gt_mask, title=title), clean)


def print_verdicts(paths, scores, threshold):
    for p, s in zip(paths, scores):
        v = _verdict(s, threshold) if threshold is not None else "no threshold stored"
        print(f"{p}\tscore {float(s):.4f}\t{v}")


# ----------------------------------------------------------------------------- the lifecycle


def load(method, path):
    """(model in eval mode, checkpoint) from a checkpoint of ``method`` (its engine module): the
    architecture comes from the checkpoint's model_args, every tensor must fit."""
    ck = C.load_checkpoint(path, method.METHOD)
    if ck.get("kind") == "train_state":
        step = (ck.get("progress") or {})
        at = f"epoch {step['epoch']}" if "epoch" in step else f"step {step['step']}" if "step" in step else "unfinished"
        raise UserError(f"{path} is a training state ({at}), not a trained model: use model.pdparams, or finish "
                        "the run with train.py --resume")
    if ck.get("complete") is False:  # written during a training that has not (yet) ended
        p = ck.get("progress") or {}
        at = f" (kept at epoch {p['epoch']} of {p['epochs']})" if "epochs" in p else ""
        print(f"warning: {printable(path)} comes from a training that did not finish{at}: its numbers are not the "
              "full run's; finish it with train.py --resume", file=sys.stderr)
    if hasattr(method, "upgrade"):
        ck = method.upgrade(ck, path)
    try:
        model = method.build(ck["model_args"])
    except KeyError as e:
        raise UserError(f"{path}: model_args lacks {e} (written by another version?)") from None
    C.set_state_strict(model, ck["state_dict"], f"{method.METHOD} checkpoint {path}")
    model.model_args["weights"] = ck["model_args"].get("weights")
    model.eval()
    return model, ck


def training_summary(ck):
    """What metrics.json records of the training: the checkpoint's train/fit statistics without the
    per-epoch history and the held-out scores."""
    stats = dict(ck.get("train") or ck.get("fit") or {})
    return {k: v for k, v in stats.items() if k not in ("history", "holdout_scores")}


def evaluate(method, model, ck, data_dir, category, out_dir, batch_size=32, save_vis=False, options=None,
             report=False):
    """The test split of ``category`` through the model -> out_dir/metrics.json, scores.csv (+ pictures,
    + report.html). Says in a line when a centre crop leaves a border unscored, or images are stretched
    to the model's square. Returns the metrics dict."""
    from shared_data.dataset import MVTecAD, image_size_of
    meta = method.deploy_meta(ck, options)
    p = meta["preprocess"]
    ds = MVTecAD(data_dir, category, "test", p["image_size"], p.get("crop_size"), p.get("mean"), p.get("std"))
    for note in (crop_note(p["image_size"], p.get("crop_size")),
                 aspect_note([image_size_of(s.path) or (0, 0) for s in ds.samples], p["image_size"])):
        if note:
            print(note, file=sys.stderr)
    raw, t_model = run_batches(method.runner(model, ck, options), ds, batch_size)
    t0 = time.perf_counter()
    maps, scores = postprocess(raw, meta["postprocess"])
    t_post = time.perf_counter() - t0
    extra = {"model_args": {k: v for k, v in ck["model_args"].items() if k != "postprocess"},
             "training": training_summary(ck)}
    if hasattr(method, "extra_metrics"):
        extra.update(method.extra_metrics(ck, ds, raw, maps, scores, options))
    extra["timing"] = {"model_s": round(t_model, 3), "postprocess_s": round(t_post, 3), "images": len(ds)}
    return save_val_outputs(out_dir, method.METHOD, ds, maps, scores, meta.get("threshold"), extra=extra,
                            save_vis=save_vis, vrange=meta.get("vis_range"), map_threshold=meta.get("map_threshold"),
                            region_only_if_anomalous=meta.get("region_only_if_anomalous", False), report=report)


def export(method, model, ck, out_dir, options=None, onnx=False):
    """The model's deployable graph + inference.yml (``onnx``: + inference.onnx) into out_dir
    (adcommon.export). Returns inference.yml's path."""
    from .export import export_inference
    meta = method.deploy_meta(ck, options)
    # whether the model comes from a finished training: infer.py warns about an unfinished one
    meta["training"] = {"complete": ck.get("complete") is not False, "progress": ck.get("progress")}
    p = meta["preprocess"]
    size = p.get("crop_size") or p["image_size"]
    layer = method.export_layer(model, ck, options) if hasattr(method, "export_layer") else model
    return export_inference(layer, out_dir, [None, 3, size, size], meta, onnx=onnx)


def report(method, category, res, path):
    """The line val.py (and train.py --val) prints for a category: summary_line with the engine's
    PIXEL_NOTE and the metrics.json keys it names in SUMMARY_EXTRA."""
    more = {k: res[k] for k in getattr(method, "SUMMARY_EXTRA", ()) if k in res}
    return summary_line(category, res, path, getattr(method, "PIXEL_NOTE", ""), **more)


def val_main(method, args, options=None):
    """The whole val.py: every category of --category, the checkpoint of each (or --model_path), results
    into --save_dir if the script has it, else the engine's ``result_dir`` (optional), else the category's
    folder; that folder and the checkpoint's are held while it runs (adcommon.outputs)."""
    from . import cli
    from .outputs import output_folder
    cli.set_image_limit(args)
    cli.set_device(args.device)
    cats = cli.categories_arg(args.data_dir, args.category)
    if args.model_path and len(cats) > 1:
        raise UserError("--model_path names one checkpoint: give one --category")
    for cat in cats:
        out = os.path.join(args.output_dir, cat)
        ckpt = args.model_path or os.path.join(out, "model.pdparams")
        model, ck = load(method, ckpt)
        dest = getattr(args, "save_dir", None) or \
            (method.result_dir(out, ck, options) if hasattr(method, "result_dir") else out)
        same = os.path.realpath(dest) == os.path.realpath(out)
        with output_folder(dest, "category" if same else "val", "--output_dir" if same else "--save_dir",
                           inputs=[os.path.join(args.data_dir, cat)],
                           also_lock=[os.path.dirname(os.path.abspath(ckpt)), out]):
            res = evaluate(method, model, ck, args.data_dir, cat, dest, args.batch_size, args.save_vis, options,
                           getattr(args, "report", False))
        print(report(method, cat, res, os.path.join(dest, "metrics.json")))
    return 0


def predict_main(method, args, options=None):
    """The whole predict.py: images (a file, a folder, a glob) through a checkpoint -> the results folder
    --save_dir (default <checkpoint's folder>/predict; adcommon.results), held with the checkpoint's
    folder while it runs. ``--threshold`` and ``--map_threshold`` override the stored image and map
    thresholds. Returns the exit code (adcommon.infer.exit_code)."""
    from . import cli
    from .files import find_images
    from .infer import exit_code, predict_dir, predict_images, scored_line
    from .outputs import image_root, output_folder
    from .results import previous_files
    cli.set_image_limit(args)
    ckpt = C.checkpoint_path(args.model_path, args.output_dir, args.category)
    paths = find_images(args.img_path)
    root = image_root(args.img_path)
    save_dir = predict_dir(ckpt, args.save_dir)
    cli.set_device(args.device)
    model, ck = load(method, ckpt)
    meta = method.deploy_meta(ck, options)
    for key in ("threshold", "map_threshold"):
        if getattr(args, key, None) is not None:
            meta[key] = getattr(args, key)
    st = os.stat(ckpt)
    settings = {"method": method.METHOD, "model": os.path.realpath(ckpt), "model_fingerprint":
                f"{st.st_size}:{st.st_mtime_ns}", "threshold": meta.get("threshold"),
                "map_threshold": meta.get("map_threshold"), "save_vis": bool(args.save_vis or getattr(args, "report",
                                                                                                          False)),
                "save_maps": getattr(args, "save_maps", "none"), "img_root": os.path.realpath(root),
                "options": {k: v for k, v in (options or {}).items() if isinstance(v, (str, int, float, bool))}}
    with output_folder(save_dir, "results", "--save_dir", inputs=[root], owned=previous_files(save_dir),
                       also_lock=[os.path.dirname(os.path.abspath(ckpt))]):
        summary = predict_images(
            paths, method.runner(model, ck, options), meta, save_dir, root, args.batch_size, args.save_vis,
            save_maps=getattr(args, "save_maps", "none"), report=getattr(args, "report", False),
            strict=getattr(args, "strict", False), resume=getattr(args, "resume", False),
            workers=getattr(args, "workers", None), settings=settings,
            title=f"{method.METHOD} {os.path.basename(os.path.dirname(os.path.abspath(ckpt)))}: predictions")
    print(scored_line(summary, save_dir))
    return exit_code(summary)


def export_main(method, args, options=None):
    """The whole export_model.py: <checkpoint's folder>/inference (or --save_dir), held with the
    checkpoint's folder while it is written. ``options``: a dict, or a function of the checkpoint giving
    one (KDAD's map follows the checkpoint's localization method)."""
    from .outputs import output_folder
    ckpt = C.checkpoint_path(args.model_path, args.output_dir, args.category)
    model, ck = load(method, ckpt)
    if callable(options):
        options = options(ck)
    if getattr(args, "threshold", None) is not None:
        ck["threshold"] = args.threshold
    out = args.save_dir or os.path.join(os.path.dirname(os.path.abspath(ckpt)), "inference")
    with output_folder(out, "export", "--save_dir", also_lock=[os.path.dirname(os.path.abspath(ckpt))]):
        onnx = getattr(args, "onnx", False)
        yml = export(method, model, ck, out, options, onnx=onnx)
    what = f"the {options['localization']} graph " if (options or {}).get("localization") else ""
    print(f"exported {what}to {printable(out)} ({printable(yml)}{', inference.onnx' if onnx else ''})")
    return 0
