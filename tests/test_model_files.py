"""Model files are data: a checkpoint or weights file that names code is refused, and the code never runs.

Each crafted file is a pickle whose ``__reduce__`` calls ``os.system`` to create a marker file; every
script that loads a checkpoint or a weights file gets it where a user would pass it, and must end with one
``error:`` line naming the refusal, exit code 2, and no marker.
"""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from adcommon import methods, pdfile
from adcommon.nets import torch_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _plant(path, marker, method="stfpm", protocol=4):
    """A file shaped like a checkpoint of ``method`` whose state dict runs a command when unpickled."""
    obj = {"method": method, "model_args": {}, "state_dict": {"w": _Payload(marker)}}
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return str(path)


def _run(folder, script, args):
    return subprocess.run([sys.executable, script] + args, cwd=os.path.join(ROOT, folder),
                          capture_output=True, text=True, timeout=300)


def _refused(r, marker):
    assert not os.path.exists(marker), "the planted command ran"
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("error:") and "not a plain checkpoint" in lines[-1], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_pickle_that_names_code_is_refused_before_anything_runs(tmp_path, protocol):
    marker = tmp_path / "ran"
    path = _plant(tmp_path / "evil.pdparams", marker, protocol=protocol)
    with pytest.raises(pdfile.UnsafeFile, match="os.system|posix.system"):
        pdfile.load(path)
    assert not marker.exists()


def test_plain_checkpoints_of_paddle_load_as_before(tmp_path):
    """What paddle.save writes (tensors, numpy arrays and scalars, nested containers) loads unchanged."""
    import paddle
    obj = {"method": "x", "state_dict": {"a": paddle.to_tensor(np.arange(6, dtype="float32").reshape(2, 3))},
           "fit": {"mean": np.ones((2, 2), np.float64), "n": np.int64(3), "f": np.float32(0.5)},
           "history": [{"epoch": 1, "loss": 0.25, "holdout_score": None}], "t": (1, "a"), "c": 1 + 2j}
    for protocol in (2, 4):
        p = str(tmp_path / f"ok{protocol}.pdparams")
        paddle.save(obj, p, protocol=protocol)
        ours, theirs = pdfile.load(p), paddle.load(p)
        assert ours.keys() == theirs.keys()
        np.testing.assert_array_equal(ours["state_dict"]["a"].numpy(), theirs["state_dict"]["a"].numpy())
        np.testing.assert_array_equal(ours["fit"]["mean"], obj["fit"]["mean"])
        assert ours["fit"]["n"] == 3 and ours["history"] == obj["history"] and ours["c"] == 1 + 2j


def test_a_legacy_torch_file_that_names_code_is_refused(tmp_path):
    """The legacy .pth layout is five pickles in a row: each of them is read as data only."""
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump(_Payload(str(marker)), f, protocol=2)   # where the magic number stands
    with pytest.raises(pdfile.UnsafeFile):
        torch_state.load_torch_state_dict(str(path))
    assert not marker.exists()


def _scripts():
    for m in methods.table():
        for script in ("val.py", "predict.py", "export_model.py"):
            yield pytest.param(m, script, id=f"{m.name}-{script}")


@pytest.mark.parametrize("entry,script", _scripts())
def test_every_script_refuses_a_crafted_model_path(tmp_path, entry, script):
    marker = str(tmp_path / "ran")
    evil = _plant(tmp_path / "model.pdparams", marker, method=entry.name)
    args = ["--model_path", evil, "--output_dir", str(tmp_path / "out"), "--category", "brick"]
    if script == "predict.py":
        img = tmp_path / "a.png"
        from PIL import Image
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
        args += ["--img_path", str(img)]
    if script == "val.py":
        args += ["--data_dir", str(tmp_path / "data")]
        os.makedirs(tmp_path / "data" / "brick" / "test" / "good")
    _refused(_run(entry.folder, script, args), marker)


@pytest.mark.parametrize("entry", list(methods.table()), ids=lambda m: m.name)
def test_train_refuses_crafted_pretrained_weights(tmp_path, entry):
    """--pretrained PATH, the file a user downloads or receives."""
    from shared_data.synthetic import generate
    data = tmp_path / "data"
    generate(str(data), categories=["brick"], n_train=4, n_test_good=1, n_test_defect=1, image_size=64, seed=0)
    marker = str(tmp_path / "ran")
    evil = _plant(tmp_path / "weights.pdparams", marker)
    r = _run(entry.folder, "train.py", ["--data_dir", str(data), "--category", "brick", "--output_dir",
                                        str(tmp_path / "out"), "--pretrained", evil])
    _refused(r, marker)
