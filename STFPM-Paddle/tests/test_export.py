import csv
import os

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from stfpm_helpers import CATEGORY, IMAGE_SIZE, load_script  # noqa: E402

from adcommon.deploy.export import export_inference  # noqa: E402
from adcommon.deploy.predictor import Predictor, load_meta  # noqa: E402
from adcommon.evaluate.maps import image_scores, postprocess  # noqa: E402
from adcommon.method import contract, pipeline  # noqa: E402
from stfpm import engine  # noqa: E402


@pytest.fixture(scope="module")
def exported(trained):
    assert load_script("export_model").main(["--output_dir", trained, "--category", CATEGORY]) == 0
    return os.path.join(trained, CATEGORY, "inference")


@pytest.mark.smoke
@pytest.mark.parametrize("mkldnn", [False, True])
def test_export_matches_dygraph(tmp_path, mkldnn):
    paddle.seed(0)
    from stfpm.model import STFPM
    model = STFPM("resnet18", pretrained="none", image_size=IMAGE_SIZE)
    model.eval()
    x = np.random.default_rng(0).standard_normal((3, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    with paddle.no_grad():
        ref = [m.numpy() for m in model(paddle.to_tensor(x))]
    d = str(tmp_path / "inference")
    spec = engine.postprocess_spec(IMAGE_SIZE)
    meta = contract.bind(engine).deploy_meta({"model_args": dict(model.model_args, postprocess=spec)})
    export_inference(model, d, [None, 3, IMAGE_SIZE, IMAGE_SIZE], meta)
    out = Predictor(d, use_mkldnn=mkldnn, cpu_threads=1).run(x)
    assert [o.shape for o in out] == [(3, 1, 16, 16), (3, 1, 8, 8), (3, 1, 4, 4)]  # 3 maps, not 6 features
    for a, b in zip(out, ref):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    (m1, s1), (m2, s2) = postprocess(out, meta["postprocess"]), postprocess(ref, meta["postprocess"])
    assert m1.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    np.testing.assert_allclose(m1, m2, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(s1, s2, atol=1e-4, rtol=1e-4)


def test_inference_yml_describes_the_model(exported, trained):
    meta = load_meta(exported)
    ck = pipeline.load(engine, os.path.join(trained, CATEGORY, "model.pdparams"))[1]
    assert meta["method"] == "stfpm" and meta["outputs"] == engine.OUTPUTS
    assert meta["postprocess"] == ck["model_args"]["postprocess"]
    assert meta["threshold"] == pytest.approx(ck["threshold"])
    assert meta["preprocess"]["image_size"] == IMAGE_SIZE and meta["preprocess"]["crop_size"] is None


def _scores(path):
    with open(path) as f:
        return {os.path.abspath(r["path"]): float(r["score"]) for r in csv.DictReader(f)}


@pytest.mark.parametrize("mkldnn", [False, True])
def test_infer_matches_val(syn_root, trained, exported, tmp_path, mkldnn):
    """infer.py (Paddle Inference) and val.py (dygraph) give the same image scores (<= 1e-4)."""
    from adcommon.deploy.infer import infer_main
    assert load_script("val").main(["--data_dir", syn_root, "--category", CATEGORY, "--output_dir", trained]) == 0
    save = str(tmp_path / "infer")
    assert infer_main(["--model_dir", exported, "--img_path", os.path.join(syn_root, CATEGORY, "test"),
                       "--save_dir", save, "--use_mkldnn", str(mkldnn), "--batch_size", "2", "--save_vis", "False",
                       "--benchmark", "True"], "STFPM") == 0
    val, inf = _scores(os.path.join(trained, CATEGORY, "scores.csv")), _scores(os.path.join(save, "scores.csv"))
    assert set(val) == set(inf) and len(val) == 7
    for p in val:
        assert abs(val[p] - inf[p]) <= 1e-4 * max(1.0, abs(val[p])), p
    log = open(os.path.join(save, "auto_log.log")).read()
    assert "model_name: STFPM" in log and f"enable_mkldnn: {mkldnn}" in log and "data_num: 4" in log


@pytest.mark.slow
def test_the_three_backends_agree(syn_root, trained, tmp_path):
    """export_model.py --onnx True, then infer.py on Paddle Inference, ONNX Runtime and OpenVINO: the same
    scores and maps (1e-4)."""
    pytest.importorskip("paddle2onnx")
    pytest.importorskip("onnxruntime")
    from adcommon.tools.testing import backends_agree
    folder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    backends_agree(folder, os.path.join(trained, CATEGORY, "model.pdparams"), os.path.join(syn_root, CATEGORY,
                                                                                        "test"), tmp_path)


def test_image_score_top_reaches_the_export(syn_root, tmp_path):
    """--image_score_top: held-out threshold, val.py's scores and infer.py's all score by the mean of the
    map's top pixels; a resumed run may change it (it decides scoring only)."""
    import paddle

    from adcommon.deploy.infer import infer_main
    out = str(tmp_path / "out")
    common = ["--data_dir", syn_root, "--category", CATEGORY, "--output_dir", out, "--pretrained", "none",
              "--image_size", str(IMAGE_SIZE), "--batch_size", "4", "--seed", "0"]
    assert load_script("train").main(common + ["--epochs", "1"]) == 0
    assert load_script("train").main(common + ["--epochs", "2", "--resume", "--image_score_top", "0.05"]) == 0
    ck = paddle.load(os.path.join(out, CATEGORY, "model.pdparams"))
    assert ck["model_args"]["image_score_top"] == 0.05 and ck["model_args"]["postprocess"]["score_top"] == 0.05
    assert load_script("val").main(["--data_dir", syn_root, "--category", CATEGORY, "--output_dir", out,
                                    "--save_vis", "False"]) == 0
    exp = str(tmp_path / "export")
    assert load_script("export_model").main(["--model_path", os.path.join(out, CATEGORY, "model.pdparams"),
                                             "--save_dir", exp]) == 0
    save = str(tmp_path / "infer")
    assert infer_main(["--model_dir", exp, "--img_path", os.path.join(syn_root, CATEGORY, "test"),
                       "--save_dir", save, "--save_vis", "False"], "STFPM") == 0
    val, inf = _scores(os.path.join(out, CATEGORY, "scores.csv")), _scores(os.path.join(save, "scores.csv"))
    assert set(val) == set(inf)
    for p in val:
        assert abs(val[p] - inf[p]) <= 1e-4 * max(1.0, abs(val[p])), p
    assert load_meta(exp)["postprocess"]["score_top"] == 0.05
    model, ck = pipeline.load(engine, os.path.join(out, CATEGORY, "model.pdparams"))
    from shared_data.dataset import ImageCache, MVTecAD
    ds = MVTecAD(syn_root, CATEGORY, "test", IMAGE_SIZE)
    maps, scores = engine.maps_of(model, ImageCache(ds))
    np.testing.assert_allclose(scores, image_scores(maps, top=0.05), rtol=1e-6)
    assert np.all(scores < maps.max(axis=(1, 2)))
    np.testing.assert_allclose(sorted(scores), sorted(val.values()), rtol=1e-4)
