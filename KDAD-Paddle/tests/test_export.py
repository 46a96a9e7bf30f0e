"""val.py, predict.py, export_model.py and infer.py agree (<= 1e-4), for both exported maps."""
import csv
import json
import os

import numpy as np
import pytest
from kdad_testutil import paddle_major, run_script


def _scores(path):
    with open(path) as f:
        return {os.path.basename(os.path.dirname(r["path"])) + "/" + os.path.basename(r["path"]): float(r["score"])
                for r in csv.DictReader(f)}


def _close(a, b, tol=1e-4):
    assert set(a) == set(b)
    return max(abs(a[k] - b[k]) / max(1.0, abs(a[k])) for k in a) <= tol


@pytest.mark.slow
def test_val_predict_export_infer_agree(trained, tmp_path):
    root, out = trained
    d = os.path.join(out, "brick")
    r = run_script("val.py", "--data_dir", root, "--category", "brick", "--output_dir", out, "--save_vis", "True")
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.load(open(os.path.join(d, "metrics.json")))
    for k in ("image_auroc", "pixel_auroc", "aupro", "paper_localization_auroc", "threshold"):
        assert m[k] is not None and np.isfinite(m[k]), k
    assert m["localization_method"] == "gradients"
    assert os.path.isfile(os.path.join(d, "vis", "roc.png"))
    assert len([f for f in os.listdir(os.path.join(d, "vis")) if f.endswith(".png")]) == m["n_test"] + 1
    val = _scores(os.path.join(d, "scores.csv"))

    img_dir = os.path.join(root, "brick", "test")
    r = run_script("predict.py", "--output_dir", out, "--category", "brick", "--img_path", img_dir,
                   "--save_dir", tmp_path / "pred", "--batch_size", 3)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _close(val, _scores(tmp_path / "pred" / "scores.csv"))
    assert len([f for f in os.listdir(tmp_path / "pred") if f.endswith(".png") and "_mask" not in f]) == len(val)

    if paddle_major() < 3:
        pytest.skip("Paddle 2.6's predictor cannot run a graph with gradients (discrepancy export tested below)")
    r = run_script("export_model.py", "--output_dir", out, "--category", "brick")
    assert r.returncode == 0, r.stderr[-2000:]
    inf = os.path.join(d, "inference")
    for mkl in ("False", "True"):
        r = run_script("infer.py", "--model_dir", inf, "--img_path", img_dir, "--use_mkldnn", mkl, "--batch_size", 3,
                       "--save_dir", tmp_path / f"inf{mkl}", "--benchmark", "True")
        assert r.returncode == 0, r.stderr[-2000:]
        assert _close(val, _scores(tmp_path / f"inf{mkl}" / "scores.csv"))
        notes = [ln for ln in r.stderr.splitlines() if ln.startswith("note:") and "oneDNN" in ln]
        assert len(notes) == (1 if mkl == "True" else 0)
        assert "inference_time(ms)" in open(tmp_path / f"inf{mkl}" / "auto_log.log").read()
    assert len([f for f in os.listdir(tmp_path / "infFalse") if f.endswith(".png") and "_mask" not in f]) == len(val)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gradients", "discrepancy"])
def test_predictor_matches_dygraph_raw_and_postprocessed(trained, tmp_path, kind):
    """Raw outputs and post-processed maps of Paddle Inference vs the dygraph model (val.py's path)."""
    from adcommon.deploy.predictor import Predictor
    from adcommon.evaluate.maps import postprocess
    from adcommon.method import pipeline
    from kdad import engine
    from kdad.localization import localize
    from shared_data.dataset import MVTecAD
    if kind == "gradients" and paddle_major() < 3:
        pytest.skip("Paddle 2.6's predictor cannot run a graph with gradients")
    root, out = trained
    r = run_script("export_model.py", "--output_dir", out, "--category", "brick", "--map", kind,
                   "--save_dir", tmp_path / kind)
    assert r.returncode == 0, r.stderr[-2000:]
    model, ck = pipeline.load(engine, os.path.join(out, "brick", "model.pdparams"))
    ds = MVTecAD(root, "brick", "test", 64, None, None, None)
    x = np.stack([ds[i][0] for i in range(len(ds))])
    ref = localize(model, x, kind)
    spec = engine.postprocess_spec(kind, 64)
    ref_maps, ref_scores = postprocess(ref, spec)
    for mkl in ([False] if kind == "gradients" else [False, True]):
        outs = Predictor(str(tmp_path / kind), use_mkldnn=mkl).run(x)
        for a, b in zip(outs, ref):
            np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
        maps, scores = postprocess(outs, spec)
        np.testing.assert_allclose(scores, ref_scores, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(maps, ref_maps, atol=1e-4)


@pytest.mark.slow
def test_val_other_methods_write_their_own_metrics(trained):
    root, out = trained
    r = run_script("val.py", "--data_dir", root, "--category", "brick", "--output_dir", out,
                   "--localization_method", "discrepancy")
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.load(open(os.path.join(out, "brick", "discrepancy", "metrics.json")))
    assert m["localization_method"] == "discrepancy" and m["pixel_auroc"] is not None
    assert 0 <= m["image_auroc_map_max"] <= 1
    r = run_script("val.py", "--data_dir", root, "--category", "brick", "--output_dir", out,
                   "--localization_test", "False")
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.load(open(os.path.join(out, "brick", "metrics.json")))
    assert m["image_auroc"] is not None and m["pixel_auroc"] is None and m["paper_localization_auroc"] is None


def test_map_max_auroc_is_reported_for_discrepancy_maps_only():
    """val.py's image_auroc_map_max: the image AUROC of each discrepancy map's maximum (absolute units);
    gradient maps are scaled per image, so their maximum says nothing and it stays None."""
    from types import SimpleNamespace

    from kdad import engine
    ds = SimpleNamespace(labels=np.array([0, 0, 1, 1]), has_masks=False)
    maps = np.zeros((4, 8, 8), np.float32)
    maps[:, 2, 3] = [0.1, 0.4, 0.3, 0.9]       # one anomaly below a normal image: AUROC 3/4
    ck = {"localization_method": "discrepancy", "model_args": {"image_size": 8}}
    assert engine.extra_metrics(ck, ds, None, maps, None)["image_auroc_map_max"] == 0.75
    maps[:, 2, 3] = [0.9, 0.3, 0.4, 0.1]
    assert engine.extra_metrics(ck, ds, None, maps, None)["image_auroc_map_max"] == 0.25
    ck["localization_method"] = "gradients"
    assert engine.extra_metrics(ck, ds, None, maps, None)["image_auroc_map_max"] is None


def test_with_map_max_the_other_auroc_is_the_papers_detection_score():
    """image_score map_max: image_auroc comes from the map maxima (the pipeline's scores), and
    image_auroc_loss is the AUROC of the graph's score output (raw[0], the paper's eq. 3)."""
    from types import SimpleNamespace

    from kdad import engine
    ds = SimpleNamespace(labels=np.array([0, 0, 1, 1]), has_masks=False)
    maps = np.zeros((4, 8, 8), np.float32)
    raw = [np.array([0.2, 0.1, 0.3, 0.4], np.float32)]     # AUROC 1
    ck = {"localization_method": "discrepancy", "model_args": {"image_size": 8, "image_score": "map_max"}}
    m = engine.extra_metrics(ck, ds, raw, maps, None)
    assert m["image_auroc_loss"] == 1.0 and "image_auroc_map_max" not in m
    raw[0][:] = [0.4, 0.3, 0.2, 0.1]
    assert engine.extra_metrics(ck, ds, raw, maps, None)["image_auroc_loss"] == 0.0


@pytest.mark.slow
def test_map_max_image_score_from_training_to_the_exported_model(syn_root, tmp_path):
    """--image_score map_max: the held-out threshold, val.py, predict.py and the exported model all score an
    image by the maximum of its post-processed discrepancy map; other maps are refused with one line."""
    from kdad_testutil import TRAIN_ARGS, one_line_error

    from adcommon.evaluate.maps import postprocess, threshold_from_normals
    from adcommon.evaluate.metrics import image_auroc
    from adcommon.method import pipeline
    from kdad import engine
    from kdad.localization import discrepancy
    from shared_data.dataset import MVTecAD, train_split
    out = str(tmp_path / "out")
    r = run_script("train.py", "--data_dir", syn_root, "--category", "brick", "--output_dir", out, "--epochs", 2,
                   *TRAIN_ARGS, "--image_score", "map_max")
    assert "--localization_method discrepancy" in one_line_error(r)
    r = run_script("train.py", "--data_dir", syn_root, "--category", "brick", "--output_dir", out, "--epochs", 2,
                   *TRAIN_ARGS, "--image_score", "map_max", "--localization_method", "discrepancy")
    assert r.returncode == 0, r.stderr[-3000:]
    d = os.path.join(out, "brick")
    model, ck = pipeline.load(engine, os.path.join(d, "model.pdparams"))
    assert ck["model_args"]["image_score"] == "map_max"

    def map_maxima(x):   # the discrepancy maps as the paper's score would post-process them, then their maxima
        maps, _ = postprocess(discrepancy(model, x), engine.postprocess_spec("discrepancy", 64, "loss"))
        return maps.reshape(len(maps), -1).max(1)
    hold = engine.stack_images(train_split(syn_root, "brick", 0.2, image_size=64, crop_size=None,
                                           mean=None, std=None)[1])
    hm = map_maxima(hold)
    np.testing.assert_allclose(ck["calibration"]["holdout_scores"], hm, rtol=1e-5)
    np.testing.assert_allclose(ck["threshold"], threshold_from_normals(hm, 0.99, "robust"), rtol=1e-5)

    r = run_script("val.py", "--data_dir", syn_root, "--category", "brick", "--output_dir", out)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.load(open(os.path.join(d, "metrics.json")))
    ds = MVTecAD(syn_root, "brick", "test", 64, None, None, None)
    x = np.stack([ds[i][0] for i in range(len(ds))])
    tm = map_maxima(x)
    assert abs(m["image_auroc"] - image_auroc(ds.labels, tm)) < 1e-9
    assert abs(m["image_auroc_loss"] - image_auroc(ds.labels, engine.detection_scores(model, x))) < 1e-9
    val = _scores(os.path.join(d, "scores.csv"))
    np.testing.assert_allclose(sorted(val.values()), sorted(tm), rtol=1e-5)

    r = run_script("predict.py", "--output_dir", out, "--category", "brick", "--img_path",
                   os.path.join(syn_root, "brick", "test"), "--save_dir", tmp_path / "pred", "--batch_size", 3)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _close(val, _scores(tmp_path / "pred" / "scores.csv"))
    assert "--localization_method discrepancy" in one_line_error(
        run_script("predict.py", "--output_dir", out, "--category", "brick", "--img_path",
                   os.path.join(syn_root, "brick", "test"), "--save_dir", tmp_path / "p2",
                   "--localization_method", "gradients"))
    r = run_script("export_model.py", "--output_dir", out, "--category", "brick")
    assert r.returncode == 0, r.stderr[-2000:]
    r = run_script("infer.py", "--model_dir", os.path.join(d, "inference"), "--img_path",
                   os.path.join(syn_root, "brick", "test"), "--batch_size", 3, "--save_dir", tmp_path / "inf")
    assert r.returncode == 0, r.stderr[-2000:]
    assert _close(val, _scores(tmp_path / "inf" / "scores.csv"))


@pytest.mark.slow
def test_the_three_backends_agree_on_the_discrepancy_graph(trained, tmp_path):
    """export_model.py --map discrepancy --onnx True, then infer.py on Paddle Inference, ONNX Runtime and
    OpenVINO: the same scores and maps (1e-4). The gradient graph (paddle.grad) has no ONNX form: one line."""
    pytest.importorskip("paddle2onnx")
    pytest.importorskip("onnxruntime")
    from adcommon.tools.testing import backends_agree
    root, out = trained
    folder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    model = os.path.join(out, "brick", "model.pdparams")
    backends_agree(folder, model, os.path.join(root, "brick", "test"), tmp_path, ["--map", "discrepancy"])
    r = run_script("export_model.py", "--model_path", model, "--save_dir", tmp_path / "grad", "--map", "gradients",
                   "--onnx", "True")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: --onnx True: this graph "
                                                                             "computes input gradients"), r.stderr
    assert not (tmp_path / "grad").exists()
