"""bench.py runs and returns rows (speed goals are checked by scripts/benchmark.py, never asserted here)."""
import importlib.util
import os

import pytest

from kdad_testutil import HERE


@pytest.mark.slow
def test_bench_quick_returns_rows():
    spec = importlib.util.spec_from_file_location("kdad_bench", os.path.join(HERE, "bench.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.run(quick=True)
    assert rows and all({"method", "what", "value", "note"} <= set(r) for r in rows)
    whats = " ".join(r["what"] for r in rows)
    assert "train" in whats and "batch 1" in whats and "batch 8" in whats
