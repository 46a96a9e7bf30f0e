"""train.py end to end: its files, the held-out threshold, and --resume repeating an uninterrupted run."""
import os

import numpy as np
import pytest
import yaml
from kdad_testutil import TRAIN_ARGS, run_script


def test_train_writes_a_self_describing_checkpoint(trained):
    from adcommon.method import pipeline
    from kdad import engine
    root, out = trained
    d = os.path.join(out, "brick")
    for f in ("model.pdparams", "last.pdparams", "args.yml", "train.log"):
        assert os.path.isfile(os.path.join(d, f)), f
    model, ck = pipeline.load(engine, os.path.join(d, "model.pdparams"))
    assert set(model.state_dict()) == set(ck["state_dict"])
    a = ck["model_args"]
    assert a["backbone"] == "vgg16" and a["image_size"] == 64 and a["lamda"] == 0.5 and a["mean"] is None
    assert ck["threshold"] is not None and ck["train"]["n_holdout"] == 2   # 20 % of 10 normal images
    assert ck["map_thresholds"]["gradients"] == 0.5 and ck["vis_ranges"]["gradients"] == [0.0, 1.0]
    assert ck["map_thresholds"]["discrepancy"] is not None
    hist = ck["train"]["history"]
    assert [h["epoch"] for h in hist] == [1, 2] and all("holdout_mean_score" in h for h in hist)
    log = open(os.path.join(d, "train.log")).read()
    assert "[Train] epoch 2/2" in log and "held-out normal mean score" in log
    args = yaml.safe_load(open(os.path.join(d, "args.yml")))
    assert args["epochs"] == 2 and args["category"] == "brick"


@pytest.mark.slow
def test_resume_repeats_the_uninterrupted_run(syn_root, tmp_path):
    import paddle
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    common = ("--data_dir", syn_root, "--category", "brick", *TRAIN_ARGS, "--seed", 3)
    r = run_script("train.py", *common, "--output_dir", full, "--epochs", 3)
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_script("train.py", *common, "--output_dir", part, "--epochs", 2)
    assert r.returncode == 0, r.stderr[-2000:]
    last = paddle.load(os.path.join(part, "brick", "last.pdparams"))
    assert last["progress"]["epoch"] == 2 and any("moment1" in k for k in last["optimizer"])
    # the image score is not a training setting: a state resumes under another one, with the same weights
    r = run_script("train.py", *common, "--output_dir", part, "--epochs", 3, "--resume", "--image_score", "map_max",
                   "--localization_method", "discrepancy")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in r.stdout
    a = paddle.load(os.path.join(full, "brick", "model.pdparams"))["state_dict"]
    resumed = paddle.load(os.path.join(part, "brick", "model.pdparams"))
    assert resumed["model_args"]["image_score"] == "map_max"
    b = resumed["state_dict"]
    for k in a:
        np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), atol=1e-5, err_msg=k)


def test_optimizer_state_survives_new_parameter_names():
    """Adam state is stored by structured names, so a second model in one process (other auto names) gets it."""
    import paddle

    from adcommon.checkpoint import load_optimizer_state, optimizer_state
    from kdad.model import Cloner, cloner_cfg
    cfg = cloner_cfg([8, 8, 8, 8])
    a, b = Cloner(cfg), Cloner(cfg)
    assert [p.name for p in a.parameters()] != [p.name for p in b.parameters()]
    opt = paddle.optimizer.Adam(parameters=a.parameters())
    a(paddle.rand([2, 3, 32, 32]))[-1].mean().backward()
    opt.step()
    state = optimizer_state(opt, a)
    assert "features.0.weight|_moment1_0" in state
    opt_b = paddle.optimizer.Adam(parameters=b.parameters())
    load_optimizer_state(opt_b, b, state)
    names = {p.name for p in b.parameters()}
    restored = opt_b.state_dict()
    assert any(k.endswith("moment1_0") for k in restored)
    assert all(any(k.startswith(n + "_") for n in names) for k in restored if "moment" in k)


def _engine_run(out, compiled, feature_scale="rms", epochs=2, jitter=0.0):
    """engine.train on 8 random images (efficientnet_lite0 expert with random weights, 64 px)."""
    import paddle

    from adcommon import cli
    from kdad import engine

    cli.set_seed(0)
    os.makedirs(out, exist_ok=True)
    model = engine.build({"backbone": "efficientnet_lite0", "image_size": 64, "lamda": 0.5, "use_bias": False,
                          "equal_network_size": False, "direction_loss_only": False, "feature_scale": feature_scale})
    x = np.random.default_rng(0).random((10, 3, 64, 64)).astype(np.float32)
    x *= (1 + jitter * np.random.default_rng(1).standard_normal(x.shape)).astype(np.float32)
    stats = engine.train(model, x[:8], x[8:], str(out), engine.TrainSettings(
        epochs=epochs, batch_size=4, eval_interval=1, save_interval=epochs, compile=compiled), lambda m: None)
    return model, stats, {k: v.numpy().copy() for k, v in model.cloner.state_dict().items()}, paddle


def test_feature_scale_rms_is_each_layers_rms_on_the_training_images(tmp_path):
    model, stats, _, paddle = _engine_run(tmp_path / "a", compiled=False, epochs=1)
    scale = model.expert.feature_scale.numpy().copy()
    assert model.model_args["feature_scale"] == "rms" and np.all(scale > 0) and not np.allclose(scale, 1)
    x = paddle.to_tensor(np.random.default_rng(0).random((8, 3, 64, 64)).astype(np.float32))  # the 8 fit images
    model.expert.feature_scale.set_value(np.ones(4, np.float32))
    with paddle.no_grad():
        rms = [float(paddle.sqrt((f * f).mean())) for f in model.expert(x)]
    np.testing.assert_allclose(scale, np.maximum(rms, 1e-6), rtol=1e-4)


def test_compiled_cloner_trains_the_same_numbers(tmp_path):
    from adcommon.method.compiled import available
    if not available():
        pytest.skip("static oneDNN training needs Paddle >= 3 on CPU")
    from adcommon.tools.testing import assert_within_float_noise
    _, ref, ref_w, _ = _engine_run(tmp_path / "eager", compiled=False)
    _, fast, fast_w, _ = _engine_run(tmp_path / "compiled", compiled=True)
    _, _, noisy_w, _ = _engine_run(tmp_path / "jitter", compiled=False, jitter=1e-6)
    assert fast["compiled"] and not ref["compiled"]
    np.testing.assert_allclose([h["loss"] for h in fast["history"]], [h["loss"] for h in ref["history"]], rtol=1e-4)
    assert_within_float_noise(fast_w, ref_w, noisy_w)   # weights and BN running statistics


def test_resume_with_rms_feature_scale_repeats_the_uninterrupted_run(tmp_path):
    """The Lite0 expert's features are divided by their RMS; a resumed run must train on the same targets
    (it once divided the cached ones twice, and the held-out score jumped after every resume)."""
    from adcommon import checkpoint as C
    from kdad import engine
    _, _, full_w, paddle = _engine_run(tmp_path / "full", compiled=False, epochs=3)
    _engine_run(tmp_path / "part", compiled=False, epochs=2)
    model = engine.build({"backbone": "efficientnet_lite0", "image_size": 64, "lamda": 0.5, "use_bias": False,
                          "equal_network_size": False, "direction_loss_only": False, "feature_scale": "rms"})
    last = os.path.join(str(tmp_path / "part"), "last.pdparams")
    state = C.training_state(last, engine.METHOD, lambda m: None, True)
    x = np.random.default_rng(0).random((10, 3, 64, 64)).astype(np.float32)
    engine.train(model, x[:8], x[8:], str(tmp_path / "part"), engine.TrainSettings(
        epochs=3, batch_size=4, eval_interval=1, save_interval=3, compile=False), lambda m: None, state)
    for k, v in model.cloner.state_dict().items():
        np.testing.assert_allclose(v.numpy(), full_w[k], rtol=1e-4, atol=1e-6, err_msg=k)
