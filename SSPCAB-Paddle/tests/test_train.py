"""Training: seeded determinism, resume = uninterrupted run, the backbone freeze, what train.py writes."""
import os

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from sspcab_helpers import SIZE  # noqa: E402

from adcommon import cli  # noqa: E402
from adcommon.checkpoint import load_checkpoint, training_state  # noqa: E402
from adcommon.method import pipeline  # noqa: E402
from sspcab import engine  # noqa: E402
from sspcab.model import ProjectionNet  # noqa: E402


def _images(syn_root):
    from shared_data.dataset import ImageCache, MVTecAD
    return ImageCache(MVTecAD(syn_root, "brick", "train", image_size=SIZE)).rgb[:4]


def _run(images, seed=0, steps=3, backbone="resnet18", pretrained="none", out=None, resume=False, **kw):
    cli.set_seed(seed)
    m = ProjectionNet(backbone, pretrained, image_size=SIZE)
    state = training_state(os.path.join(out, "last.pdparams"), engine.METHOD, lambda s: None) if resume else None
    stats = engine.train(m, images, engine.TrainSettings(steps=steps, batch_size=2, seed=seed, **kw), out,
                         lambda s: None, state)
    return m, stats


def _same_weights(a, b, atol=0.0):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_allclose(sa[k].numpy(), sb[k].numpy(), atol=atol, rtol=0, err_msg=k)


@pytest.mark.slow
def test_same_seed_same_model(syn_root):
    imgs = _images(syn_root)
    a, sa = _run(imgs)
    b, sb = _run(imgs)
    _same_weights(a, b)
    assert [r["loss"] for r in sa["history"]] == [r["loss"] for r in sb["history"]]
    c, _ = _run(imgs, seed=1)
    assert not np.allclose(a.out.weight.numpy(), c.out.weight.numpy())


@pytest.mark.slow
def test_resume_equals_uninterrupted_run(syn_root, tmp_path, monkeypatch):
    imgs = _images(syn_root)
    full, _ = _run(imgs, steps=4)
    state = str(tmp_path / "last.pdparams")
    out = str(tmp_path)
    real = engine.CutPasteSteps.__getitem__

    def crash_at_step_2(self, k):
        if self.first + k // self.B >= 2:
            raise KeyboardInterrupt
        return real(self, k)

    monkeypatch.setattr(engine.CutPasteSteps, "__getitem__", crash_at_step_2)
    with pytest.raises(KeyboardInterrupt):
        _run(imgs, steps=4, out=out, save_interval=2)
    monkeypatch.setattr(engine.CutPasteSteps, "__getitem__", real)
    ck = load_checkpoint(state, engine.METHOD)
    assert ck["kind"] == "train_state" and ck["progress"]["step"] == 2
    resumed, stats = _run(imgs, steps=4, out=out, save_interval=2, resume=True)
    assert stats["start_step"] == 2
    _same_weights(full, resumed, atol=1e-6)
    with pytest.raises(cli.UserError, match="cannot resume"):              # another run's state
        _run(imgs, steps=5, out=out, resume=True)


@pytest.mark.slow
def test_pretrained_backbone_frozen_for_the_first_steps(syn_root):
    imgs = _images(syn_root)
    cli.set_seed(0)
    m = ProjectionNet("efficientnet_lite0", "imagenet", image_size=SIZE)
    conv = m.backbone.net._blocks[3]._project_conv.weight.numpy().copy()
    head = m.head[0].weight.numpy().copy()
    ssp = m.sspcab.conv1.weight.numpy().copy()
    engine.train(m, imgs, engine.TrainSettings(steps=2, batch_size=2, freeze_steps=2), log=lambda s: None)
    np.testing.assert_array_equal(m.backbone.net._blocks[3]._project_conv.weight.numpy(), conv)
    assert not np.array_equal(m.head[0].weight.numpy(), head)
    assert not np.array_equal(m.sspcab.conv1.weight.numpy(), ssp)
    assert not any(p.stop_gradient for p in m.backbone.net._blocks[3].parameters() if "weight" in p.name
                   and "_bn" not in p.name)                                    # unfrozen afterwards


@pytest.mark.slow
def test_train_script_outputs(trained):
    out = os.path.join(trained["output_dir"], "brick")
    assert {"model.pdparams", "args.yml", "train.log"} <= set(os.listdir(out))
    assert not os.path.exists(os.path.join(out, "last.pdparams"))             # superseded by the model
    ck = load_checkpoint(trained["ckpt"], engine.METHOD)
    a = ck["model_args"]
    assert ck["kind"] == "model" and a["sspcab"] and a["postprocess"]["score_output"] == 0
    assert ck["threshold"] is not None and ck["fit"]["n_holdout"] == 2 and ck["fit"]["n_gaussian"] == 10
    assert ck["train"]["steps"] == 3 and len(ck["train"]["history"]) == 3
    log = open(os.path.join(out, "train.log")).read()
    assert "step 3/3" in log and "threshold" in log
    model, _ = pipeline.load(engine, trained["ckpt"])
    assert float(model.density_precision.abs().sum()) > 0 and model.map_scale.numpy().reshape(-1)[0] > 0


@pytest.mark.slow
def test_workers_do_not_change_the_run(syn_root):
    """Batches are keyed by (seed, step, index): a DataLoader with workers trains the same model."""
    imgs = _images(syn_root)
    a, _ = _run(imgs, steps=2)
    b, _ = _run(imgs, steps=2, num_workers=1)
    _same_weights(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_lite0"])
def test_frozen_stages_keep_weights_and_bn_statistics(syn_root, backbone):
    """--frozen_stages layer3: the stem and stages 1-3 keep their weights and running statistics;
    the last stage, SSPCAB and the head learn."""
    imgs = _images(syn_root)
    cli.set_seed(0)
    before = {k: v.numpy().copy() for k, v in ProjectionNet(backbone, "none", image_size=SIZE).state_dict().items()}
    m, stats = _run(imgs, steps=2, backbone=backbone, frozen_stages="layer3")
    assert stats["frozen_stages"] == "layer3"
    after = {k: v.numpy() for k, v in m.state_dict().items()}
    frozen = ("backbone.net.conv1.", "backbone.net.bn1.", "backbone.net.layer1.", "backbone.net.layer3.") \
        if backbone == "resnet18" else ("backbone.net._conv_stem.", "backbone.net._bn0.", "backbone.net._blocks.0.",
                                        "backbone.net._blocks.10.")
    kept = [k for k in after if k.startswith(frozen)]
    assert kept and all(np.array_equal(after[k], before[k]) for k in kept)
    assert any(k.endswith("_mean") for k in kept)           # BN statistics included
    assert not np.array_equal(after["out.weight"], before["out.weight"])
    last = ("backbone.net.layer4.0.conv1.weight" if backbone == "resnet18"
            else "backbone.net._blocks.14._project_conv.weight")
    assert not np.array_equal(after[last], before[last])
