"""scripts/run_all_mvtec.sh on a small synthetic root: runs, resumes, reports a failure and goes on."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(["bash", os.path.join(ROOT, "scripts", "run_all_mvtec.sh"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_run_all_runs_resumes_and_reports_failures(tmp_path):
    from shared_data.synthetic import generate
    data = tmp_path / "data"
    generate(str(data), ["brick", "tablet"], seed=0, image_size=64, n_train=8, n_test_good=3, n_test_defect=4)
    out = tmp_path / "out"
    common = ["--methods", "padim", "--data_dir", str(data), "--output_dir", str(out),
              "--backbone", "resnet18", "--pretrained", "none", "--extra", "--image_size 64 --crop_size 64"]
    r = _run("--categories", "brick,nosuchcat,tablet", *common)
    assert r.returncode == 1, r.stdout + r.stderr           # one category failed ...
    assert "FAILED padim/nosuchcat" in r.stdout and "unknown category" in r.stdout
    for c in ("brick", "tablet"):                            # ... the others went on
        m = json.load(open(out / "padim" / c / "metrics.json"))
        assert m["image_auroc"] is not None
        assert (out / "padim" / c / "run.log").is_file()
    assert (out / "results.md").is_file() and "brick" in (out / "results.md").read_text()

    for c in ("brick", "tablet"):
        assert (out / "padim" / c / "run_all.done").is_file()
    r = _run("--categories", "brick,tablet", *common)        # resume: nothing to do
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("skip   padim/") == 2

    # a run stopped after metrics.json (no marker) is not taken as finished
    os.remove(out / "padim" / "tablet" / "run_all.done")
    r = _run("--categories", "brick,tablet", *common)
    assert r.returncode == 0 and r.stdout.count("skip   padim/") == 1 and "done   padim/tablet" in r.stdout

    before = os.path.getmtime(out / "padim" / "brick" / "metrics.json")
    r = _run("--categories", "brick", "--force", *common)
    assert r.returncode == 0 and os.path.getmtime(out / "padim" / "brick" / "metrics.json") > before


def test_run_all_rejects_unknown_method(tmp_path):
    r = _run("--methods", "padim,foo", "--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "o"))
    assert r.returncode == 2 and "unknown method 'foo'" in r.stderr


@pytest.mark.slow
def test_two_shards_share_the_jobs_and_their_folders_merge_into_one_table(tmp_path):
    from shared_data.synthetic import generate
    data = tmp_path / "data"
    generate(str(data), ["brick", "tablet"], seed=0, image_size=64, n_train=8, n_test_good=3, n_test_defect=4)
    common = ["--methods", "padim", "--categories", "brick,tablet", "--data_dir", str(data),
              "--backbone", "resnet18", "--pretrained", "none", "--extra", "--image_size 64"]
    for i in (1, 2):
        r = _run("--shard", f"{i}/2", "--output_dir", str(tmp_path / f"machine{i}"), *common)
        assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(os.listdir(tmp_path / "machine1" / "padim")) == ["brick"]      # job 1 of 2
    assert sorted(os.listdir(tmp_path / "machine2" / "padim")) == ["tablet"]     # job 2 of 2
    merged = tmp_path / "all"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "collect_results.py"), "--output_dir",
                        str(tmp_path / "machine1"), str(tmp_path / "machine2"), "--results_dir", str(merged)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    table = (merged / "results.md").read_text()
    assert "| brick | tablet | Avg |" in table
    # the same category in two folders counts once: the later run, with a note
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "collect_results.py"), "--output_dir",
                        str(tmp_path / "machine1"), str(tmp_path / "machine1"), "--results_dir", str(merged)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "note: padim/brick is in" in r.stderr


@pytest.mark.parametrize("shard", ["0/2", "3/2", "1of2", "a/b"])
def test_run_all_rejects_a_bad_shard(tmp_path, shard):
    r = _run("--shard", shard, "--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "o"))
    assert r.returncode == 2 and "--shard takes i/n" in r.stderr


@pytest.mark.slow
def test_sigterm_stops_the_whole_run(tmp_path):
    """SIGTERM (a process manager) stops run_all_mvtec.sh as a whole: the train.py in progress gets it too
    (its lock is free again at once), the next category never starts, no marker is written, exit 143."""
    import signal
    import time

    from adcommon.outputs import folder_lock
    from shared_data.synthetic import generate
    data = tmp_path / "data"
    generate(str(data), ["brick", "tablet"], seed=0, image_size=64, n_train=8, n_test_good=2, n_test_defect=2)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.Popen(["bash", os.path.join(ROOT, "scripts", "run_all_mvtec.sh"), "--methods", "stfpm",
                             "--categories", "brick,tablet", "--data_dir", str(data), "--output_dir", str(out),
                             "--pretrained", "none", "--epochs", "500", "--extra", "--image_size 64"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = out / "stfpm" / "brick" / ".lock"
    t0 = time.time()
    while not lock.exists() and proc.poll() is None and time.time() - t0 < 120:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err.strip().splitlines()[-1] == "error: terminated", err
    with folder_lock(str(out / "stfpm" / "brick")):   # nobody holds it: the training stopped with the script
        pass
    assert "error: terminated" in (out / "stfpm" / "brick" / "run.log").read_text()
    assert not (out / "stfpm" / "brick" / "run_all.done").exists() and not (out / "stfpm" / "tablet").exists()


def test_a_shard_without_a_job_is_an_error(tmp_path):
    (tmp_path / "data" / "brick").mkdir(parents=True)
    r = _run("--methods", "padim", "--categories", "brick", "--shard", "2/3", "--data_dir", str(tmp_path / "data"),
             "--output_dir", str(tmp_path / "o"))
    assert r.returncode == 2 and "has no job" in r.stderr and "all runs finished" not in r.stdout


@pytest.mark.parametrize("code", [130, 143])
def test_the_quick_start_stops_at_the_first_interrupted_step(tmp_path, code):
    """train.py stopped by Ctrl-C (130) or SIGTERM (143): no later step runs and the quick start exits so.
    A stand-in Python records the steps it is asked to run (set -e has no effect inside `if ! ( ... )`,
    which once let val/predict/export/infer run after an interrupted train.py)."""
    calls = tmp_path / "calls"
    fake = tmp_path / "python"
    fake.write_text(f"""#!/usr/bin/env bash
case "$1" in
    train.py|val.py|predict.py|export_model.py|infer.py)
        echo "$1" >> {calls}; [ "$1" = train.py ] && exit {code}; exit 0 ;;
    *) exec {sys.executable} "$@" ;;
esac
""")
    fake.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake))
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "quickstart.sh"), "--skip_install", "--methods", "padim",
                        "--categories", "brick", "--data_dir", str(tmp_path / "data"), "--output_dir",
                        str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == code, r.stdout + r.stderr
    assert calls.read_text().split() == ["train.py"]
    assert r.stderr.strip().splitlines()[-1] == f"error: {'terminated' if code == 143 else 'interrupted'}"


def test_the_recipe_flag_takes_the_method_tables_flags(tmp_path):
    """--recipe real passes methods.tsv's real column to train.py (flags given after it come later and win);
    the marker records the recipe and each stage's seconds; an unknown recipe is refused."""
    from adcommon import methods
    (tmp_path / "data" / "brick").mkdir(parents=True)
    calls = tmp_path / "calls"
    fake = tmp_path / "python"
    fake.write_text(f"""#!/usr/bin/env bash
case "$1" in
    train.py|val.py) echo "$*" >> {calls}; exit 0 ;;
    *) exec {sys.executable} "$@" ;;
esac
""")
    fake.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake))
    base = ["bash", os.path.join(ROOT, "scripts", "run_all_mvtec.sh"), "--methods", "stfpm", "--categories", "brick",
            "--data_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "out")]
    r = subprocess.run(base + ["--recipe", "real", "--epochs", "3"], env=env, capture_output=True, text=True,
                       timeout=300)
    train = calls.read_text().splitlines()[0]
    assert methods.get("stfpm").real in train and train.endswith("--epochs 3"), train
    import yaml
    marker = yaml.safe_load((tmp_path / "out" / "stfpm" / "brick" / "run_all.done").read_text())
    assert marker["recipe"] == "real" and {"train_seconds", "val_seconds", "seconds"} <= set(marker), r.stdout
    r = subprocess.run(base + ["--recipe", "fast"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--recipe takes paper, real or quickstart" in r.stderr


@pytest.mark.parametrize("code", [130, 143])
def test_run_all_stops_at_the_first_interrupted_step(tmp_path, code):
    """A train.py stopped by a signal sent to it alone (exit 130 / 143): run_all_mvtec.sh does not go on to
    val.py or the next category, and ends with the same code."""
    for c in ("brick", "tablet"):
        (tmp_path / "data" / c).mkdir(parents=True)
    calls = tmp_path / "calls"
    fake = tmp_path / "python"
    fake.write_text(f"""#!/usr/bin/env bash
case "$1" in
    train.py|val.py) echo "$1" >> {calls}; [ "$1" = train.py ] && exit {code}; exit 0 ;;
    *) exec {sys.executable} "$@" ;;
esac
""")
    fake.chmod(0o755)
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "run_all_mvtec.sh"), "--methods", "padim",
                        "--categories", "brick,tablet", "--data_dir", str(tmp_path / "data"), "--output_dir",
                        str(tmp_path / "out")], env=dict(os.environ, PYTHON=str(fake)), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == code, r.stdout + r.stderr
    assert calls.read_text().split() == ["train.py"]
    assert r.stderr.strip().splitlines()[-1] == f"error: {'terminated' if code == 143 else 'interrupted'}"
