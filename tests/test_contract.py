"""The method contract (adcommon.method.contract) and the method table (methods.tsv): every method of the table
has its folder and obeys the contract, and a model it trains fits its own deployment description."""
import os
import shlex
import subprocess
import sys
import types

import numpy as np
import pytest

from adbase import UserError
from adcommon import methods
from adcommon.method import contract
from adcommon.tools.testing import tiny_synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = methods.names()


# ----------------------------------------------------------------------------- the table
def test_the_table_and_the_paper_folders_agree():
    folders = sorted(d for d in os.listdir(ROOT) if os.path.isfile(os.path.join(ROOT, d, "train.py")))
    assert sorted(m.folder for m in methods.table()) == folders
    for m in methods.table():
        assert os.path.isfile(os.path.join(m.path, m.package, "engine.py")), m
        for script in ("train.py", "val.py", "predict.py", "export_model.py", "infer.py"):
            assert os.path.isfile(os.path.join(m.path, script)), (m.folder, script)


def test_the_shell_reads_the_same_table():
    out = subprocess.run(["bash", "-c", ". scripts/methods.sh; method_names; for m in $(method_names | tr , ' '); "
                          "do folder_of $m; quickstart_flags $m; done"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == ",".join(NAMES)
    assert out[1:] == [v for m in methods.table() for v in (m.folder, m.quickstart)]


def test_table_errors_name_the_line():
    with pytest.raises(UserError, match=r"t.tsv:2: training must be one of"):
        methods.parse("# comment\na\tA-Paddle\ta\tsometimes\t\t\n", "t.tsv")
    with pytest.raises(UserError, match="listed twice"):
        methods.parse("a\tA\ta\tfit\nx\tX\tx\tfit\na\tB\tb\tfit\n", "t.tsv")
    with pytest.raises(UserError, match="separated by tabs"):
        methods.parse("a A a fit\n", "t.tsv")
    with pytest.raises(UserError, match="unknown method 'nope'"):
        methods.get("nope")
    rows = methods.parse("a\tA-Paddle\tpa\tfit\n")   # the flag columns may be left out
    assert rows[0].real == ""
    assert rows[0].quickstart == "" and rows[0].tiny == "" and not rows[0].resumable


def test_a_broken_method_table_is_one_line(tmp_path, monkeypatch):
    table = tmp_path / "methods.tsv"
    monkeypatch.setenv(methods.ENV, str(table))
    table.write_bytes("a\tA-Paddle\ta\tfit\t--lr 0.1\xa0\n".encode("latin-1"))
    methods._read.cache_clear()
    with pytest.raises(UserError, match="not UTF-8"):
        methods.table()
    table.write_text("a\tA-Paddle\ta\tfit\n")
    methods._read.cache_clear()
    with pytest.raises(UserError, match="names the folder 'A-Paddle', which does not exist"):
        methods.table()
    methods._read.cache_clear()


# ----------------------------------------------------------------------------- the contract, statically
@pytest.mark.parametrize("name", NAMES)
def test_every_engine_obeys_the_contract(name):
    engine = methods.engine(name)
    assert contract.check(engine) == []
    assert isinstance(engine, contract.Engine)
    assert engine.METHOD == name
    assert contract.bind(engine).name == name
    # the table's training column says what the engine's PROGRESS says (the scripts read the table)
    assert methods.get(name).resumable == (contract.bind(engine).progress is not None)


def _engine(**parts):
    base = {"METHOD": "toy", "build": lambda model_args: None, "OUTPUTS": ["map"],
            "train_category": lambda args, category, out, log, main: None}
    base.update(parts)
    return types.SimpleNamespace(**{k: v for k, v in base.items() if v is not None})


def test_check_names_what_an_engine_gets_wrong():
    assert contract.check(_engine()) == []
    assert any("METHOD" in p for p in contract.check(_engine(METHOD=None)))
    assert any("build(model_args)" in p for p in contract.check(_engine(build=None)))
    assert any("build(model_args)" in p for p in contract.check(_engine(build=lambda: None)))
    assert any("train_category" in p for p in contract.check(_engine(train_category=None)))
    assert any("PROGRESS" in p for p in contract.check(_engine(PROGRESS="epochs")))
    assert any("runner must take 2" in p for p in contract.check(_engine(runner=lambda model: None)))
    assert any("OUTPUTS" in p for p in contract.check(_engine(OUTPUTS=None)))
    assert contract.check(_engine(OUTPUTS=None, deploy_meta=lambda ck: {})) == []
    assert any("SUMMARY_EXTRA" in p for p in contract.check(_engine(SUMMARY_EXTRA=(1,))))


def test_the_defaults_of_the_optional_parts():
    m = contract.bind(_engine())
    assert contract.bind(m) is m
    ck = {"model_args": {"image_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "backbone": "x",
                         "postprocess": {"out_size": 32, "map_outputs": [0], "score_output": None}},
          "threshold": 1.5, "category": "brick"}
    meta = m.deploy_meta(ck)
    assert meta["preprocess"] == {"image_size": 32, "crop_size": None, "mean": [0.5] * 3, "std": [0.5] * 3}
    assert meta["outputs"] == ["map"] and meta["threshold"] == 1.5 and "postprocess" not in meta["model_args"]
    assert contract.check_meta(meta) == []
    assert contract.check_meta({"method": "toy"}) and contract.check_meta(meta, 2)
    assert m.result_dir("out/brick", ck) == "out/brick" and m.upgrade(ck, "p") is ck
    assert m.extra_metrics(ck, None, None, None, None) == {} and m.export_layer("layer", ck) == "layer"
    assert m.pixel_note == "" and m.summary_extra == () and m.progress is None
    args = types.SimpleNamespace(batch_size=7)
    assert m.val_settings(args) == (7, None) and m.prepare_args(args) is None


def test_the_default_runner_is_the_forward_in_eval_mode():
    paddle = pytest.importorskip("paddle")

    class Two(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.bn = paddle.nn.BatchNorm2D(3)

        def forward(self, x):
            y = self.bn(x)
            return y.mean(axis=[1, 2, 3]), y[:, :1]

    layer = Two()
    layer.train()
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    score, amap = contract.forward_runner(layer)(x)
    assert not layer.training and score.shape == (2,) and amap.shape == (2, 1, 4, 4)
    np.testing.assert_allclose(amap[:, 0], x[:, 0] / np.sqrt(1 + 1e-5), rtol=1e-5)   # running stats: 0, 1


# ----------------------------------------------------------------------------- the contract, on trained models
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_synthetic(tmp_path_factory, 128, 10, 2, 2, name="contract")


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_a_trained_model_fits_its_deployment_description(name, data, tmp_path):
    """The table's tiny run of every method, then the contract's parts on its checkpoint: the runner's
    outputs are the ones deploy_meta names, and the post-processing spec turns them into maps and scores."""
    from adcommon.evaluate.maps import postprocess
    from adcommon.method.pipeline import load
    m = methods.get(name)
    r = subprocess.run([sys.executable, "train.py", "--data_dir", data, "--category", "brick", "--output_dir",
                        str(tmp_path), *shlex.split(m.tiny)], cwd=m.path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    engine = methods.engine(name)
    model, ck = load(engine, str(tmp_path / "brick" / "model.pdparams"))
    method = contract.bind(engine)
    meta = method.deploy_meta(ck)
    side = meta["preprocess"]["crop_size"] or meta["preprocess"]["image_size"]
    x = np.random.default_rng(0).standard_normal((2, 3, side, side)).astype(np.float32)
    outs = method.runner(model, ck)(x)
    assert contract.check_meta(meta, len(outs)) == []
    assert all(o.shape[0] == 2 for o in outs)
    maps, scores = postprocess(outs, meta["postprocess"])
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert maps.shape == (2, meta["postprocess"]["out_size"], meta["postprocess"]["out_size"])
    assert meta["method"] == name and meta["model_args"] == {k: v for k, v in ck["model_args"].items()
                                                             if k != "postprocess"}


# ----------------------------------------------------------------------------- a fifth method
@pytest.mark.slow
def test_a_fifth_method_from_the_template_runs_through_the_shared_mains(data, tmp_path, monkeypatch):
    """scripts/new_method.py writes a method's folder and its table line in a temporary folder; with
    nothing edited elsewhere, its five scripts run train -> val -> export -> infer through the shared
    mains, and its engine obeys the contract."""
    suite, table = tmp_path / "suite", tmp_path / "suite" / "methods.tsv"
    suite.mkdir()
    bad = subprocess.run([sys.executable, "scripts/new_method.py", "--name", "toy", "--title", 'Toy "v2"', "--dest",
                          str(suite), "--table", str(table)], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "--title may not hold quotes" in bad.stderr and not table.exists()
    # a title unlike the name ("Patch Core"): infer.py once passed the title as the method and refused its export
    r = subprocess.run([sys.executable, "scripts/new_method.py", "--name", "toy", "--title", "Toy Core", "--dest",
                        str(suite), "--table", str(table)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    again = subprocess.run([sys.executable, "scripts/new_method.py", "--name", "toy", "--dest", str(suite),
                            "--table", str(table)], cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 2 and "already lists a method 'toy'" in again.stderr   # nothing overwritten
    monkeypatch.setenv(methods.ENV, str(table))
    (m,) = methods.table()
    assert (m.name, m.folder, m.package) == ("toy", "TOY-Paddle", "toy") and os.path.isdir(m.path)
    env = dict(os.environ, PYTHONPATH=ROOT)
    out, res = tmp_path / "out", tmp_path / "res"

    def run(script, *args):
        p = subprocess.run([sys.executable, script, *map(str, args)], cwd=m.path, env=env, capture_output=True,
                           text=True)
        assert p.returncode == 0, (script, p.stderr[-2000:])
        return p.stdout

    run("train.py", "--data_dir", data, "--category", "brick", "--output_dir", out, *shlex.split(m.tiny))
    assert "Image AUROC" in run("val.py", "--data_dir", data, "--category", "brick", "--output_dir", out)
    run("export_model.py", "--category", "brick", "--output_dir", out)
    run("infer.py", "--model_dir", out / "brick" / "inference", "--img_path", os.path.join(data, "brick", "test"),
        "--save_dir", res)
    import json
    metrics = json.loads((out / "brick" / "metrics.json").read_text())
    assert metrics["method"] == "toy" and 0 <= metrics["image_auroc"] <= 1 and metrics["threshold"] is not None
    lines = (res / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(x)["score"] is not None for x in lines)
    engine = methods.engine("toy")
    assert contract.check(engine) == [] and engine.METHOD == "toy"
