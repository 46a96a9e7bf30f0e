"""adcommon.evaluate.metrics against sklearn, hand-derived answers and an independent brute-force AUPRO."""
import time

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from adbase import UserError
from adcommon.evaluate import metrics
from adcommon.evaluate.metrics import SingleClassError, all_metrics, aupro, f1_max, image_auroc, pixel_auroc

_trapezoid = getattr(np, "trapezoid", None) or np.trapz


def brute_aupro(masks, maps, fpr_limit):
    """Threshold sweep written from the definition: for every distinct score t (descending) count
    FPR and each region's overlap with boolean masks; prepend (0, 0); cut at the limit with linear
    interpolation; trapezoid / limit. Regions: scipy 8-connected labels per image."""
    masks = np.asarray(masks) > 0
    maps = np.asarray(maps, np.float64)
    regions = []
    for i, m in enumerate(masks):
        lab, n = ndimage.label(m, structure=np.ones((3, 3)))
        for k in range(1, n + 1):
            r = np.zeros_like(masks)
            r[i] = lab == k
            regions.append(r)
    normal = ~masks
    fpr, pro = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        above = maps >= t
        fpr.append((above & normal).sum() / normal.sum())
        pro.append(np.mean([(above & r).sum() / r.sum() for r in regions]))
    fpr, pro = np.array(fpr), np.array(pro)
    j = int((fpr <= fpr_limit).sum())  # fpr is non-decreasing: a prefix is kept
    f, p = list(fpr[:j]), list(pro[:j])
    if f[-1] < fpr_limit:
        f0, f1, p0, p1 = fpr[j - 1], fpr[j], pro[j - 1], pro[j]
        f.append(fpr_limit)
        p.append(p0 + (p1 - p0) * (fpr_limit - f0) / (f1 - f0))
    return _trapezoid(p, f) / fpr_limit


def random_case(seed, n=4, h=9, w=11, levels=6):
    """Small maps with many ties (few score levels) and scattered blobs, one good image."""
    rng = np.random.default_rng(seed)
    masks = (ndimage.uniform_filter(rng.random((n, h, w)), size=(1, 3, 3)) > 0.62).astype(np.uint8) * 255
    masks[0] = 0  # a good image: only negatives
    maps = rng.integers(0, levels, (n, h, w)).astype(np.float32) / levels
    maps += (masks > 0) * rng.integers(0, 3, (n, h, w)).astype(np.float32) / levels  # weak signal
    return masks, maps


# ----------------------------------------------------------------------------- AUROC


@pytest.mark.parametrize("seed", range(5))
def test_image_and_pixel_auroc_equal_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 60)
    s = rng.integers(0, 7, 60).astype(np.float64) + y  # ties across classes
    assert abs(image_auroc(y, s) - roc_auc_score(y, s)) <= 1e-12
    masks, maps = random_case(seed, n=6, h=20, w=17)
    ref = roc_auc_score((masks > 0).ravel(), maps.ravel())
    assert abs(pixel_auroc(masks, maps) - ref) <= 1e-9


def test_pixel_auroc_continuous_and_float64_and_4d():
    rng = np.random.default_rng(1)
    masks = rng.random((3, 1, 30, 30)) < 0.1  # (N, 1, H, W) bool accepted
    maps = rng.random((3, 1, 30, 30)) + masks
    ref = roc_auc_score(masks.ravel(), maps.ravel())
    assert abs(pixel_auroc(masks, maps) - ref) <= 1e-9


def test_constant_maps_auroc_half_and_aupro_defined():
    masks, _ = random_case(0)
    maps = np.full(masks.shape, 0.25, np.float32)
    assert pixel_auroc(masks, maps) == 0.5
    assert image_auroc([0, 1, 0, 1], [3, 3, 3, 3]) == 0.5
    # one tie run: the curve jumps from (0, 0) to (1, 1), so PRO(limit) = limit and area = limit^2 / 2
    assert aupro(masks, maps, 0.3) == pytest.approx(0.15, abs=1e-12)
    assert aupro(masks, maps, 1.0) == pytest.approx(0.5, abs=1e-12)


# ----------------------------------------------------------------------------- AUPRO


def _hand_case(tie):
    # Two 1x4 images. A: mask [1 1 0 0], scores [.9 .5 .7 .1]; B: mask [0 0 0 1], scores
    # [.3 .2 .6 .4] (or the last .3 when `tie`). 5 normal pixels; regions R1 = A[0:2], R2 = B[3].
    masks = np.array([[[1, 1, 0, 0]], [[0, 0, 0, 1]]], np.uint8)
    maps = np.array([[[.9, .5, .7, .1]], [[.3, .2, .6, .3 if tie else .4]]])
    return masks, maps


def test_aupro_hand_computed():
    # No tie. Thresholds descending -> (FPR, PRO = mean over regions):
    #  .9 (R1): (0, .25)  .7: (.2, .25)  .6: (.4, .25)  .5 (R1): (.4, .5)  .4 (R2): (.4, 1)
    #  .3: (.6, 1)  .2: (.8, 1)  .1: (1, 1); with (0, 0) prepended.
    # limit 1:  .2*.25 + .2*.25 + .6*1 = .7
    # limit .3: cut between (.2,.25) and (.4,.25) -> PRO(.3) = .25; area .3*.25 = .075 -> .25
    # limit .5: cut between (.4,1) and (.6,1) -> area .05 + .05 + .1*1 = .2 -> .4
    # (pixel-averaged PRO would give 1/3 at .9: the region mean is what is tested)
    masks, maps = _hand_case(tie=False)
    assert aupro(masks, maps, 1.0) == pytest.approx(0.7, abs=1e-12)
    assert aupro(masks, maps, 0.3) == pytest.approx(0.25, abs=1e-12)
    assert aupro(masks, maps, 0.5) == pytest.approx(0.4, abs=1e-12)


def test_aupro_hand_computed_with_tie():
    # B[3] = .3 ties the normal B[0] = .3: the points .5 (R1) (.4, .5) and .3 (both) (.6, 1) are joined
    # by one sloped segment. limit 1: .05 + .05 + .2*(.5+1)/2 + .4*1 = .65
    # limit .5: PRO(.5) = .75 by interpolation; area .05 + .05 + .1*(.5+.75)/2 = .1625 -> .325
    masks, maps = _hand_case(tie=True)
    assert aupro(masks, maps, 1.0) == pytest.approx(0.65, abs=1e-12)
    assert aupro(masks, maps, 0.5) == pytest.approx(0.325, abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("limit", [0.3, 0.05, 0.5, 1.0])
def test_aupro_equals_brute_force(seed, limit):
    masks, maps = random_case(seed)
    assert abs(aupro(masks, maps, limit) - brute_aupro(masks, maps, limit)) <= 1e-6


def test_aupro_brute_force_continuous_scores():
    rng = np.random.default_rng(7)
    masks, _ = random_case(7, n=3, h=12, w=12)
    maps = rng.random(masks.shape) + 0.3 * (masks > 0)
    for limit in (0.3, 1.0):
        assert abs(aupro(masks, maps, limit) - brute_aupro(masks, maps, limit)) <= 1e-6


def test_aupro_regions_are_8_connected():
    # 3x3 image, mask pixels (0,0), (0,1) and (1,2): (1,2) touches (0,1) only diagonally.
    # Score 1 at (1,2), 0 at the other two, .5 on the 6 normal pixels. limit 1:
    #  8-connected, one region of 3 px: curve (0,1/3) -> (1,1/3) -> (1,1): area 1/3
    #  4-connected would be two regions: PRO = (0 + 1) / 2 -> area 1/2
    mask = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]], np.uint8)[None]
    amap = np.full((1, 3, 3), 0.5)
    amap[0, 0, :2] = 0.0
    amap[0, 1, 2] = 1.0
    assert aupro(mask, amap, 1.0) == pytest.approx(1 / 3, abs=1e-12)
    w, n = metrics._region_weights(np.array([[[1, 0], [0, 1]]], bool))  # diagonal pair: one region
    assert n == 1 and np.allclose(w, 0.5)


def test_regions_do_not_span_images():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, 0, 0] = masks[1, 0, 0] = masks[1, 0, 1] = True
    w, n = metrics._region_weights(masks)
    assert n == 2 and np.allclose(w, [1.0, 0.5, 0.5])


# ----------------------------------------------------------------------------- F1


def test_f1_max_equals_threshold_sweep():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 50)
    s = rng.integers(0, 9, 50).astype(float) + 2 * y
    best = max((2 * ((s >= t) & (y == 1)).sum() / ((s >= t).sum() + y.sum()), t) for t in np.unique(s))
    f1, thr = f1_max(y, s)
    assert f1 == pytest.approx(best[0], abs=1e-12)
    pred = s >= thr
    assert 2 * (pred & (y == 1)).sum() / (pred.sum() + y.sum()) == pytest.approx(f1, abs=1e-12)


# ----------------------------------------------------------------------------- all_metrics


def test_evaluate_matches_single_functions_and_threshold_keys():
    masks, maps = random_case(2, n=5, h=16, w=16)
    labels = (masks.reshape(5, -1) > 0).any(1).astype(int)
    scores = maps.reshape(5, -1).max(1)
    r = all_metrics(labels, scores, masks, maps, threshold=0.8)
    assert r["image_auroc"] == image_auroc(labels, scores)
    assert r["pixel_auroc"] == pytest.approx(pixel_auroc(masks, maps), abs=1e-15)
    assert r["aupro"] == pytest.approx(aupro(masks, maps), abs=1e-15)
    assert (r["f1_max"], r["f1_max_threshold"]) == f1_max(labels, scores)
    pred, y = scores >= 0.8, labels == 1
    p, rec = (pred & y).sum() / pred.sum(), (pred & y).sum() / y.sum()
    assert r["precision_at_threshold"] == pytest.approx(p)
    assert r["recall_at_threshold"] == pytest.approx(rec)
    assert r["f1_at_threshold"] == pytest.approx(2 * p * rec / (p + rec))
    assert r["fpr_at_threshold"] == pytest.approx((pred & ~y).sum() / (~y).sum())
    assert r["notes"] == []
    assert "f1_at_threshold" not in all_metrics(labels, scores, masks, maps)


def test_evaluate_degenerate_gives_none_with_notes():
    masks, maps = random_case(0)
    r = all_metrics([0, 0, 0, 0], [1, 2, 3, 4], np.zeros_like(masks), maps)
    assert r["image_auroc"] is None and r["pixel_auroc"] is None and r["aupro"] is None
    assert r["f1_max"] is None and len(r["notes"]) >= 2
    r = all_metrics([0, 0, 1, 1], [1, 2, 3, 4])  # no masks: image metrics only
    assert r["image_auroc"] == 1.0 and r["pixel_auroc"] is None and r["aupro"] is None
    assert any("mask" in n for n in r["notes"])
    r = all_metrics([1, 1], [1, 2], np.ones((2, 3, 3)), np.ones((2, 3, 3)))  # all anomalous
    assert r["image_auroc"] is None and r["pixel_auroc"] is None and r["f1_max"] == 1.0
    assert not any(isinstance(v, float) and np.isnan(v) for v in r.values())


def test_single_class_raises_user_error():
    with pytest.raises(UserError, match="normal and anomalous"):
        image_auroc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(SingleClassError):
        pixel_auroc(np.zeros((2, 4, 4)), np.random.rand(2, 4, 4))
    with pytest.raises(SingleClassError):
        aupro(np.ones((2, 4, 4)), np.random.rand(2, 4, 4))


def test_bad_inputs_raise_user_error():
    masks, maps = random_case(0)
    with pytest.raises(UserError, match="shape"):
        pixel_auroc(masks, maps[:, :-1])
    with pytest.raises(UserError, match="shape"):
        aupro(masks[:2], maps)
    bad = maps.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(UserError, match="NaN"):
        pixel_auroc(masks, bad)
    bad[1, 2, 3] = np.inf
    with pytest.raises(UserError, match="inf"):
        all_metrics([0, 1, 1, 1], [1, 2, 3, 4], masks, bad)
    with pytest.raises(UserError, match="NaN"):
        image_auroc([0, 1], [0.5, float("nan")])
    with pytest.raises(UserError, match="labels"):
        image_auroc([0, 1, 1], [0.5, 0.7])
    with pytest.raises(UserError, match="0/1"):
        image_auroc([0, 2], [0.5, 0.7])
    with pytest.raises(UserError, match="fpr_limit"):
        aupro(masks, maps, 0.0)


def test_pixel_metrics_fast_enough():
    # 150 maps of 256x256 (~9.8M pixels): sklearn takes ~10 s; ours well under 1 s each on 2 cores.
    # The bound here is loose so a busy CI machine does not flake.
    rng = np.random.default_rng(0)
    masks = np.zeros((150, 256, 256), np.uint8)
    masks[75:, 100:130, 60:110] = 1
    maps = rng.random(masks.shape, dtype=np.float32) + 0.5 * masks
    t0 = time.perf_counter()
    r = all_metrics(np.r_[np.zeros(75), np.ones(75)], maps.max((1, 2)), masks, maps)
    assert time.perf_counter() - t0 < 5.0
    assert 0.5 < r["pixel_auroc"] <= 1.0 and 0.0 < r["aupro"] <= 1.0
