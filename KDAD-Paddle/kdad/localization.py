"""Localization for KDAD (paper section 3.3; reference ``test_functions.py``) and its own metric.

Maps are explanations of the detection score: the gradient of the score with respect to the input.
- ``gradients`` (vanilla backprop, the MVTec setting): sum over channels of |d score / d x|, scaled
  per image by its minimum and 99th percentile and clipped to [0, 1]; Gaussian sigma 4 afterwards.
- ``smooth_grad``: the same map averaged over 50 noisy copies of the image, then min-max scaled.
- ``gbp`` (guided backprop): ReLUs of the cloner pass only positive gradients; min-max scaled.
- ``discrepancy`` (ours, not in the paper): per-position (1 - cos) + lamda * MSE between expert and
  cloner features on pool3..pool5, no gradients; deployable with oneDNN and on Paddle 2.6.
``paper_localization_auroc`` is the paper's localization number (anomalous images only, 1000
thresholds, 3x3 elliptical opening); it is not the standard pixel AUROC.
"""
import math

import numpy as np
import paddle

METHODS = ("gradients", "smooth_grad", "gbp", "discrepancy")


def percentile_normalise(m, q=99.0):
    """(N, 1, H, W) -> clip((m - min) / (P_q - min), 0, 1) per image, P_q = np.percentile(m, q) with
    linear interpolation, computed with topk so that it exports (reference convert_to_grayscale)."""
    n = int(m.shape[2]) * int(m.shape[3])
    flat = m.flatten(1)                                  # (N, H*W)
    pos = q / 100.0 * (n - 1)                            # ascending rank of P_q
    lo = int(math.floor(pos))
    frac = pos - lo
    top = paddle.topk(flat, n - lo, axis=1)[0]           # descending; ascending rank r sits at n-1-r
    v_lo = top[:, n - 1 - lo]
    v_hi = top[:, max(n - 2 - lo, 0)]
    p = v_lo + frac * (v_hi - v_lo)                      # (N,)
    mn = flat.min(axis=1)                                # (N,)
    scale = (p - mn).clip(min=1e-12)                     # reference divides by 0 on a flat map
    out = (m - mn.reshape([-1, 1, 1, 1])) / scale.reshape([-1, 1, 1, 1])
    return out.clip(0.0, 1.0)


def discrepancy_maps(preds, reals, lamda=0.5, direction_only=False):
    """Per-position version of the detection score: for each layer (N, C, h, w) ->
    (1 - cos over channels) + lamda * mean over channels of (p - r)^2, as (N, 1, h, w)."""
    out = []
    for p, r in zip(preds, reals):
        dot = (p * r).sum(axis=1, keepdim=True)
        norm = paddle.sqrt((p * p).sum(axis=1, keepdim=True)) * paddle.sqrt((r * r).sum(axis=1, keepdim=True))
        d = 1.0 - dot / norm.clip(min=1e-8)
        if not direction_only:
            d = d + lamda * ((p - r) ** 2).mean(axis=1, keepdim=True)
        out.append(d)
    return out


# ---------------------------------------------------------------------------------- dygraph methods


def _gray(g):
    return g.abs().sum(axis=1, keepdim=True)             # (N, 1, S, S)


def _minmax(m):
    """Per-image min-max scaling of (N, 1, H, W) numpy maps (reference: after |.| for gbp / smooth_grad)."""
    lo = m.min(axis=(1, 2, 3), keepdims=True)
    hi = m.max(axis=(1, 2, 3), keepdims=True)
    return ((m - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32)


def vanilla(model, x):
    """[score (N,), map (N, 1, S, S)] numpy: the deployed gradient map, computed in dygraph."""
    s, g = model.input_gradient(paddle.to_tensor(x))
    return [s.numpy(), percentile_normalise(_gray(g), 99.0).numpy()]


def guided_backprop(model, x):
    """[score, map]: gradients through guided ReLUs of the cloner, |.|, min-max per image."""
    xt = paddle.to_tensor(x)
    xt.stop_gradient = False
    s = model.score(xt, guided=True)
    (g,) = paddle.grad(s.sum(), xt)
    m = percentile_normalise(_gray(g), 99.0).numpy()
    return [model.score(paddle.to_tensor(x)).numpy(), _minmax(np.abs(m))]


def smooth_grad(model, x, n=50, sigma_multiplier=0.05, seed=0):
    """[score, map]: mean of ``n`` vanilla maps of noisy copies, |.|, min-max per image.

    Noise std = (0.05 / (max(x) - min(x)))**2: the reference passes sigma**2 as the std of its normal
    draw; kept as is. Noise is drawn from a seeded numpy generator, so maps are reproducible.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, np.float32)
    rngs = (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3))).reshape(-1, 1, 1, 1)
    std = (sigma_multiplier / np.maximum(rngs, 1e-12)) ** 2
    acc = None
    for _ in range(int(n)):
        noisy = (x + rng.standard_normal(x.shape).astype(np.float32) * std).astype(np.float32)
        m = vanilla(model, noisy)[1]
        acc = m if acc is None else acc + m
    s = model.score(paddle.to_tensor(x)).numpy()
    return [s, _minmax(np.abs(acc / max(int(n), 1)))]


def discrepancy(model, x):
    """[score, d_pool3, d_pool4, d_pool5] numpy (the outputs of the discrepancy export)."""
    with paddle.no_grad():
        pred, real = model.pools(paddle.to_tensor(x))
        from .loss import distill_score
        s = distill_score(pred[1:], real[1:], model.lamda, model.direction_only)
        maps = discrepancy_maps(pred[1:], real[1:], model.lamda, model.direction_only)
    return [s.numpy()] + [m.numpy() for m in maps]


def localize(model, x, localization="gradients", smooth_n=50, seed=0):
    """Raw outputs for a batch (numpy (B, 3, S, S) in [0, 1]) with the given localization; the model must be
    in eval mode. Gradient methods must not run under paddle.no_grad()."""
    if localization == "gradients":
        return vanilla(model, x)
    if localization == "smooth_grad":
        return smooth_grad(model, x, smooth_n, seed=seed)
    if localization == "gbp":
        return guided_backprop(model, x)
    if localization == "discrepancy":
        return discrepancy(model, x)
    from adbase import UserError
    raise UserError(f"unknown localization method {localization!r}; choose one of {', '.join(METHODS)}")


def detect(model, x):
    """[score (N,)] without gradients (detection only, --localization_test False)."""
    with paddle.no_grad():
        return [model.score(paddle.to_tensor(x)).numpy()]


# ---------------------------------------------------------------------------------- paper metric


def soft_masks(dataset, size):
    """Ground truth of the anomalous test images as the reference sees it: the mask PNG resized to
    size x size with PIL bilinear (antialiased, like torchvision Resize on PIL) and scaled to [0, 1].
    Returns (indices of those images, masks (M, size, size) float64)."""
    from PIL import Image

    from shared_data import dataset as T
    idx = [i for i, s in enumerate(dataset.samples) if s.label == 1 and s.mask_path]
    out = np.zeros((len(idx), size, size), np.float64)
    for j, i in enumerate(idx):
        m = T.load_mask(dataset.samples[i].mask_path).astype(np.uint8) * 255
        out[j] = np.asarray(Image.fromarray(m).resize((size, size), Image.BILINEAR), np.float64) / 255.0
    return idx, out


def paper_localization_auroc(maps, gt, n_thresholds=1000):
    """The paper's localization AUROC (reference ``compute_localization_auc``), not a pixel AUROC.

    ``maps`` (M, H, W) in [0, 1] and soft ``gt`` (M, H, W) of the ANOMALOUS test images only. For
    t = 0, 0.001, ..., 0.999: binarise maps >= t, open each with a 3x3 ellipse, TPR = sum(b*gt)/sum(gt),
    FPR = sum(b*(1-gt)) / sum(1-gt); trapezoid area under (FPR, TPR). None when undefined.
    """
    import cv2
    from sklearn.metrics import auc

    maps = np.asarray(maps, np.float64)
    gt = np.asarray(gt, np.float64)
    if maps.shape != gt.shape or maps.ndim != 3 or len(maps) == 0:
        return None
    pos, neg = gt.sum(), (1.0 - gt).sum()
    if pos <= 0 or neg <= 0:
        return None
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    tpr, fpr = [], []
    for t in [0.001 * i for i in range(int(n_thresholds))]:
        b = (maps >= t).astype(np.uint8)
        b = np.stack([cv2.morphologyEx(bi, cv2.MORPH_OPEN, kernel) for bi in b]).astype(np.float64)
        tpr.append(float((b * gt).sum() / pos))
        fp = (b * (1.0 - gt)).sum()
        tn = ((1.0 - b) * (1.0 - gt)).sum()
        fpr.append(float(fp / (fp + tn)))
    return float(auc(fpr, tpr))
