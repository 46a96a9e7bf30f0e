"""Networks: the cloner 'B' exactly as the reference builds it, the expert's outputs, the deployed forward."""
import math

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")
import paddle.nn as nn  # noqa: E402

from kdad.model import KDAD, Architecture, Cloner, Expert, cloner_cfg  # noqa: E402

PAPER_B = [16, 16, "M", 16, 128, "M", 16, 16, 256, "M", 16, 16, 512, "M", 16, 16, 512, "M"]


@pytest.mark.smoke
def test_cloner_b_layers_and_shapes_per_stage():
    cfg = cloner_cfg([128, 256, 512, 512])
    assert cfg == PAPER_B
    paddle.seed(0)
    c = Cloner(cfg)
    # docs/reference.md#kdad-networks: module list 0..38 and the 13 collected indices
    kinds = ["C" if isinstance(m, nn.Conv2D) else "B" if isinstance(m, nn.BatchNorm2D) else
             "R" if isinstance(m, nn.ReLU) else "M" for m in c.features]
    assert "".join(kinds) == "CBRCRM" "CBRCRM" "CBRCBRCRM" "CBRCBRCRM" "CBRCBRCRM"
    assert c.out_indices == [2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38]
    c.eval()
    outs = c(paddle.rand([2, 3, 128, 128]))
    shapes = [tuple(o.shape[1:]) for o in outs]
    assert shapes == [(16, 128, 128), (16, 64, 64), (16, 64, 64), (128, 32, 32), (16, 32, 32), (16, 32, 32),
                      (256, 16, 16), (16, 16, 16), (16, 16, 16), (512, 8, 8), (16, 8, 8), (16, 8, 8),
                      (512, 4, 4)]


def test_cloner_has_no_bias_and_xavier_uniform_init():
    paddle.seed(0)
    c = Cloner(PAPER_B)
    convs = [m for m in c.features if isinstance(m, nn.Conv2D)]
    assert len(convs) == 13
    for m in convs:
        assert m.bias is None
        cout, cin, k, _ = m.weight.shape
        bound = math.sqrt(6.0 / (cin * k * k + cout * k * k))   # torch.nn.init.xavier_uniform_
        w = m.weight.numpy()
        assert np.abs(w).max() <= bound + 1e-6
        assert np.abs(w).max() > 0.8 * bound                     # uniform over the whole range
    c2 = Cloner(PAPER_B, use_bias=True)
    assert all(m.bias is not None for m in c2.features if isinstance(m, nn.Conv2D))


def test_equal_network_size_is_vgg16_widths():
    assert cloner_cfg([128, 256, 512, 512], equal_network_size=True)[:6] == [64, 64, "M", 128, 128, "M"]
    m = KDAD(Architecture("vgg16", 64, equal_network_size=True), "none")
    assert [tuple(p.shape[1:]) for p in m.cloner_pools(paddle.rand([1, 3, 64, 64]))] == \
        [(128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]


def test_vgg16_expert_outputs_match_cloner_pools():
    paddle.seed(0)
    e = Expert("vgg16", "none")
    assert e.net.out_indices == [1, 4, 6, 9, 11, 13, 16, 18, 20, 23, 25, 27, 30]
    assert e.pool_channels == [128, 256, 512, 512]
    feats = e.net(paddle.rand([1, 3, 128, 128]))
    assert len(feats) == 13
    assert [tuple(f.shape[1:]) for f in e(paddle.rand([1, 3, 128, 128]))] == \
        [(128, 32, 32), (256, 16, 16), (512, 8, 8), (512, 4, 4)]
    assert all(p.stop_gradient for p in e.parameters())        # frozen


def test_efficientnet_expert_gets_a_matching_cloner():
    m = KDAD(Architecture("efficientnet_lite0", 64), "none")
    assert m.model_args["cloner_cfg"] == [16, 16, "M", 16, 24, "M", 16, 16, 40, "M", 16, 16, 112, "M",
                                          16, 16, 1280, "M"]
    pred, real = m.pools(paddle.rand([2, 3, 64, 64]))
    assert [p.shape for p in pred] == [r.shape for r in real]


def test_expert_stays_frozen_in_train_mode():
    m = KDAD(Architecture("vgg16", 64), "none")
    m.train()
    assert not m.expert.net.training and m.cloner.training
    assert all(p.stop_gradient for p in m.expert.parameters())
    learnable = [p for n, p in m.cloner.named_parameters() if not n.endswith(("_mean", "_variance"))]
    assert learnable and not any(p.stop_gradient for p in learnable)   # BN running statistics aside


def test_forward_is_the_deployed_output():
    paddle.seed(0)
    m = KDAD(Architecture("vgg16", 64), "none")
    m.eval()
    x = paddle.rand([2, 3, 64, 64])
    s, g = m(x)
    assert s.shape == [2] and g.shape == [2, 1, 64, 64]
    gm = g.numpy()
    assert gm.min() >= 0 and gm.max() <= 1 and np.isclose(gm.max(), 1.0)
    np.testing.assert_allclose(s.numpy(), m.score(x).numpy(), rtol=1e-6)
    m.deploy_map = "discrepancy"
    out = m(x)
    assert [tuple(o.shape) for o in out] == [(2,), (2, 1, 8, 8), (2, 1, 4, 4), (2, 1, 2, 2)]
    np.testing.assert_allclose(out[0].numpy(), s.numpy(), rtol=1e-6)


def test_bad_image_size_is_a_user_error():
    from adbase import UserError
    with pytest.raises(UserError, match="multiple of 32"):
        KDAD(Architecture("vgg16", 100), "none")


def test_a_signed_expert_gets_a_cloner_whose_pools_can_be_negative():
    """EfficientNet-Lite0's stage outputs are linear bottlenecks: about half of their values are below
    zero, which a cloner that ends every block in a ReLU can never match (README, root causes). Its
    cloner drops the ReLU before each pool (an Identity: parameter names unchanged); VGG-16's pools are
    ReLU'd, so its cloner stays the paper's."""
    from kdad import engine
    paddle.seed(0)
    x = paddle.rand([2, 3, 64, 64])
    lite = KDAD(Architecture("efficientnet_lite0", 64), "imagenet")
    assert lite.model_args["cloner_pools"] == "linear"
    pred, real = lite.pools(x)
    assert all(float((r < 0).astype("float32").mean()) > 0.2 for r in real[:3])   # the expert: signed
    assert all(float(p.min()) < 0 for p in pred)
    relu = KDAD(Architecture("efficientnet_lite0", 64, cloner_pools="relu"), "none")
    assert all(float(p.min()) >= 0 for p in relu.cloner_pools(x))
    assert list(relu.cloner.state_dict()) == list(lite.cloner.state_dict())
    vgg = KDAD(Architecture("vgg16", 64), "none")
    assert vgg.model_args["cloner_pools"] == "relu" and all(float(p.min()) >= 0 for p in vgg.cloner_pools(x))
    # checkpoints written before the option trained the ReLU'd cloner
    old = {k: v for k, v in lite.model_args.items() if k != "cloner_pools"}
    assert engine.build(old).model_args["cloner_pools"] == "relu"
    with pytest.raises(Exception, match="cloner_pools"):
        KDAD(Architecture("efficientnet_lite0", 64, cloner_pools="tanh"), "none")
