"""scripts/trace_files.py: the files an image's way through the code runs, as the docs count them."""
import os
import subprocess
import sys

from adcommon.tools.testing import tiny_synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_counts_the_files_of_a_train_and_val_run(tmp_path_factory, tmp_path):
    data = tiny_synthetic(tmp_path_factory, 64, 6, 2, 2, ("brick",), name="trace")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "trace_files.py"), "STFPM-Paddle", "train.py",
                        "--data_dir", data, "--category", "brick", "--pretrained", "none", "--image_size", "64",
                        "--epochs", "1", "--batch_size", "4", "--val", "True", "--output_dir", str(tmp_path / "o")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout[r.stdout.index("files of the repository"):].splitlines()
    files = [ln.strip() for ln in lines[1:] if ln.startswith("  ")]
    assert int(r.stdout.split(" files of the repository")[0].split()[-1]) == len(files)
    assert files[0].startswith("STFPM-Paddle/") and "STFPM-Paddle/train.py" in files
    for f in ("adcommon/method/pipeline.py", "adcommon/evaluate/metrics.py", "adcommon/evaluate/evaluation.py",
              "shared_data/dataset.py"):
        assert f in files
    assert not any("site-packages" in f for f in files)
    assert os.path.isfile(tmp_path / "o" / "brick" / "metrics.json")
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "trace_files.py"), "STFPM-Paddle", "nope.py"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "no nope.py" in bad.stderr
