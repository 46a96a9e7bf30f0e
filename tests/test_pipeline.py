"""adcommon.method.pipeline helpers that every val.py shares."""
import os

import numpy as np
import pytest

from adcommon.evaluate.evaluation import fmt_metric, summary_line
from adcommon.evaluate.maps import threshold_from_normals


def test_fmt_metric_handles_missing_and_nan():
    assert fmt_metric(None) == "n/a"
    assert fmt_metric(float("nan")) == "n/a"
    assert fmt_metric(0.98765) == "0.9877"


def test_summary_line_fields_and_extras():
    res = {"image_auroc": 0.9, "pixel_auroc": None, "aupro": 0.51234}
    line = summary_line("brick", res, "out/brick/metrics.json", pixel_note=" (ours)", paper_localization_AUROC=0.7)
    assert line.split("\t") == ["Category: brick", "Image AUROC: 0.9000", "Pixel AUROC (ours): n/a",
                                "AUPRO (ours): 0.5123", "paper localization AUROC: 0.7000",
                                "-> out/brick/metrics.json"]


def test_threshold_quantile_rule_is_the_empirical_quantile():
    s = np.arange(101, dtype=np.float64)
    assert threshold_from_normals(s, 0.99, rule="quantile") == 99.0
    assert threshold_from_normals([], 0.99) is None


def test_robust_threshold_fits_log_normal_scores():
    rng = np.random.default_rng(0)
    s = np.exp(rng.normal(1.0, 0.2, 100000))
    # the fitted 0.99 quantile of log-normal scores is exp(mu + 2.326 sigma)
    assert abs(threshold_from_normals(s, 0.99) - np.exp(1.0 + 2.3263 * 0.2)) < 0.02


def test_robust_threshold_ignores_a_few_odd_normals():
    rng = np.random.default_rng(1)
    clean = np.exp(rng.normal(0.0, 0.1, 30))
    odd = np.concatenate([clean, [5.0, 8.0]])            # two outliers among 32 held-out normals
    assert threshold_from_normals(odd, 0.99, rule="quantile") > 5.0   # the empirical quantile follows them
    robust = threshold_from_normals(odd, 0.99)
    assert 1.0 < robust < 1.6 and abs(robust - threshold_from_normals(clean, 0.99)) < 0.15


def test_robust_threshold_edge_cases():
    assert threshold_from_normals([2.0, 2.0, 2.0, 3.0], 0.99) == 3.0      # MAD 0: the largest score
    assert threshold_from_normals([-1.0, 0.0, 1.0, 2.0], 0.5) == 0.5       # not all positive: no log
    assert threshold_from_normals([1.0, 2.0], 0.5) == 1.5                  # too few for a fit


def test_val_outputs_are_built_aside_and_replace_the_previous_ones(tmp_path):
    from adcommon.evaluate.evaluation import built_aside
    out = tmp_path / "cat"
    out.mkdir()
    (out / "model.pdparams").write_bytes(b"m")
    for run in ("first", "second"):
        with built_aside(str(out), "val") as work:
            os.makedirs(os.path.join(work, "vis"))
            with open(os.path.join(work, "vis", f"{run}.png"), "w") as f:
                f.write(run)
            with open(os.path.join(work, "metrics.json"), "w") as f:
                f.write(run)
    assert sorted(os.listdir(out)) == ["metrics.json", "model.pdparams", "vis"]
    assert os.listdir(out / "vis") == ["second.png"] and (out / "metrics.json").read_text() == "second"
    with pytest.raises(KeyboardInterrupt):
        with built_aside(str(out), "val") as work:
            with open(os.path.join(work, "metrics.json"), "w") as f:
                f.write("third")
            raise KeyboardInterrupt
    assert sorted(os.listdir(out)) == ["metrics.json", "model.pdparams", "vis"]
    assert (out / "metrics.json").read_text() == "second"
