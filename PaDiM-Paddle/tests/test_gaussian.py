import numpy as np
import paddle
import pytest

from padim.gaussian import GaussianAccumulator


def _features(n, d, p, seed):
    rng = np.random.default_rng(seed)
    # a large common offset: the shifted sums must keep float32 accurate
    return (rng.standard_normal((n, d, p)) * rng.uniform(0.5, 2, (1, d, 1)) + 50.0).astype(np.float32)


@pytest.mark.smoke
def test_mean_cov_equal_numpy_cov_over_batches():
    e = _features(23, 5, 7, 0)
    acc = GaussianAccumulator(5, 7)
    for i in range(0, 23, 4):   # uneven batches
        acc.add(paddle.to_tensor(e[i:i + 4]), chunk=3)   # chunks of positions too
    mean, cov = acc.mean_cov(eps=0.01)
    for p in range(7):
        ref = np.cov(e[:, :, p].astype(np.float64), rowvar=False) + 0.01 * np.eye(5)
        np.testing.assert_allclose(cov[p], ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(mean[p], e[:, :, p].mean(0), rtol=1e-5, atol=1e-4)


def test_inverse_and_too_few_images():
    e = _features(12, 3, 4, 2)
    acc = GaussianAccumulator(3, 4)
    acc.add(paddle.to_tensor(e))
    inv = paddle.zeros([4, 3, 3], "float32")
    buf = inv.data_ptr() if hasattr(inv, "data_ptr") else None
    assert acc.write_inverse(inv, chunk=3) is inv   # chunking across positions, written in place
    if buf is not None:
        assert inv.data_ptr() == buf
    _, cov = acc.mean_cov(chunk=3)
    eye = np.einsum("pij,pjk->pik", cov.astype(np.float64), inv.numpy().astype(np.float64))
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(3), eye.shape), atol=1e-4)
    one = GaussianAccumulator(3, 4)
    one.add(paddle.to_tensor(e[:1]))
    with pytest.raises(ValueError, match="at least 2"):
        one.mean_cov()
    with pytest.raises(ValueError, match="at least 2"):
        one.write_inverse(paddle.zeros([4, 3, 3], "float32"))


def test_fit_with_holdout_ends_with_the_gaussians_of_all_images():
    """engine.fit scores held-out normals with Gaussians fitted without them, then adds them: the
    final mean and inverse covariance equal a fit on every image, and the threshold is set."""
    from padim import engine
    from padim.model import PaDiM
    paddle.seed(0)
    rng = np.random.default_rng(3)
    images = rng.standard_normal((14, 3, 64, 64)).astype(np.float32)
    model = PaDiM("resnet18", pretrained="none", d=6, image_size=64, crop_size=64)
    quiet = lambda *_: None  # noqa: E731
    stats = engine.fit(model, list(images[:10]), list(images[10:]), batch_size=4, log=quiet)
    assert stats["n_gaussian"] == 14 and stats["threshold"] is not None and len(stats["holdout_scores"]) == 4
    mean, inv = model.mean.numpy().copy(), model.inv_cov.numpy().copy()
    engine.fit(model, list(images), None, batch_size=4, log=quiet)
    np.testing.assert_allclose(mean, model.mean.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(inv, model.inv_cov.numpy(), rtol=1e-3, atol=1e-3)
