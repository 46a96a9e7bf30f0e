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
        acc.add(paddle.to_tensor(e[i:i + 4]))
    mean, cov = acc.mean_cov(eps=0.01)
    for p in range(7):
        ref = np.cov(e[:, :, p].astype(np.float64), rowvar=False) + 0.01 * np.eye(5)
        np.testing.assert_allclose(cov.numpy()[p], ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(mean.numpy()[p], e[:, :, p].mean(0), rtol=1e-5, atol=1e-4)


def test_merged_equals_fitting_everything_at_once():
    e = _features(30, 4, 6, 1)
    a, b, both = GaussianAccumulator(4, 6), GaussianAccumulator(4, 6), GaussianAccumulator(4, 6)
    a.add(paddle.to_tensor(e[:20]))
    b.add(paddle.to_tensor(e[20:] + 3.0 - 3.0))
    both.add(paddle.to_tensor(e))
    m1, c1 = a.merged(b).mean_cov()
    m2, c2 = both.mean_cov()
    np.testing.assert_allclose(m1.numpy(), m2.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(c1.numpy(), c2.numpy(), rtol=1e-4, atol=1e-4)


def test_inverse_and_too_few_images():
    e = _features(12, 3, 4, 2)
    acc = GaussianAccumulator(3, 4)
    acc.add(paddle.to_tensor(e))
    mean, inv = acc.mean_inv_cov(chunk=3)   # chunking across positions
    _, cov = acc.mean_cov()
    eye = np.einsum("pij,pjk->pik", cov.numpy().astype(np.float64), inv.numpy().astype(np.float64))
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(3), eye.shape), atol=1e-4)
    one = GaussianAccumulator(3, 4)
    one.add(paddle.to_tensor(e[:1]))
    with pytest.raises(ValueError, match="at least 2"):
        one.mean_cov()
