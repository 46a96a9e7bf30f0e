"""The distillation loss (paper eq. 1-3) against a numpy transcription of the reference's MseDirectionLoss."""
import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from kdad.loss import distill_loss, distill_score, flat_cosine  # noqa: E402


def _np_reference(preds, reals, lamda, direction_only=False):
    """sum_k mean_b(1 - cos(flat p_k, flat r_k)) + lamda * sum_k mean((p_k - r_k)^2) (MSELoss, mean over all)."""
    total = 0.0
    for p, r in zip(preds, reals):
        a, b = p.reshape(len(p), -1).astype(np.float64), r.reshape(len(r), -1).astype(np.float64)
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        total += np.mean(1 - cos)
        if not direction_only:
            total += lamda * np.mean((a - b) ** 2)
    return total


def _features(rng, n=3):
    shapes = [(128, 8, 8), (256, 4, 4), (512, 2, 2), (512, 1, 1)]
    preds = [rng.standard_normal((n,) + s).astype(np.float32) for s in shapes]
    reals = [np.maximum(p + 0.5 * rng.standard_normal(p.shape), 0).astype(np.float32) for p in preds]
    return preds, reals


@pytest.mark.smoke
@pytest.mark.parametrize("direction_only", [False, True])
def test_loss_matches_numpy_reference(direction_only):
    rng = np.random.default_rng(0)
    preds, reals = _features(rng)
    t = lambda xs: [paddle.to_tensor(x) for x in xs]  # noqa: E731
    ours = float(distill_loss(t(preds), t(reals), 0.5, direction_only))
    np.testing.assert_allclose(ours, _np_reference(preds, reals, 0.5, direction_only), rtol=1e-5)
    # per-image scores: the batch mean is the loss, each one is the reference's single-image loss
    s = distill_score(t(preds), t(reals), 0.5, direction_only).numpy()
    for i in range(3):
        one = _np_reference([p[i:i + 1] for p in preds], [r[i:i + 1] for r in reals], 0.5, direction_only)
        np.testing.assert_allclose(s[i], one, rtol=1e-5)


def test_identical_features_give_zero_and_cosine_is_scale_free():
    rng = np.random.default_rng(1)
    a = paddle.to_tensor(rng.random((2, 4, 3, 3)).astype(np.float32))
    assert float(distill_loss([a], [a])) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(flat_cosine(a, 3.0 * a).numpy(), 1.0, rtol=1e-6)


def test_detection_score_uses_pool3_to_pool5_only():
    from kdad.model import KDAD, Architecture
    paddle.seed(0)
    m = KDAD(Architecture("vgg16", 64), "none")
    m.eval()
    x = paddle.rand([2, 3, 64, 64])
    pred, real = m.pools(x)
    np.testing.assert_allclose(m.score(x).numpy(), distill_score(pred[1:], real[1:], 0.5).numpy(), rtol=1e-6)
    assert not np.allclose(m.score(x).numpy(), distill_score(pred, real, 0.5).numpy())
