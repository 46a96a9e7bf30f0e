"""scripts/collect_results.py: damaged metrics files are skipped with a warning, a user's file is never
written over, and the real-image table carries what a line sees and the minutes of each stage."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "collect_results.py")


def _collect(*args):
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=120)


def _run(out, method, category, **metrics):
    d = out / method / category
    d.mkdir(parents=True)
    m = {"method": method, "category": category, "image_auroc": 0.9, "pixel_auroc": 0.95, "aupro": 0.8,
         "recall_at_threshold": 0.5, "fpr_at_threshold": 0.1, "date": "2026-12-07 10:00:00",
         "machine": {"cpu": "Test CPU", "device": "cpu", "paddle": "3.3.1"}}
    m.update(metrics)
    (d / "metrics.json").write_text(json.dumps(m))
    (d / "args.yml").write_text("backbone: efficientnet_lite0\nimage_size: 256\nepochs: 20\n")
    (d / "run_all.done").write_text("finished: 2026-12-07 10:00:00\nrecipe: real\ntrain_seconds: 600\n"
                                    "val_seconds: 60\nseconds: 660\n")
    return d


def test_damaged_metrics_files_are_skipped_with_a_warning(tmp_path):
    out = tmp_path / "out"
    _run(out, "stfpm", "screw")
    (_run(out, "padim", "screw") / "metrics.json").write_text('{"method": "padim", "image_au')   # truncated
    (_run(out, "kdad", "screw") / "metrics.json").write_text("[1, 2]")                         # not a mapping
    _run(out, "sspcab", "screw", image_auroc="high")                                           # wrong type
    r = _collect("--output_dir", out)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    warned = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warned) == 3 and any("padim" in w for w in warned) and any("kdad" in w for w in warned)
    assert "### stfpm" in r.stdout and "### padim" not in r.stdout


def test_a_users_file_of_the_same_name_is_never_written_over(tmp_path):
    out = tmp_path / "out"
    _run(out, "stfpm", "screw")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.md").write_text("# my notes\n")
    r = _collect("--output_dir", out, "--results_dir", mine)
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and "not written by" in r.stderr
    assert (mine / "results.md").read_text() == "# my notes\n" and not (mine / "results.csv").exists()
    r = _collect("--output_dir", out, "--results_dir", mine / "results.md")   # a file where a folder should be
    assert r.returncode == 2 and "is a file" in r.stderr
    assert _collect("--output_dir", out).returncode == 0          # its own files: written again and again
    assert _collect("--output_dir", out).returncode == 0


def test_the_real_image_table(tmp_path):
    out = tmp_path / "out"
    _run(out, "stfpm", "screw", image_auroc=0.871, recall_at_threshold=0.42, fpr_at_threshold=0.073)
    r = _collect("--output_dir", out, "--table", "real")
    assert r.returncode == 0, r.stderr
    row = next(ln for ln in r.stdout.splitlines() if ln.startswith("| stfpm | screw"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:8] == ["87.1", "95.0", "80.0", "42.0", "7.3"]
    assert cells[8] == "10.0 + 1.0"                                  # minutes of train.py and val.py
    assert "seed" in cells[9] and "85.6 / 98.2" in cells[9]          # scripts/reference_figures.tsv
    assert "Test CPU" in r.stdout
