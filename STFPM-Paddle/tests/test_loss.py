import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from stfpm.loss import layer_distance, stfpm_loss  # noqa: E402

SHAPES = [(2, 8, 16, 16), (2, 16, 8, 8), (2, 32, 4, 4)]  # a small 3-level pyramid


def numpy_loss(ts, ss):
    """docs/reference.md#stfpm-loss written out: per layer normalise over channels, sum_c (t-s)^2, mean,
    sum over layers."""
    total = 0.0
    for t, s in zip(ts, ss):
        t = t / np.maximum(np.sqrt((t.astype(np.float64) ** 2).sum(1, keepdims=True)), 1e-12)
        s = s / np.maximum(np.sqrt((s.astype(np.float64) ** 2).sum(1, keepdims=True)), 1e-12)
        total += ((t - s) ** 2).sum(1).mean()
    return total


def _pyramid(seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


@pytest.mark.smoke
def test_loss_equals_numpy_reference():
    ts, ss = _pyramid(0), _pyramid(1)
    got = float(stfpm_loss([paddle.to_tensor(t) for t in ts], [paddle.to_tensor(s) for s in ss]))
    assert got == pytest.approx(numpy_loss(ts, ss), rel=1e-5)


@pytest.mark.smoke
def test_layer_distance_is_per_position_and_has_no_half():
    t = _pyramid(0)[0]
    d = layer_distance(paddle.to_tensor(t), paddle.to_tensor(-t)).numpy()  # opposite unit vectors
    assert d.shape == (2, 1, 16, 16)
    np.testing.assert_allclose(d, 4.0, rtol=1e-5)  # ||u - (-u)||^2 = 4; the paper's 0.5 would give 2
    same = layer_distance(paddle.to_tensor(t), paddle.to_tensor(3.0 * t)).numpy()  # scale-invariant
    np.testing.assert_allclose(same, 0.0, atol=1e-6)


def test_loss_gradient_reaches_student_only():
    ts, ss = _pyramid(0), _pyramid(1)
    t = [paddle.to_tensor(a, stop_gradient=True) for a in ts]
    s = [paddle.to_tensor(a, stop_gradient=False) for a in ss]
    stfpm_loss(t, s).backward()
    assert all(x.grad is not None and float(x.grad.abs().sum()) > 0 for x in s)
    assert all(x.grad is None for x in t)
