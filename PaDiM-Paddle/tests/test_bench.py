"""bench.py's scoring comparison runs and agrees with the reference loop (no timing assertions)."""
import os

from adcommon.tools.testing import load_script

HERE = os.path.dirname(os.path.abspath(__file__))


def test_scoring_benchmark_rows_agree_with_the_reference_loop():
    bench = load_script(os.path.join(HERE, "..", "bench.py"))
    rows = bench.scoring_speed(quick=True)
    assert [r["what"].split(": ")[1].split(" ")[0] for r in rows] == ["reference", "batched", "same"]
    for r in rows:
        assert r["value"].endswith(" ms") and float(r["value"].split()[0]) > 0
    # eager and exported distances both equal the per-position numpy/scipy loop
    assert rows[1]["max_abs_diff"] < 1e-3
