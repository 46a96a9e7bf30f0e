"""bench.py runs and returns rows (speed goals are checked by scripts/benchmark.py, never asserted here)."""
import os

import pytest

from adcommon.cli import load_script

from kdad_testutil import HERE


@pytest.mark.slow
def test_bench_quick_returns_rows():
    mod = load_script(os.path.join(HERE, "bench.py"))
    rows = mod.run(quick=True)
    assert rows and all({"method", "what", "value", "note"} <= set(r) for r in rows)
    whats = " ".join(r["what"] for r in rows)
    assert "train" in whats and "batch 1" in whats and "batch 8" in whats
