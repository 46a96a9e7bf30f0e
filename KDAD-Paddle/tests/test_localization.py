"""Gradient maps against finite differences, the in-graph percentile against numpy, and the paper's
localization AUROC against an independent brute-force implementation."""
import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from kdad import localization as L  # noqa: E402
from kdad.model import KDAD, Architecture  # noqa: E402


@pytest.fixture(scope="module")
def model64():
    paddle.seed(0)
    m = KDAD(Architecture("vgg16", 64), "none")
    m.eval()
    return m


@pytest.mark.parametrize("shape", [(3, 1, 64, 64), (2, 1, 17, 9), (1, 1, 1, 5)])
def test_percentile_normalise_matches_numpy(shape):
    m = np.random.default_rng(0).random(shape).astype(np.float32) ** 3
    ours = L.percentile_normalise(paddle.to_tensor(m), 99.0).numpy()
    for i in range(shape[0]):
        g = m[i, 0].astype(np.float64)
        ref = np.clip((g - g.min()) / (np.percentile(g, 99) - g.min()), 0, 1)
        np.testing.assert_allclose(ours[i, 0], ref, atol=2e-6)


def test_input_gradient_matches_finite_differences():
    """d score / d x in float64 against central differences at random input positions."""
    paddle.set_default_dtype("float64")
    try:
        paddle.seed(1)
        m = KDAD(Architecture("vgg16", 32), "none")
        m.eval()
        x = np.random.default_rng(0).random((1, 3, 32, 32))
        s, g = m.input_gradient(paddle.to_tensor(x))
        g = g.numpy()
        rng = np.random.default_rng(1)
        h = 1e-5
        for _ in range(12):
            c, i, j = rng.integers(0, 3), rng.integers(0, 32), rng.integers(0, 32)
            xp, xm = x.copy(), x.copy()
            xp[0, c, i, j] += h
            xm[0, c, i, j] -= h
            with paddle.no_grad():
                sp = m.score(paddle.to_tensor(xp)).numpy().reshape(-1)[0]
                sm = m.score(paddle.to_tensor(xm)).numpy().reshape(-1)[0]
                fd = (sp - sm) / (2 * h)
            assert g[0, c, i, j] == pytest.approx(fd, rel=1e-4, abs=1e-9)
    finally:
        paddle.set_default_dtype("float32")


def test_batched_gradient_is_per_image(model64):
    x = np.random.default_rng(2).random((3, 3, 64, 64)).astype(np.float32)
    both = L.vanilla(model64, x)
    one = L.vanilla(model64, x[1:2])
    np.testing.assert_allclose(both[0][1], one[0][0], rtol=1e-5)
    np.testing.assert_allclose(both[1][1], one[1][0], atol=1e-5)


def test_other_methods_give_unit_range_maps(model64):
    x = np.random.default_rng(3).random((2, 3, 64, 64)).astype(np.float32)
    van = L.localize(model64, x, "gradients")
    gbp = L.localize(model64, x, "gbp")
    sg = L.localize(model64, x, "smooth_grad", smooth_n=2)
    for out in (van, gbp, sg):
        assert out[1].shape == (2, 1, 64, 64) and out[1].min() >= 0 and out[1].max() <= 1 + 1e-6
        np.testing.assert_allclose(out[0], van[0], rtol=1e-5)   # the score never changes
    assert not np.allclose(gbp[1], van[1])                      # guided ReLUs change the gradient
    assert not model64.cloner.guided                             # and are switched off again
    d = L.localize(model64, x, "discrepancy")
    assert [a.shape for a in d] == [(2,), (2, 1, 8, 8), (2, 1, 4, 4), (2, 1, 2, 2)]


def _brute_force_paper_auc(maps, gt):
    """Independent transcription of compute_localization_auc with scipy morphology (cv2's border
    convention: erosion sees 1 outside the image, dilation 0) and numpy's trapezoid."""
    from scipy import ndimage
    ell = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)    # cv2 MORPH_ELLIPSE 3x3
    tpr, fpr = [], []
    for k in range(1000):
        t = 0.001 * k
        b = np.zeros(maps.shape)
        for i in range(len(maps)):
            e = ndimage.binary_erosion(maps[i] >= t, ell, border_value=1)
            b[i] = ndimage.binary_dilation(e, ell, border_value=0)
        tpr.append((b * gt).sum() / gt.sum())
        fpr.append((b * (1 - gt)).sum() / (1 - gt).sum())
    fpr, tpr = np.array(fpr), np.array(tpr)
    return float(-np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))   # fpr decreases with t


def test_paper_localization_auroc_against_brute_force():
    rng = np.random.default_rng(0)
    gt = np.zeros((3, 32, 32))
    gt[0, 5:15, 5:15] = 1
    gt[1, 20:30, 2:12] = 1
    gt[2, 0:6, 26:32] = 1
    gt[:, :, :] = np.clip(gt + 0.5 * np.roll(gt, 1, axis=2) * (gt == 0), 0, 1)   # soft edges
    maps = np.clip(0.6 * gt + 0.5 * rng.random(gt.shape), 0, 1)
    ours = L.paper_localization_auroc(maps, gt)
    assert ours == pytest.approx(_brute_force_paper_auc(maps, gt), abs=1e-9)
    assert 0.5 < ours < 1.0
    # a perfect map of large blobs scores ~1, an inverted one low
    perfect = (gt > 0.9).astype(float)
    assert L.paper_localization_auroc(perfect, (gt > 0.9).astype(float)) > 0.97   # the opening trims corners
    assert L.paper_localization_auroc(1 - perfect, (gt > 0.9).astype(float)) < 0.2
    assert L.paper_localization_auroc(maps, np.zeros_like(gt)) is None


def test_soft_masks_are_bilinear_and_only_anomalous(syn_root):
    from shared_data.dataset import MVTecAD
    ds = MVTecAD(syn_root, "brick", "test", 32, None, None, None)
    idx, gt = L.soft_masks(ds, 32)
    assert idx == [i for i, s in enumerate(ds.samples) if s.label == 1]
    assert gt.shape == (len(idx), 32, 32) and gt.min() >= 0 and gt.max() <= 1
    assert gt.max() == 1.0
