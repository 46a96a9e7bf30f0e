"""bench.py runs and returns rows (speed goals are checked by scripts/benchmark.py, never asserted here)."""
import os

import pytest
from kdad_testutil import HERE

from adcommon.tools.testing import load_script


@pytest.mark.slow
def test_bench_quick_returns_rows():
    mod = load_script(os.path.join(HERE, "bench.py"))
    rows = mod.run(quick=True)
    assert rows and all({"method", "value"} <= set(r) and ("what" in r or "name" in r) for r in rows)
    whats = " ".join(r.get("what") or r["name"] for r in rows)
    assert "train_images_per_s" in whats and "batch 1" in whats and "batch 8" in whats
    modes = {r["mode"] for r in rows if r.get("name") == "train_images_per_s"}
    assert "eager, expert every step (reference)" in modes and "eager, expert cached" in modes
