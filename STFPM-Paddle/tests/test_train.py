import os

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from stfpm_helpers import CATEGORY, IMAGE_SIZE  # noqa: E402

from adcommon import cli  # noqa: E402
from adcommon.checkpoint import load_checkpoint, training_state  # noqa: E402
from adcommon.method import pipeline  # noqa: E402
from shared_data.dataset import ImageCache, MVTecAD  # noqa: E402
from stfpm import engine  # noqa: E402
from stfpm.loss import stfpm_loss  # noqa: E402
from stfpm.model import STFPM  # noqa: E402


def _model(seed=0):
    cli.set_seed(seed)
    return STFPM("resnet18", pretrained="none", image_size=IMAGE_SIZE)


def _data(root, model):
    a = model.model_args
    kw = dict(image_size=IMAGE_SIZE, crop_size=None, mean=a["mean"], std=a["std"])
    return (MVTecAD(root, CATEGORY, "train", subset="fit", **kw),
            MVTecAD(root, CATEGORY, "train", subset="holdout", **kw))


def _train(root, out, epochs, resume=None, seed=0):
    model = engine.build(resume["model_args"]) if resume else _model(seed)
    fit, hold = _data(root, model)
    stats = engine.train(model, fit, hold, out, CATEGORY, engine.TrainSettings(epochs=epochs, batch_size=4, seed=seed),
                         resume, log=lambda m: None)
    return model, stats


def _numpy_state(layer):
    return {k: v.numpy().copy() for k, v in layer.state_dict().items()}


def test_eval_forward_returns_three_layer_maps():
    model = _model()
    model.eval()
    out = model(paddle.randn([2, 3, IMAGE_SIZE, IMAGE_SIZE]))
    assert [list(o.shape) for o in out] == [[2, 1, 16, 16], [2, 1, 8, 8], [2, 1, 4, 4]]
    assert all(float(o.min()) >= 0 for o in out)


def test_one_step_lowers_the_loss_on_a_fixed_batch():
    model = _model()
    model.train()
    x = paddle.randn([4, 3, IMAGE_SIZE, IMAGE_SIZE])
    opt = paddle.optimizer.Momentum(learning_rate=0.4, momentum=0.9, parameters=model.student.parameters(),
                                    weight_decay=1e-4)  # the paper's optimiser
    before = stfpm_loss(*model.features(x))
    before.backward()
    opt.step()
    opt.clear_grad()
    with paddle.no_grad():
        after = stfpm_loss(*model.features(x))
    assert float(after) < float(before)


def test_teacher_never_changes_and_student_does(syn_root, tmp_path):
    model = _model()
    teacher0, student0 = _numpy_state(model.teacher), _numpy_state(model.student)
    fit, hold = _data(syn_root, model)
    engine.train(model, fit, hold, str(tmp_path), CATEGORY, engine.TrainSettings(epochs=1, batch_size=4, seed=0),
                 log=lambda m: None)
    for k, v in _numpy_state(model.teacher).items():  # weights and BN running statistics
        np.testing.assert_array_equal(v, teacher0[k], err_msg=k)
    assert any(not np.array_equal(v, student0[k]) for k, v in _numpy_state(model.student).items())
    assert all(p.stop_gradient for p in model.teacher.parameters())


def test_training_is_deterministic_with_a_seed(syn_root, tmp_path):
    a, _ = _train(syn_root, str(tmp_path / "a"), 1)
    b, _ = _train(syn_root, str(tmp_path / "b"), 1)
    sa, sb = _numpy_state(a.student), _numpy_state(b.student)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


def test_resume_continues_from_the_last_epoch(syn_root, tmp_path):
    straight, stats = _train(syn_root, str(tmp_path / "straight"), 2)
    out = str(tmp_path / "resumed")
    _train(syn_root, out, 1)
    last = training_state(os.path.join(out, "last.pdparams"), engine.METHOD)
    assert last["progress"]["epoch"] == 1 and last["optimizer"]
    resumed, rstats = _train(syn_root, out, 2, resume=last)
    assert [h["epoch"] for h in rstats["history"]] == [1, 2]
    assert rstats["history"][1]["loss"] == pytest.approx(stats["history"][1]["loss"], rel=1e-6)
    s1, s2 = _numpy_state(straight.student), _numpy_state(resumed.student)
    for k in s1:  # same batches, same velocities: the same weights as an uninterrupted run
        np.testing.assert_allclose(s2[k], s1[k], rtol=1e-6, atol=1e-7, err_msg=k)


def test_checkpoint_round_trip(trained):
    path = os.path.join(trained, CATEGORY, "model.pdparams")
    model, ck = pipeline.load(engine, path)  # set_state_strict: raises on any missing or unexpected key
    own = set(model.state_dict())
    assert own == set(ck["state_dict"]) and any(k.startswith("teacher.") for k in own)
    assert any(k.startswith("student.") for k in own)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), np.asarray(ck["state_dict"][k]), err_msg=k)
    a = ck["model_args"]
    assert a["postprocess"] == engine.postprocess_spec(IMAGE_SIZE)
    assert a["postprocess"]["map_outputs"] == [0, 1, 2] and a["postprocess"]["sigma"] is None
    assert ck["threshold"] is not None and len(ck["vis_range"]) == 2
    assert ck["selected_epoch"] == ck["train"]["selected_epoch"] and ck["train"]["n_holdout"] == 2
    for f in ("model.pdparams", "last.pdparams", "args.yml", "train.log"):
        assert os.path.isfile(os.path.join(trained, CATEGORY, f)), f
    assert not [f for f in os.listdir(os.path.join(trained, CATEGORY)) if ".tmp" in f]


def test_selected_epoch_is_the_lowest_held_out_score(trained):
    ck = load_checkpoint(os.path.join(trained, CATEGORY, "model.pdparams"), engine.METHOD)
    hist = ck["train"]["history"]
    best = min(hist, key=lambda h: h["holdout_score"])
    assert ck["selected_epoch"] == best["epoch"] and ck["holdout_score"] == pytest.approx(best["holdout_score"])


def test_efficientnet_student_trains_like_the_official_resnet_student():
    import paddle.nn as nn
    model = STFPM("efficientnet_lite0", pretrained="none", image_size=IMAGE_SIZE)
    s_bn = [m._momentum for m in model.student.sublayers() if isinstance(m, nn.BatchNorm2D)]
    t_bn = [m._momentum for m in model.teacher.sublayers() if isinstance(m, nn.BatchNorm2D)]
    assert set(s_bn) == {0.9} and set(t_bn) == {0.99}  # teacher keeps its own (frozen anyway)
    assert all(b.drop_connect == 0 for b in model.student.net._blocks)
    assert model.model_args["mean"] == [0.5, 0.5, 0.5]  # the backbone's own normalisation
    model.eval()
    out = model(paddle.randn([1, 3, IMAGE_SIZE, IMAGE_SIZE]))
    assert [list(o.shape) for o in out] == [[1, 1, 16, 16], [1, 1, 8, 8], [1, 1, 4, 4]]


@pytest.mark.parametrize("compiled,cache", [(True, True), (False, False)])
def test_fast_paths_train_the_same_numbers(syn_root, tmp_path, monkeypatch, compiled, cache):
    """The teacher cache and the compiled (static oneDNN) student give the eager reference's
    losses, weights and BN statistics, to float noise. That noise is larger than 1e-6 here: a 1e-6
    relative change of the input alone moves single gradient entries of this random-init ResNet by
    up to a few percent (ReLU masks flip), and lr 0.4 carries that into the weights: the yardstick is
    the eager run on inputs changed by 1e-6."""
    from adcommon.method.compiled import available
    if compiled and not available():
        pytest.skip("static oneDNN training needs Paddle >= 3 on CPU")

    def run(out, jitter=0.0, **kw):
        model = _model(0)
        fit, hold = _data(syn_root, model)
        if jitter:   # a 1e-6 relative change of every input: the yardstick of float noise
            real_batch = ImageCache.batch
            noise = np.random.default_rng(1)
            monkeypatch.setattr(ImageCache, "batch", lambda self, idx: real_batch(self, idx) * (
                1 + jitter * noise.standard_normal((len(idx), 3, IMAGE_SIZE, IMAGE_SIZE))).astype(np.float32))
        stats = engine.train(model, fit, hold, str(out), CATEGORY,
                             engine.TrainSettings(epochs=2, batch_size=4, seed=0, **kw), log=lambda m: None)
        return [h["loss"] for h in stats["history"]], _numpy_state(model.student), stats

    from adcommon.tools.testing import assert_within_float_noise
    ref_loss, ref_state, _ = run(tmp_path / "ref", compile=False, cache_teacher=False)
    loss, state, stats = run(tmp_path / "fast", compile=compiled, cache_teacher=cache)
    assert stats["compiled"] is compiled and stats["teacher_cached"] is cache
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-4)
    _, noisy_state, _ = run(tmp_path / "jitter", jitter=1e-6, compile=False, cache_teacher=False)
    assert_within_float_noise(state, ref_state, noisy_state)   # weights and BN running statistics
