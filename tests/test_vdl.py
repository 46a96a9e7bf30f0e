"""train.py --use_vdl True in every paper folder: VisualDL's own LogReader reads the log back."""
import glob
import os
import shlex
import subprocess
import sys

import pytest

from adcommon import methods, vdl
from adcommon.tools.testing import tiny_synthetic


class _Writer:
    def __init__(self):
        self.scalars, self.images = [], []

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def add_image(self, tag, img, step):
        self.images.append((tag, img.shape, step))


def test_only_finite_numbers_of_a_history_record_become_scalars(monkeypatch):
    """An engine's record: numbers kept (rates too), seconds, flags, text, None and NaN left out; nothing at
    all without an open board."""
    import numpy as np
    vdl.scalars(1, {"loss": 1.0})   # no board: nothing, no error
    w = _Writer()
    monkeypatch.setattr(vdl, "_ACTIVE", [w])
    vdl.scalars(3, {"epoch": 3, "loss": 0.5, "lr": 0.4, "images_per_s": 5.6, "seconds": 45.0, "t_s": 1.0,
                    "holdout_score": None, "acc": float("nan"), "best": True, "note": "x"})
    assert sorted(w.scalars) == [("train/images_per_s", 5.6, 3), ("train/loss", 0.5, 3), ("train/lr", 0.4, 3),
                                 ("train/seconds", 45.0, 3)]
    vdl.evaluation({"image_auroc": 0.9, "aupro": None, "pixel_auroc": 0.95},
                   [("defective_1", np.zeros((8, 8, 3), np.uint8))])
    assert ("test/image_auroc", 0.9, 0) in w.scalars and ("test/pixel_auroc", 0.95, 0) in w.scalars
    assert not any(t == "test/aupro" for t, _, _ in w.scalars) and w.images == [("test/defective_1", (8, 8, 3), 0)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_synthetic(tmp_path_factory, 96, 8, 2, 2, name="vdl")


def _read(folder):
    LogReader = pytest.importorskip("visualdl").LogReader
    files = glob.glob(os.path.join(folder, "vdlrecords.*"))
    assert len(files) == 1, files
    reader = LogReader(file_path=files[0])
    tags = reader.get_tags()
    return reader, tags


@pytest.mark.slow
@pytest.mark.parametrize("name", methods.names())
def test_train_py_writes_scalars_metrics_and_panels_that_visualdl_reads(name, data, tmp_path):
    pytest.importorskip("visualdl")
    m = methods.get(name)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "train.py", "--data_dir", data, "--category", "brick", "--output_dir", out,
                        *shlex.split(m.tiny), "--use_vdl", "True", "--val", "True"], cwd=m.path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    reader, tags = _read(out / "brick" / "vdl")
    scalars = set(tags["scalar"])
    assert {"test/image_auroc", "test/pixel_auroc"} <= scalars
    assert "train/images_per_s" in scalars
    if m.resumable:   # trained over epochs or updates: the loss and the learning rate at each
        assert {"train/loss", "train/lr"} <= scalars
        losses = reader.get_data("scalar", "train/loss")
        assert len(losses) >= 1 and all(x.value == x.value for x in losses)
    auroc = reader.get_data("scalar", "test/image_auroc")[0].value
    import json
    metrics = json.loads((out / "brick" / "metrics.json").read_text())
    assert auroc == pytest.approx(metrics["image_auroc"], abs=1e-6)
    assert {"test/defective_1", "test/normal_1"} <= set(tags["image"])
    # a second run into the same folder (resumed or not) is accepted: the vdl folder is the suite's own
    r = subprocess.run([sys.executable, "train.py", "--data_dir", data, "--category", "brick", "--output_dir", out,
                        *shlex.split(m.tiny), "--use_vdl", "True", "--vdl_log_dir", tmp_path / "board"],
                       cwd=m.path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert os.path.isdir(tmp_path / "board" / f"{name}-brick")
