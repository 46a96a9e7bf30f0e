import os

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from tiny_layer import TinyNet

from adcommon.export import export_inference
from adcommon.predictor import Predictor, load_meta
from shared_data.errors import UserError


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    paddle.seed(0)
    net = TinyNet()
    net.eval()
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    with paddle.no_grad():
        ref = [t.numpy() for t in net(paddle.to_tensor(x))]
    d = str(tmp_path_factory.mktemp("exp") / "inference")
    export_inference(net, d, [None, 3, 16, 16], {"outputs": ["map", "pooled"], "threshold": 1.5})
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
    from adcommon.predictor import onednn_enabled
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
