"""Gaussian density estimation: against sklearn's LedoitWolf and scipy's mahalanobis, in and out of the graph."""
import numpy as np
import pytest
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis
from sklearn.covariance import LedoitWolf

from sspcab.density import fit_gaussian, l2_normalize, mahalanobis, subsample


def _data(n=40, d=16, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((d, d))
    return rng.standard_normal((n, d)) @ a + rng.standard_normal(d)      # correlated, shifted


def test_fit_matches_sklearn_and_scipy():
    train, test = l2_normalize(_data()), l2_normalize(_data(10, seed=1))
    mean, prec = fit_gaussian(train)
    lw = LedoitWolf().fit(train)
    np.testing.assert_allclose(mean, train.mean(0), atol=1e-12)
    np.testing.assert_allclose(prec, lw.precision_, rtol=1e-10)
    want = [scipy_mahalanobis(x, train.mean(0), lw.precision_) for x in test]
    np.testing.assert_allclose(mahalanobis(test, mean, prec), want, rtol=1e-10)


def test_fewer_samples_than_dimensions_stay_finite():
    """n < d (e.g. 160 images, 512 dims): Ledoit-Wolf shrinkage keeps the precision finite."""
    x = l2_normalize(_data(12, 64))
    mean, prec = fit_gaussian(x)
    assert np.isfinite(prec).all() and np.all(np.linalg.eigvalsh(prec) > 0)
    assert np.isfinite(mahalanobis(x, mean, prec)).all()


def test_l2_normalize_and_subsample():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(l2_normalize(x), [[0.6, 0.8], [0.0, 0.0]])
    big = np.arange(100.0)[:, None]
    s = subsample(big, 10, seed=1)
    assert len(s) == 10 and len(np.unique(s)) == 10 and np.array_equal(s, subsample(big, 10, seed=1))
    assert subsample(big, 200) is big
    with pytest.raises(ValueError):
        fit_gaussian(x[:1])


@pytest.mark.smoke
def test_in_graph_scores_equal_numpy():
    """ProjectionNet.score / patch_map (paddle, float32 buffers) = the numpy GDE of normalised embeddings."""
    paddle = pytest.importorskip("paddle")
    from sspcab.model import ProjectionNet
    paddle.seed(0)
    m = ProjectionNet("resnet18", "none", sspcab=False, image_size=64, patch_layer="layer4")  # 512-d patches
    train = l2_normalize(np.abs(_data(80, 512)))
    mean, prec = fit_gaussian(train)
    for buf, v in ((m.density_mean, mean), (m.density_precision, prec), (m.patch_mean, mean),
                   (m.patch_precision, prec)):
        buf.set_value(v.astype(np.float32))
    pooled = np.abs(_data(6, 512, seed=2)).astype(np.float32) * 3.0      # unnormalised, like backbone features
    want = mahalanobis(l2_normalize(pooled), mean, prec)
    got = m.score(paddle.to_tensor(pooled)).numpy()
    np.testing.assert_allclose(got, want, rtol=2e-3)
    fmap = pooled.reshape(6, 512, 1, 1).repeat(2, axis=2).repeat(3, axis=3)   # (N, C, 2, 3)
    m.map_scale.set_value(np.array([2.0], np.float32))
    pm = m.patch_map(paddle.to_tensor(fmap)).numpy()
    assert pm.shape == (6, 1, 2, 3)
    np.testing.assert_allclose(pm[:, 0, 1, 2], 2.0 * want, rtol=2e-3)
