"""Raw model outputs -> full-size anomaly maps and image scores, and thresholds from normal images: the
one post-processing path (val.py, predict.py and infer.py call the same code, so their numbers agree by
construction).

A post-processing spec is a dict:
    {"out_size": 224, "combine": "product", "sigma": 4.0, "map_outputs": [0], "score_output": None,
     "map_size": None}
``map_outputs`` are the indices of the model outputs holding (N, 1, h, w) maps (combined after
upsampling, at ``map_size`` when given, else at ``out_size``); ``score_output`` is the index of an (N,)
image-score output, or None for "max of the map". The models stop at feature resolution because
``F.interpolate`` breaks Paddle 3.3's oneDNN predictor (docs/reference.md#interpolate-breaks-the-onednn-predictor).
"""
import numpy as np

from adbase import UserError


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


def image_scores(maps, reduce="max", top=None):
    """(N,) image scores from (N, H, W) maps: ``max`` (STFPM, PaDiM, MVTec script) or ``mean``; with
    ``top`` (a fraction in (0, 1)), the mean of each map's highest ``top`` share of pixels (at least one),
    which one hot pixel moves less than the maximum."""
    a = _as_nhw(maps)
    if top:
        flat = a.reshape(len(a), -1)
        k = min(flat.shape[1], max(1, int(round(flat.shape[1] * float(top)))))
        return np.partition(flat, flat.shape[1] - k, axis=1)[:, -k:].mean(axis=1, dtype=np.float64).astype(np.float32)
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
        scores = image_scores(maps, top=spec.get("score_top"))
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
