"""Anomaly-detection metrics as plain functions: image/pixel AUROC, AUPRO (official MVTec), F1.

Definitions follow docs/reference.md#metrics:
- pixel AUROC pools every pixel of every test image (good images add only negatives), exact ROC;
- AUPRO is the official MVTec one (``pro_curve_util.py``, anomalib >= 2.3): 8-connected GT regions,
  FPR over all anomaly-free pixels, PRO = mean per-region overlap, cut at ``fpr_limit`` with linear
  interpolation, trapezoid area divided by the limit, so the value lies in [0, 1].

Both pixel metrics are computed from one sort of the normal pixels plus one of the (few) anomalous
pixels, which is what makes 150 maps of 256x256 take a fraction of a second (sklearn needs ~10 s).
"""
import math

import numpy as np

from adbase import UserError

__all__ = ["SingleClassError", "image_auroc", "pixel_auroc", "aupro", "f1_max", "all_metrics"]


class SingleClassError(UserError):
    """Only one class present, so a ranking metric is undefined (``evaluate`` reports None)."""


# ----------------------------------------------------------------------------- input checks


def _labels(labels, name="labels"):
    y = np.asarray(labels)
    if y.ndim != 1:
        y = y.reshape(-1)
    if y.size and not np.isin(y, (0, 1)).all():
        raise UserError(f"{name} must be 0/1 (normal/anomalous); got values {np.unique(y)[:5].tolist()}")
    return y.astype(bool)


def _finite_scores(x, name):
    """Float array (float32 kept as is, so ties stay ties), rejecting NaN/inf with a clear message."""
    a = np.asarray(x)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise UserError(f"{name} must be real numbers, got dtype {a.dtype}")
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        n_nan = int(np.isnan(a).sum())
        raise UserError(f"{name} contain {n_nan} NaN and {int(bad.sum()) - n_nan} inf values; "
                        "check the model output (e.g. a diverged training or a singular covariance)")
    return a


def _maps_3d(x, name):
    """(N, H, W) view of maps/masks given as (N, H, W), (N, 1, H, W) or a single (H, W)."""
    a = np.asarray(x)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    elif a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise UserError(f"{name} must have shape (N, H, W) or (N, 1, H, W), got {a.shape}")
    return a


def _pixels(masks, maps):
    """Binarised masks (N, H, W) bool and finite maps (N, H, W), checked to have the same shape."""
    m = _maps_3d(masks, "masks")
    s = _maps_3d(maps, "anomaly maps")
    if m.shape != s.shape:
        raise UserError(f"masks {m.shape} and anomaly maps {s.shape} differ in shape; resize the maps "
                        "to the ground-truth size (adcommon.evaluate.maps.upsample) before scoring")
    s = _finite_scores(s, "anomaly maps")
    return m > 0, s


def _two_class_pixels(masks, maps, needs):
    """_pixels, refused in one line (SingleClassError) unless there are anomalous and normal pixels;
    ``needs`` names the metric and what it needs, for the message."""
    pos, s = _pixels(masks, maps)
    n_pos = int(pos.sum())
    if n_pos == 0 or n_pos == pos.size:
        raise SingleClassError(f"{needs}; the masks have {n_pos} anomalous of {pos.size}")
    return pos, s


# ----------------------------------------------------------------------------- image level


def image_auroc(labels, scores):
    """Image-level AUROC (``sklearn.metrics.roc_auc_score``); labels 1 = anomalous."""
    from sklearn.metrics import roc_auc_score

    y = _labels(labels)
    s = _finite_scores(scores, "image scores").reshape(-1)
    if y.shape != s.shape:
        raise UserError(f"{y.size} labels but {s.size} image scores")
    if y.all() or not y.any():
        raise SingleClassError(f"image AUROC needs normal and anomalous images; got {int(y.sum())} "
                               f"anomalous of {y.size}")
    return float(roc_auc_score(y, s))


def f1_max(labels, scores):
    """(F1-max, threshold): the best F1 over all thresholds on these very labels (``score >= thr``).

    This is an ORACLE number (the threshold is chosen with the test labels); report it only as
    "F1-max", never as the F1 of a deployed detector (docs/reference.md#thresholds-and-f1).
    """
    from sklearn.metrics import precision_recall_curve

    y = _labels(labels)
    s = _finite_scores(scores, "scores").reshape(-1)
    if y.shape != s.shape:
        raise UserError(f"{y.size} labels but {s.size} scores")
    if not y.any():
        raise SingleClassError("F1 needs at least one anomalous sample")
    precision, recall, thresholds = precision_recall_curve(y, s)
    # the last (precision=1, recall=0) point has no threshold
    p, r = precision[:-1], recall[:-1]
    denom = p + r
    f1 = np.divide(2 * p * r, denom, out=np.zeros_like(denom), where=denom > 0)
    i = int(np.argmax(f1))
    return float(f1[i]), float(thresholds[i])


def _prf_at(labels, scores, threshold):
    """Precision, recall, F1 and false-positive rate of the rule ``score >= threshold``."""
    y = _labels(labels)
    s = _finite_scores(scores, "scores").reshape(-1)
    pred = s >= threshold
    tp = int((pred & y).sum())
    fp = int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    n_neg = int((~y).sum())
    fpr = fp / n_neg if n_neg else None
    precision = tp / (tp + fp) if tp + fp else 0.0  # nothing flagged: no correct flags
    recall = tp / (tp + fn) if tp + fn else None
    if recall is None:
        return precision, None, None, fpr
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, fpr


# ----------------------------------------------------------------------------- pixel level


def _sorted_pixels(pos, maps):
    """Scores of normal pixels sorted ascending (n_neg,), and of anomalous pixels (n_pos,) with the
    argsort that sorts them (so region weights can follow the same order)."""
    neg = np.sort(maps[~pos])  # (n_neg,) the one big sort; numpy's SIMD sort, no argsort needed
    a = maps[pos]  # (n_pos,) in C order, same order as labels[pos] below
    order = np.argsort(a, kind="stable")
    return neg, a[order], order


def _auroc_sorted(neg, pos_sorted):
    """Exact AUROC = Mann-Whitney U / (n_pos n_neg), ties counted 1/2 (= trapezoid ROC area)."""
    lt = np.searchsorted(neg, pos_sorted, side="left")  # negatives strictly below each positive
    le = np.searchsorted(neg, pos_sorted, side="right")  # ... below or tied
    u2 = int(lt.sum(dtype=np.int64)) + int(le.sum(dtype=np.int64))  # 2U, exact integer
    return u2 / (2.0 * pos_sorted.size * neg.size)


def pixel_auroc(masks, maps):
    """Pixel AUROC over all pixels of all images pooled (masks binarised ``> 0``), exact with ties."""
    pos, s = _two_class_pixels(masks, maps, "pixel AUROC needs normal and anomalous pixels")
    neg, pos_sorted, _ = _sorted_pixels(pos, s)
    return _auroc_sorted(neg, pos_sorted)


def _region_weights(pos):
    """Per anomalous pixel (C order of ``pos``): 1 / size of its 8-connected GT region, and #regions.

    Regions are labelled per image (a region never spans two images), 8-connectivity as in the official
    MVTec script (``scipy.ndimage.label(gt, structure=np.ones((3, 3)))``); cv2 is the same, faster.
    """
    import cv2

    ids = np.empty(int(pos.sum()), np.int64)  # region id per anomalous pixel
    start, offset = 0, 0
    for m in pos:  # (H, W) bool
        k = int(m.sum())
        if k == 0:
            continue
        n, lab = cv2.connectedComponents(m.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
        ids[start:start + k] = lab[m] - 1 + offset
        start += k
        offset += n - 1
    sizes = np.bincount(ids, minlength=offset)  # (R,) pixels per region
    return 1.0 / sizes[ids], offset


def _aupro_sorted(neg, pos_sorted, w_sorted, n_regions, fpr_limit):
    """AUPRO from sorted normal scores and sorted anomalous scores with weights 1/region size.

    The curve visits every distinct threshold t (descending): FPR(t) = #neg >= t / n_neg and
    PRO(t) = sum of weights >= t / R. Only steps over normal pixels move FPR, so the trapezoid area
    is a sum over normal pixels s of (PRO(> s) + PRO(>= s)) / 2 / n_neg; swapping the sums makes it a
    sum over anomalous pixels a of w_a * (#neg < a + #neg <= a) / 2, read off with searchsorted.
    The tie group of normal scores that crosses ``fpr_limit`` is handled as one segment, linearly
    interpolated at exactly the limit (anomalib ``compute_pro`` / MVTec ``trapezoid(x_max=...)``).
    """
    n_neg = neg.size
    # v = the normal score whose tie group crosses the limit (m-th largest, m = ceil(limit n_neg))
    m = min(max(int(math.ceil(fpr_limit * n_neg - 1e-9)), 1), n_neg)
    v = neg[n_neg - m]
    le_v = int(np.searchsorted(neg, v, side="right"))  # normals <= v: not (fully) inside the area
    lt_v = int(np.searchsorted(neg, v, side="left"))
    f_a = (n_neg - le_v) / n_neg  # FPR just above v  (< limit)
    f_b = (n_neg - lt_v) / n_neg  # FPR at v          (>= limit up to rounding)

    # fully included normals: those with score > v
    lt = np.searchsorted(neg, pos_sorted, side="left")  # (n_pos,) normals < a
    le = np.searchsorted(neg, pos_sorted, side="right")  # (n_pos,) normals <= a
    c = np.maximum(lt - le_v, 0) + np.maximum(le - le_v, 0)  # normals in (v, a) plus in (v, a]
    area = float(np.dot(w_sorted, c)) / (2.0 * n_neg * n_regions)

    # the crossing segment from (f_a, PRO(> v)) to (f_b, PRO(>= v))
    cw = np.concatenate([[0.0], np.cumsum(w_sorted[::-1])])  # cw[k] = weight of the top k anomalous
    p_a = cw[pos_sorted.size - int(np.searchsorted(pos_sorted, v, side="right"))] / n_regions
    p_b = cw[pos_sorted.size - int(np.searchsorted(pos_sorted, v, side="left"))] / n_regions
    if f_b <= fpr_limit:
        area += (f_b - f_a) * (p_a + p_b) / 2.0
    else:
        p_lim = p_a + (p_b - p_a) * (fpr_limit - f_a) / (f_b - f_a)
        area += (fpr_limit - f_a) * (p_a + p_lim) / 2.0
    return float(min(max(area / fpr_limit, 0.0), 1.0))  # clamp float dust only


def _check_limit(fpr_limit):
    if not 0.0 < float(fpr_limit) <= 1.0:
        raise UserError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    return float(fpr_limit)


def aupro(masks, maps, fpr_limit=0.3):
    """Area under the per-region-overlap curve up to ``fpr_limit``, normalised to [0, 1].

    Official MVTec AD definition (docs/reference.md#aupro): regions = 8-connected components of each
    GT mask; FPR over all anomaly-free pixels of all images (good images included); PRO(t) = mean
    over regions of the fraction of the region with score >= t; (0, 0) prepended; PRO linearly
    interpolated at the limit; trapezoid area / ``fpr_limit``.
    """
    fpr_limit = _check_limit(fpr_limit)
    pos, s = _two_class_pixels(masks, maps, "AUPRO needs anomalous regions and normal pixels")
    neg, pos_sorted, order = _sorted_pixels(pos, s)
    w, n_regions = _region_weights(pos)
    return _aupro_sorted(neg, pos_sorted, w[order], n_regions, fpr_limit)


# ----------------------------------------------------------------------------- everything at once


def all_metrics(labels, scores, masks=None, maps=None, fpr_limit=0.3, threshold=None):
    """All metrics in one dict (the pixel sort is shared by pixel AUROC and AUPRO).

    Keys: image_auroc, pixel_auroc, aupro, f1_max (oracle F1 at the best test threshold),
    f1_max_threshold, notes (list of reasons for any None); with ``threshold`` (chosen on normal
    data only) also f1_at_threshold, precision_at_threshold, recall_at_threshold and
    fpr_at_threshold (share of normal test images flagged) of the rule ``score >= threshold``.
    A metric is None where undefined (no masks, or one class only), never NaN.
    """
    fpr_limit = _check_limit(fpr_limit)
    y = _labels(labels)
    s = _finite_scores(scores, "image scores").reshape(-1)
    if y.shape != s.shape:
        raise UserError(f"{y.size} labels but {s.size} image scores")
    out = {"image_auroc": None, "pixel_auroc": None, "aupro": None,
           "f1_max": None, "f1_max_threshold": None, "notes": []}
    notes = out["notes"]

    try:
        out["image_auroc"] = image_auroc(y, s)
    except SingleClassError as e:
        notes.append(f"image_auroc is None: {e}")
    try:
        out["f1_max"], out["f1_max_threshold"] = f1_max(y, s)
    except SingleClassError as e:
        notes.append(f"f1_max is None: {e}")
    if threshold is not None:
        p, r, f, fpr = _prf_at(y, s, float(threshold))
        out.update(f1_at_threshold=f, precision_at_threshold=p, recall_at_threshold=r, fpr_at_threshold=fpr)
        if r is None:
            notes.append("recall/f1_at_threshold are None: no anomalous images")
        if fpr is None:
            notes.append("fpr_at_threshold is None: no normal images")

    if masks is None or maps is None:
        notes.append("pixel_auroc and aupro are None: " +
                     ("no ground-truth masks" if masks is None else "no anomaly maps"))
        return out
    pos, m = _pixels(masks, maps)
    n_pos = int(pos.sum())
    if n_pos == 0 or n_pos == pos.size:
        what = "no anomalous pixels" if n_pos == 0 else "no normal pixels"
        notes.append(f"pixel_auroc and aupro are None: the ground-truth masks have {what}")
        return out
    neg, pos_sorted, order = _sorted_pixels(pos, m)
    out["pixel_auroc"] = _auroc_sorted(neg, pos_sorted)
    w, n_regions = _region_weights(pos)
    out["aupro"] = _aupro_sorted(neg, pos_sorted, w[order], n_regions, fpr_limit)
    return out
