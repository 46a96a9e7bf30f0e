"""ProjectionNet: where SSPCAB goes, the outputs in training and eval, the loss terms, freezing, rebuilding."""
import numpy as np
import pytest

paddle = pytest.importorskip("paddle")
import paddle.nn.functional as F  # noqa: E402

from adbase import UserError  # noqa: E402
from sspcab import engine  # noqa: E402
from sspcab.loss import class_labels, total_loss  # noqa: E402
from sspcab.model import ProjectionNet  # noqa: E402
from sspcab.sspcab import SSPCAB  # noqa: E402


@pytest.fixture(scope="module")
def r18():
    paddle.seed(0)
    return ProjectionNet("resnet18", "none", image_size=128)


@pytest.mark.smoke
def test_sspcab_replaces_the_penultimate_convolution(r18):
    net = r18.backbone.net
    assert isinstance(net.layer4[1].conv1, SSPCAB) and r18.sspcab is net.layer4[1].conv1
    assert isinstance(net.layer4[1].conv2, paddle.nn.Conv2D)            # the last conv stays
    assert isinstance(net.layer4[0].conv1, paddle.nn.Conv2D)
    assert r18.sspcab.channels == 512 and r18.model_args["sspcab_site"] == "layer4[-1].conv1"
    base = ProjectionNet("resnet18", "none", sspcab=False, image_size=64)   # baseline: any size
    assert base.sspcab is None and isinstance(base.backbone.net.layer4[1].conv1, paddle.nn.Conv2D)


def test_efficientnet_site():
    m = ProjectionNet("efficientnet_lite0", "none", image_size=128)
    assert isinstance(m.backbone.net._blocks[15]._depthwise_conv, SSPCAB) and m.sspcab.channels == 1152
    assert m.model_args["embed_dim"] == 1280


def test_too_small_for_the_masked_kernel():
    with pytest.raises(UserError, match="too small for SSPCAB"):
        ProjectionNet("resnet18", "none", image_size=64)


def test_train_and_eval_outputs(r18):
    x = paddle.randn([6, 3, 128, 128])
    r18.train()
    emb, logits, (inp, out) = r18.train_forward(x)
    assert emb.shape == [6, 512] and logits.shape == [6, 3]
    assert inp.shape == out.shape == [6, 512, 4, 4]
    r18.eval()
    with paddle.no_grad():
        score, pmap = r18(x)
    assert score.shape == [6] and pmap.shape == [6, 1, 8, 8]   # layer3: stride 16
    assert r18._sspcab_io is None or r18._sspcab_io[0].shape[0] == 6    # eval passes record nothing new


def test_loss_terms(r18):
    r18.train()
    x = paddle.randn([6, 3, 128, 128])
    _, logits, io = r18.train_forward(x)
    y = class_labels(3, 2)
    loss, ce, rec = total_loss(logits, y, io, lam=0.1)
    np.testing.assert_allclose(float(ce), float(F.cross_entropy(logits, y)), rtol=1e-6)
    np.testing.assert_allclose(float(rec), float(((io[1] - io[0]) ** 2).mean()), rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(ce) + 0.1 * float(rec), rtol=1e-6)
    loss0, ce0, rec0 = total_loss(logits, y, None)
    assert float(rec0) == 0 and float(loss0) == float(ce0)
    # the reconstruction term trains SSPCAB (and what feeds it), not the head
    rec.backward()
    assert r18.sspcab.conv1.weight.grad is not None and float(r18.sspcab.conv1.weight.grad.abs().sum()) > 0
    assert r18.out.weight.grad is None or float(r18.out.weight.grad.abs().sum()) == 0
    r18.clear_gradients()


def test_freeze_keeps_new_layers_trainable(r18):
    trainable = {p.name for p in r18.parameters() if not p.stop_gradient}
    r18.set_backbone_trainable(False)
    new = {id(p) for p in r18.sspcab.parameters()}
    conv = r18.backbone.net.layer4[0].conv1.weight
    assert conv.stop_gradient and all(p.stop_gradient for p in r18.backbone.parameters() if id(p) not in new)
    assert not any(p.stop_gradient for p in r18.sspcab.parameters())
    assert r18.out.weight.stop_gradient is False and r18.head[0].weight.stop_gradient is False
    r18.set_backbone_trainable(True)
    # BatchNorm running statistics stay non-trainable parameters
    assert {p.name for p in r18.parameters() if not p.stop_gradient} == trainable


def test_rebuild_from_model_args_is_strict(r18):
    from adcommon.checkpoint import set_state_strict
    m2 = engine.build(r18.model_args)
    set_state_strict(m2, r18.state_dict())                                 # no missing / unexpected keys
    for k in ("density_mean", "density_precision", "patch_mean", "patch_precision", "map_scale"):
        assert k in m2.state_dict()
    with pytest.raises(UserError):
        set_state_strict(engine.build(dict(r18.model_args, sspcab=False)), r18.state_dict())


def test_lr_schedule():
    lrs = [engine.lr_at(s, 100, 0.03) for s in range(100)]
    assert lrs[0] == 0.03 and abs(lrs[50] - 0.015) < 1e-12 and lrs[-1] < 1e-4
    assert all(a > b for a, b in zip(lrs, lrs[1:]))                      # one decay, no restarts
