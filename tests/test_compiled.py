"""The compiled (static graph + oneDNN) training forward gives the eager step's numbers."""
import numpy as np
import pytest

paddle = pytest.importorskip("paddle")
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

from adcommon.method import compiled  # noqa: E402

needs_compiled = pytest.mark.skipif(not compiled.available(), reason="static oneDNN training needs Paddle >= 3 on CPU")


class SmallNet(nn.Layer):
    """conv-BN-ReLU-maxpool-conv-BN(-ReLU) with two outputs: what the compiled path must handle
    (a max-pool, BN statistics, an output straight from a BN)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2D(3, 8, 3, padding=1, bias_attr=False)
        self.b1 = nn.BatchNorm2D(8)
        self.pool = nn.MaxPool2D(3, 2, 1)
        self.c2 = nn.Conv2D(8, 16, 3, padding=1, bias_attr=False)
        self.b2 = nn.BatchNorm2D(16, momentum=0.8)
        self.unused = nn.BatchNorm2D(4)   # never runs: its statistics must stay put

    def forward(self, x):
        a = self.pool(F.relu(self.b1(self.c1(x))))
        return [a, self.b2(self.c2(a))]


def _train(enabled, steps=4):
    paddle.seed(0)
    net = SmallNet()
    net.train()
    fwd = compiled.CompiledForward(net, enabled=enabled)
    opt = paddle.optimizer.Momentum(0.1, 0.9, parameters=net.parameters(), weight_decay=1e-4)
    rng = np.random.default_rng(0)
    xs = [paddle.to_tensor(rng.standard_normal((2, 3, 12, 12)).astype("float32")) for _ in range(2)]
    losses = []
    for i in range(steps):
        a, b = fwd(xs[i % 2])
        loss = (a ** 2).mean() + ((b - 1.0) ** 2).mean()
        opt.clear_grad()
        fwd.backward(loss)
        opt.step()
        losses.append(float(loss))
    return losses, {k: v.numpy() for k, v in net.state_dict().items()}


@needs_compiled
def test_compiled_matches_eager():
    l_eager, sd_eager = _train(False)
    l_comp, sd_comp = _train(True)
    np.testing.assert_allclose(l_comp, l_eager, rtol=1e-5)
    assert l_comp[-1] < l_comp[0]
    for k in sd_eager:  # weights, and BN running mean / variance (biased, momentum per layer)
        np.testing.assert_allclose(sd_comp[k], sd_eager[k], rtol=1e-4, atol=1e-6, err_msg=k)
    assert np.all(sd_comp["unused._mean"] == 0) and np.all(sd_comp["unused._variance"] == 1)
    assert not np.allclose(sd_comp["b2._mean"], 0)   # the statistics did move


def test_disabled_is_the_eager_layer():
    net = SmallNet()
    fwd = compiled.CompiledForward(net, enabled=False)
    x = paddle.ones([1, 3, 8, 8])
    out = fwd(x)
    assert len(out) == 2 and list(out[1].shape) == [1, 16, 4, 4]
    assert compiled.resolve(False, True) is False
