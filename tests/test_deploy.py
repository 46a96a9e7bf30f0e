"""infer.py on a production line, run as a user runs it: a watched camera folder, a run killed half-way
and resumed, a runtime whose package is missing. One tiny PaDiM model (random ResNet-18, 64 px) exported
once for the module."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PADIM = os.path.join(ROOT, "PaDiM-Paddle")


def _run(*args, env=None):
    return subprocess.run([sys.executable, *map(str, args)], cwd=PADIM, capture_output=True, text=True, timeout=600,
                          env=env)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from shared_data.synthetic import generate
    base = tmp_path_factory.mktemp("deploy")
    data = str(base / "data")
    generate(data, ["brick"], seed=0, image_size=64, n_train=6, n_test_good=4, n_test_defect=4)
    out = str(base / "out")
    for args in (["train.py", "--data_dir", data, "--category", "brick", "--output_dir", out, "--pretrained", "none",
                  "--image_size", "64"],
                 ["export_model.py", "--output_dir", out, "--category", "brick"]):
        r = _run(*args)
        assert r.returncode == 0, r.stderr[-2000:]
    test = os.path.join(data, "brick", "test")
    images = sorted(os.path.join(d, f) for d, _, fs in os.walk(test) for f in fs)
    return os.path.join(out, "brick", "inference"), images


def _lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_a_watched_folder_scores_each_image_once_it_is_complete(exported, tmp_path):
    """--watch: images dropped into a camera folder are scored as they arrive, one JSON line each; a file
    still being written is left until it is complete; one whose writer stalls longer than a poll is
    recorded unreadable, then scored again when it changes; SIGTERM ends it with 143."""
    import threading
    model, images = exported
    cam, res = tmp_path / "camera", tmp_path / "results"
    cam.mkdir()
    proc = subprocess.Popen([sys.executable, "infer.py", "--model_dir", model, "--img_path", str(cam), "--save_dir",
                             str(res), "--watch", "True", "--poll", "0.5", "--save_vis", "False"], cwd=PADIM,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got = []
    reader = threading.Thread(target=lambda: got.extend(json.loads(ln) for ln in proc.stdout if ln.startswith("{")),
                              daemon=True)
    reader.start()

    def wait_for(n, limit=90):
        t0 = time.time()
        while len(got) < n and time.time() - t0 < limit and proc.poll() is None:
            time.sleep(0.05)
        return [os.path.basename(r["path"]) for r in got]
    try:
        shutil.copy(images[0], cam / "a.png")
        assert wait_for(1) == ["a.png"]
        data = open(images[1], "rb").read()
        with open(cam / "b.png", "wb") as f:   # a camera writing in chunks, faster than the polls
            for k in range(8):
                f.write(data[k * len(data) // 8:(k + 1) * len(data) // 8])
                f.flush()
                time.sleep(0.1)
        shutil.copy(images[2], cam / ".c.png.part")   # a copy renamed into place when complete
        os.replace(cam / ".c.png.part", cam / "c.png")
        assert wait_for(3) == ["a.png", "b.png", "c.png"]
        with open(cam / "d.png", "wb") as f:   # a writer that stalls for 3 s half-way
            f.write(data[:len(data) // 2])
            f.flush()
            time.sleep(3.0)
            f.write(data[len(data) // 2:])
        assert wait_for(4) == ["a.png", "b.png", "c.png", "d.png"]
        assert all(r["score"] > 0 for r in got)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    err = proc.stderr.read()
    assert proc.returncode == 143 and err.strip().splitlines()[-1] == "error: terminated", err[-2000:]
    assert sum(ln.startswith("warning: cannot read image") and "d.png" in ln for ln in err.splitlines()) == 1, err
    lines = _lines(res / "predictions.jsonl")
    assert [os.path.basename(r["path"]) for r in lines] == ["a.png", "b.png", "c.png", "d.png", "d.png"]
    assert lines[3]["verdict"] == "unreadable" and lines[4]["score"] == got[3]["score"]


@pytest.mark.slow
def test_a_run_killed_half_way_resumes_without_scoring_again(exported, tmp_path):
    model, images = exported
    many = tmp_path / "day"
    many.mkdir()
    for i in range(60):
        shutil.copy(images[i % len(images)], many / f"{i:03d}.png")
    res = tmp_path / "results"
    cmd = [sys.executable, "infer.py", "--model_dir", model, "--img_path", str(many), "--save_dir", str(res),
           "--batch_size", "2", "--save_vis", "True"]
    proc = subprocess.Popen(cmd, cwd=PADIM, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    jsonl = res / "predictions.jsonl"
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < 120:
        if jsonl.is_file() and jsonl.read_text().count("\n") >= 10:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.02)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143, err[-2000:]
    first = _lines(jsonl)
    assert 10 <= len(first) < 60 and not (res / "summary.json").exists()
    r = _run(*cmd[1:], "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{len(first)} image(s) already in" in r.stderr
    assert r.stdout.count("\tscore ") == 60 - len(first)   # only the others were scored
    recs = _lines(jsonl)
    assert recs[:len(first)] == first and sorted(x["path"] for x in recs) == sorted(str(p) for p in many.iterdir())
    assert json.loads((res / "summary.json").read_text())["images"] == 60
    fresh = tmp_path / "fresh"
    assert _run(*cmd[1:6], "--save_dir", fresh, "--batch_size", "2").returncode == 0
    assert {x["path"]: x["score"] for x in _lines(fresh / "predictions.jsonl")} == {x["path"]: x["score"]
                                                                                   for x in recs}


def test_a_runtime_whose_package_is_missing_says_what_to_install(exported, tmp_path):
    model, images = exported
    blocked = tmp_path / "blocked"
    for name in ("onnxruntime", "openvino"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text("raise ImportError('not installed here')\n")
    env = dict(os.environ, PYTHONPATH=f"{blocked}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    for backend in ("onnxruntime", "openvino"):
        r = _run("infer.py", "--model_dir", model, "--img_path", images[0], "--save_dir", tmp_path / backend,
                 "--backend", backend, env=env)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "warn" not in ln.lower()]
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert f"--backend {backend} needs the {backend} package" in lines[0] and "pip install" in lines[0]
        assert not (tmp_path / backend).exists()
