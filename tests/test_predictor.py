import os

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from tiny_layer import TinyNet

from adbase import UserError
from adcommon.deploy.export import export_inference
from adcommon.deploy.predictor import Predictor, load_meta

META = {"method": "tiny", "outputs": ["map", "pooled"], "threshold": 1.5,
        "preprocess": {"image_size": 16, "crop_size": None, "mean": None, "std": None},
        "postprocess": {"out_size": 16, "combine": "product", "sigma": None, "map_outputs": [0], "score_output": None}}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    paddle.seed(0)
    net = TinyNet()
    net.eval()
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    with paddle.no_grad():
        ref = [t.numpy() for t in net(paddle.to_tensor(x))]
    d = str(tmp_path_factory.mktemp("exp") / "inference")
    export_inference(net, d, [None, 3, 16, 16], META)
    return d, x, ref


@pytest.mark.smoke
@pytest.mark.parametrize("mkldnn", [False, True])
def test_predictor_matches_dygraph(exported, mkldnn):
    d, x, ref = exported
    pred = Predictor(d, use_mkldnn=mkldnn, cpu_threads=1)
    out = pred.run(x)
    assert len(out) == 2
    for a, b in zip(out, ref):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
    # batch of one works with the dynamic batch dimension
    np.testing.assert_allclose(pred.run(x[:1])[0], ref[0][:1], atol=1e-5, rtol=1e-5)


def test_onednn_flag_is_honoured(exported):
    from adcommon.deploy.predictor import onednn_enabled
    d = exported[0]
    assert not onednn_enabled(Predictor(d, use_mkldnn=False).config)
    assert onednn_enabled(Predictor(d, use_mkldnn=True).config)


@pytest.mark.smoke
def test_meta_is_recorded(exported):
    meta = load_meta(exported[0])
    assert meta["outputs"] == ["map", "pooled"] and meta["threshold"] == 1.5
    assert meta["model_file"] in ("inference.json", "inference.pdmodel")
    assert os.path.isfile(os.path.join(exported[0], meta["model_file"]))
    assert meta["input"]["shape"] == [None, 3, 16, 16]
    assert not [f for f in os.listdir(exported[0]) if f.endswith((".pkl", ".pickle"))]


def test_not_an_export_folder(tmp_path):
    with pytest.raises(UserError, match="no inference.yml"):
        Predictor(str(tmp_path))


def test_failed_export_keeps_previous(tmp_path, exported):
    d = str(tmp_path / "inference")
    net = TinyNet()
    export_inference(net, d, [None, 3, 16, 16], {"outputs": ["map", "pooled"]})
    before = sorted(os.listdir(d))

    class Broken(paddle.nn.Layer):
        def forward(self, x):
            raise RuntimeError("boom")

    with pytest.raises(Exception):
        export_inference(Broken(), d, [None, 3, 16, 16], {})
    assert sorted(os.listdir(d)) == before
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".inference")]


def _edited(exported, tmp_path, edit=None, files=None):
    """A copy of the export folder with inference.yml edited (``edit(meta)``) or files replaced."""
    import shutil

    import yaml
    d = str(tmp_path / "inference")
    shutil.copytree(exported[0], d)
    if edit:
        meta = yaml.safe_load(open(os.path.join(d, "inference.yml")))
        meta = edit(meta)
        with open(os.path.join(d, "inference.yml"), "w") as f:
            f.write(meta if isinstance(meta, str) else yaml.safe_dump(meta))
    for name, data in (files or {}).items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    return d


@pytest.mark.parametrize("edit, words", [
    (lambda m: "- just\n- a list\n", "is not a mapping"),
    (lambda m: "a: [1, 2\nb: 3", "is not valid YAML"),
    (lambda m: dict(m, preprocess=dict(m["preprocess"], image_size="abc")), "preprocess.image_size must be a positive"),
    (lambda m: dict(m, threshold="high"), "threshold must be a number"),
    (lambda m: dict(m, postprocess=dict(m["postprocess"], map_outputs=[5])), "names outputs [5] of a graph with 2"),
    (lambda m: dict(m, outputs=["map"]), "the graph has 2 outputs, inference.yml lists 1"),
    (lambda m: dict(m, preprocess=dict(m["preprocess"], image_size=32)), "preprocesses to 32 px but the graph takes"),
])
def test_inference_yml_is_checked_against_the_graph(exported, tmp_path, edit, words):
    """An edited or foreign inference.yml is refused in one line instead of a traceback or other scores."""
    d = _edited(exported, tmp_path, edit)
    with pytest.raises(UserError, match=None) as e:
        Predictor(d)
    assert words in str(e.value), str(e.value)


@pytest.mark.parametrize("name", ["inference.pdiparams", "model"])
def test_truncated_model_files(exported, tmp_path, name):
    meta = load_meta(exported[0])
    name = meta["model_file"] if name == "model" else name
    data = open(os.path.join(exported[0], name), "rb").read()
    d = _edited(exported, tmp_path, files={name: data[: len(data) // 3]})
    with pytest.raises(UserError, match="cannot load the exported model|re-run export_model.py"):
        Predictor(d).run(exported[1])


def test_infer_refuses_another_methods_export(exported, tmp_path):
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    img = tmp_path / "x.png"
    from PIL import Image
    Image.new("RGB", (16, 16)).save(img)
    r = subprocess.run([sys.executable, "infer.py", "--model_dir", exported[0], "--img_path", str(img)],
                       cwd=os.path.join(root, "STFPM-Paddle"), capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "warn" not in ln.lower()]
    assert r.returncode == 2 and len(lines) == 1 and "holds a tiny model, not STFPM" in lines[0], r.stderr
