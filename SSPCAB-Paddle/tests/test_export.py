"""val.py (dygraph), export_model.py + infer.py (Paddle Inference) and predict.py agree, oneDNN on and off."""
import csv
import json
import os

import numpy as np
import pytest
import yaml
from sspcab_helpers import run_script

pytestmark = pytest.mark.slow


def _rel_err(got, want):
    """Largest |got - want| / max(1, |want|). The contract is 1e-4: GDE scores are distances of 10 - 100 and
    oneDNN's (or another batch size's) convolutions differ from dygraph's by ~1e-6 relative, which the
    Mahalanobis distance of (e - mu), a small difference of unit vectors, amplifies ~100 times."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))))


def _scores(path, key="path"):
    with open(path, newline="") as f:
        return {os.path.abspath(r[key]): float(r["score"]) for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def exported(trained):
    out = os.path.join(trained["output_dir"], "brick")
    r = run_script("val.py", "--data_dir", trained["data_dir"], "--category", "brick",
                   "--output_dir", trained["output_dir"])
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_script("export_model.py", "--category", "brick", "--output_dir", trained["output_dir"])
    assert r.returncode == 0, r.stderr[-3000:]
    return dict(trained, out=out, inference=os.path.join(out, "inference"))


def test_val_outputs(exported):
    m = json.load(open(os.path.join(exported["out"], "metrics.json")))
    assert m["method"] == "sspcab" and m["n_test"] == 8 and 0 <= m["image_auroc"] <= 1
    assert m["pixel_auroc"] is not None and m["aupro"] is not None and "ours" in m["localization"]
    assert m["threshold"] is not None and len(_scores(os.path.join(exported["out"], "scores.csv"))) == 8


def test_inference_yml(exported):
    meta = yaml.safe_load(open(os.path.join(exported["inference"], "inference.yml")))
    assert meta["outputs"] == ["score", "patch_map"] and meta["postprocess"]["score_output"] == 0
    assert meta["postprocess"]["map_outputs"] == [1] and meta["threshold"] is not None
    assert meta["preprocess"]["image_size"] == 128
    assert not [f for f in os.listdir(exported["inference"]) if f.endswith((".pkl", ".pickle", ".txt"))]


@pytest.mark.parametrize("mkldnn", [False, True])
def test_infer_matches_val(exported, tmp_path, mkldnn):
    save = str(tmp_path / "infer")
    r = run_script("infer.py", "--model_dir", exported["inference"], "--img_path",
                   os.path.join(exported["data_dir"], "brick", "test"), "--save_dir", save,
                   "--use_mkldnn", str(mkldnn), "--batch_size", "2", "--benchmark", "True")
    assert r.returncode == 0, r.stderr[-3000:]
    got, want = _scores(os.path.join(save, "scores.csv")), _scores(os.path.join(exported["out"], "scores.csv"))
    assert got.keys() == want.keys()
    assert _rel_err([got[k] for k in want], list(want.values())) <= 1e-4
    assert "inference_time(ms)" in r.stdout and len([f for f in os.listdir(save) if f.endswith(".png")
                                             and "_mask" not in f]) == 8


@pytest.mark.parametrize("mkldnn", [False, True])
def test_maps_match_dygraph(exported, mkldnn):
    """Same maps after the shared post-processing: exported graph vs the dygraph model."""
    import paddle

    from adcommon.deploy.predictor import Predictor
    from adcommon.evaluate.maps import postprocess
    from adcommon.method import pipeline
    from shared_data.dataset import MVTecAD
    from sspcab import engine
    model, ck = pipeline.load(engine, exported["ckpt"])
    a = ck["model_args"]
    ds = MVTecAD(exported["data_dir"], "brick", "test", a["image_size"], None, a["mean"], a["std"])
    x = np.stack([ds[i][0] for i in range(len(ds))])
    with paddle.no_grad():
        ref = [t.numpy() for t in model(paddle.to_tensor(x))]
    out = Predictor(exported["inference"], use_mkldnn=mkldnn).run(x)
    (m1, s1), (m2, s2) = postprocess(ref, a["postprocess"]), postprocess(out, a["postprocess"])
    assert _rel_err(s2, s1) <= 1e-4 and _rel_err(m2, m1) <= 1e-4


def test_predict_matches_val(exported, tmp_path):
    save = str(tmp_path / "pred")
    r = run_script("predict.py", "--model_path", exported["ckpt"], "--img-path",
                   os.path.join(exported["data_dir"], "brick", "test", "good"), "--save_dir", save)
    assert r.returncode == 0, r.stderr[-3000:]
    got, want = _scores(os.path.join(save, "scores.csv")), _scores(os.path.join(exported["out"], "scores.csv"))
    assert len(got) == 4 and _rel_err([got[k] for k in got], [want[k] for k in got]) <= 1e-4
    assert all(v in ("normal", "anomalous") for v in
               [row["verdict"] for row in csv.DictReader(open(os.path.join(save, "scores.csv")))])


@pytest.mark.slow
def test_the_three_backends_agree(trained, tmp_path):
    """export_model.py --onnx True, then infer.py on Paddle Inference, ONNX Runtime and OpenVINO: the same
    image scores (the pooled GDE) and patch maps (1e-4)."""
    pytest.importorskip("paddle2onnx")
    pytest.importorskip("onnxruntime")
    from adcommon.tools.testing import backends_agree
    folder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    backends_agree(folder, trained["ckpt"], os.path.join(trained["data_dir"], "brick", "test"), tmp_path)
