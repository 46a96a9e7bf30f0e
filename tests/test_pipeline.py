"""adcommon.pipeline helpers that every val.py shares."""
import numpy as np

from adcommon.pipeline import fmt_metric, summary_line, threshold_from_normals


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


def test_threshold_from_normals_is_the_quantile_of_normal_scores():
    s = np.arange(101, dtype=np.float64)
    assert threshold_from_normals(s, 0.99) == 99.0
    assert threshold_from_normals([], 0.99) is None
