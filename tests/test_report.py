"""report.html (adcommon.evaluate.report): the page's content, and the page in a real browser (headless Chromium
from Debian's package, installed by scripts/run_tests.sh): every image loads, sorting by score reorders
the grid, and a screenshot is taken."""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from adcommon.evaluate.report import label_from_path, write_report

SCORES = [0.31, 2.5, 0.12, 1.7, 0.95]


def _report(folder, with_metrics=True):
    os.makedirs(os.path.join(folder, "vis"), exist_ok=True)
    records = []
    for i, s in enumerate(SCORES):
        kind = "good" if s < 1 else "crack"
        pic = f"vis/{kind}_{i:03d}.png"
        Image.fromarray(np.full((40, 160, 3), 50 * i, np.uint8)).save(os.path.join(folder, pic))
        records.append({"path": f"/data/cat/test/{kind}/{i:03d}.png", "score": s, "label": kind, "picture": pic,
                        "verdict": "anomalous" if s >= 1.0 else "normal"})
    metrics = {"image_auroc": 1.0, "pixel_auroc": 0.97, "aupro": float("nan")} if with_metrics else None
    return write_report(folder, records, 1.0, metrics, title="test split")


def test_the_page_holds_every_image_the_histogram_and_the_metrics(tmp_path):
    page = open(_report(str(tmp_path)), encoding="utf-8").read()
    assert page.count('class="card ') == len(SCORES)
    assert len(re.findall(r'<img src="vis/', page)) == len(SCORES)
    assert 'id="histogram" alt="score histogram" src="data:image/png;base64,' in page
    assert "<td>image AUROC</td><td>1.0000</td>" in page and "AUPRO" not in page   # NaN is left out
    assert "5 images, 2 anomalous at the threshold (1)" in page
    assert "http" not in page.replace("http-equiv", "")   # nothing fetched from elsewhere


def test_labels_come_from_the_folder_layout_only():
    assert label_from_path("/d/cat/test/crack/001.png") == "crack"
    assert label_from_path("/d/cat/test/good/001.png") == "good"
    assert label_from_path("/line3/2026-11-30/001.png") is None


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _browse(path, *extra):
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--virtual-time-budget=5000"] + list(extra)
    return subprocess.run(cmd + [path], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium here: install Debian's chromium package "
                                                "(scripts/run_tests.sh does where apt-get can) to run the browser test")
def test_the_report_in_a_real_browser(tmp_path):
    page = _report(str(tmp_path))
    url = "file://" + os.path.abspath(page)

    def body(fragment=""):
        r = _browse(url + fragment, "--dump-dom")
        assert r.returncode == 0, r.stderr[-2000:]
        m = re.search(r"<body([^>]*)>", r.stdout)
        assert m, r.stdout[:2000]
        return dict(re.findall(r'data-(\w+)="([^"]*)"', m.group(1)))

    shown = body()
    assert shown["images"] == str(len(SCORES) + 1) and shown["broken"] == "0"   # panels + histogram
    order = shown["order"].split("|")
    by_score = dict(zip((f"/data/cat/test/{'good' if s < 1 else 'crack'}/{i:03d}.png" for i, s in enumerate(SCORES)),
                        SCORES))
    assert [by_score[p] for p in order] == sorted(SCORES, reverse=True)          # default: highest first
    ascending = body("#sort=score-asc")["order"].split("|")
    assert [by_score[p] for p in ascending] == sorted(SCORES) and ascending != order
    shot = str(tmp_path / "report.png")
    r = _browse(url, f"--screenshot={shot}", "--window-size=1280,900")
    assert r.returncode == 0 and os.path.getsize(shot) > 10_000
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.std() > 10   # the page was drawn, not a blank frame
