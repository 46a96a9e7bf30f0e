"""bench.run(quick=True) returns well-formed rows (no timing assertions: they depend on the machine)."""
import os

import pytest
from sspcab_helpers import PAPER

from adcommon.tools.testing import load_script


@pytest.mark.slow
def test_bench_rows():
    bench = load_script(os.path.join(PAPER, "bench.py"))
    rows = bench.run(quick=True)
    train = [r for r in rows if r["what"] == "train"]
    pred = [r for r in rows if r["what"] == "predictor"]
    assert len(train) == 1 and train[0]["images_per_s"] > 0 and train[0]["images_per_step"] == 6
    assert {(r["onednn"], r["batch_size"]) for r in pred} == {(True, 1), (True, 8), (False, 1), (False, 8)}
    assert all(r["images_per_s"] > 0 and r["ms_per_batch"] > 0 and r["paddle"] for r in pred)
