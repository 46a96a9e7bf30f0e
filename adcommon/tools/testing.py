"""Helpers for tests that compare two ways of computing the same training run."""
import numpy as np


def assert_within_float_noise(state, ref, jittered, factor=3.0):
    """Assert that ``state`` differs from ``ref`` (dicts name -> array, e.g. weights after a few
    training steps) by no more than float noise does: ``jittered`` is ``ref``'s run repeated on inputs
    changed by ~1e-6 (relative), and the distance over all arrays may be at most ``factor`` times the
    distance of that run. ReLU masks and max-pool choices flip under such changes, so the noise of a
    short training run is far above float32 epsilon; a real bug (a missing update, a wrong gradient)
    is far above this bound."""
    d = sum(float(np.sum((np.asarray(state[k], np.float64) - np.asarray(ref[k], np.float64)) ** 2)) for k in ref)
    n = sum(float(np.sum((np.asarray(jittered[k], np.float64) - np.asarray(ref[k], np.float64)) ** 2)) for k in ref)
    scale = sum(float(np.sum(np.asarray(ref[k], np.float64) ** 2)) for k in ref)
    assert n > 0, "the jittered run equals the reference: it cannot measure float noise"
    assert np.sqrt(d) <= factor * np.sqrt(n) + 1e-7 * np.sqrt(scale), \
        f"distance {np.sqrt(d):.3g} exceeds {factor} x the float-noise distance {np.sqrt(n):.3g}"


def file_bytes(folder):
    """{path relative to folder: bytes} of every file below ``folder``, hidden ones too: what a test compares
    before and after a run that must leave a folder as it was."""
    import os
    out = {}
    for d, _, files in os.walk(folder):
        for name in files:
            p = os.path.join(d, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, folder)] = f.read()
    return out


def load_script(path):
    """Import a paper folder's script (train.py, bench.py, ...) from its path, under a name unique to
    that folder: every folder has its own train.py, so a bare ``import train`` in a test session or a
    benchmark that visits several folders could return another folder's module."""
    import importlib.util
    import os
    path = os.path.abspath(path)
    folder, name = os.path.basename(os.path.dirname(path)), os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f"{folder.replace('-', '_')}_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tiny_synthetic(tmp_path_factory, image_size, n_train, n_test_good, n_test_defect, categories=("brick",),
                   name="syn"):
    """A small synthetic MVTec-layout folder for a test session (seed 0, exact masks): its root."""
    from shared_data.synthetic import generate
    root = str(tmp_path_factory.mktemp(name))
    generate(root, list(categories), seed=0, image_size=image_size, n_train=n_train, n_test_good=n_test_good,
             n_test_defect=n_test_defect)
    return root


def backends_agree(folder, model_path, images, tmp, export_args=()):
    """Export ``model_path`` (a checkpoint of the paper folder ``folder``) with ``--onnx True`` and score
    ``images`` with that folder's infer.py on every runtime installed here, as a user runs them: every
    image score and map (--save_maps npy) must equal Paddle Inference's within 1e-4 of its scale.
    Returns the backends compared (Paddle Inference and ONNX Runtime at least)."""
    import json
    import os
    import subprocess
    import sys

    def run(script, *args):
        r = subprocess.run([sys.executable, script, *map(str, args)], cwd=folder, capture_output=True, text=True,
                           timeout=900)
        assert r.returncode == 0, f"{script} {args}:\n{r.stderr[-2000:]}"
        return r
    export = os.path.join(str(tmp), "inference")
    run("export_model.py", "--model_path", model_path, "--save_dir", export, "--onnx", "True", *export_args)
    backends = ["paddle", "onnxruntime"]
    try:
        import openvino  # noqa: F401
        backends.append("openvino")
    except ImportError:
        pass
    results = {}
    for b in backends:
        out = os.path.join(str(tmp), f"res_{b}")
        run("infer.py", "--model_dir", export, "--img_path", images, "--save_dir", out, "--backend", b,
            "--save_maps", "npy", "--save_vis", "False", "--batch_size", "2")
        with open(os.path.join(out, "predictions.jsonl"), encoding="utf-8") as f:
            recs = [json.loads(line) for line in f]
        results[b] = {r["path"]: (r["score"], np.load(os.path.join(out, r["files"]["map"]))) for r in recs}
    ref = results["paddle"]
    assert ref, "no images scored"
    for b in backends[1:]:
        assert set(results[b]) == set(ref), b
        for path, (score, amap) in ref.items():
            s2, m2 = results[b][path]
            assert abs(s2 - score) <= 1e-4 * max(1.0, abs(score)), (b, path, score, s2)
            scale = max(1.0, float(np.nanmax(np.abs(amap))))
            diff = np.nanmax(np.abs(m2 - amap)) / scale
            assert diff <= 1e-4 and np.array_equal(np.isnan(m2), np.isnan(amap)), (b, path, diff)
    return backends


def launch(args, log_dir, cwd, timeout=600, env=None):
    """``args`` (a script and its arguments) run by two CPU processes under paddle.distributed.launch
    (adcommon.distributed.launch_command), in ``cwd``: the CompletedProcess."""
    import subprocess

    from adcommon.distributed import launch_command
    cmd, base = launch_command(2, log_dir)
    return subprocess.run(cmd + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(base, **(env or {})))


def alone_and_launched(script, tmp_path):
    """``script OUT.npz`` run by one process and by two under the launcher: the two npz files."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "one.npz")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = launch([script, tmp_path / "two.npz"], tmp_path / "log", str(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:]
    return np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")


def distributed_data(tmp_path_factory):
    """The data of the data-parallel tests: brick at 64 px, 23 training images (odd: shares differ)."""
    return tiny_synthetic(tmp_path_factory, 64, 23, 2, 2, name="dist_data")


def start_serve(folder, *args, env=None):
    """``python serve.py --port 0 ARGS`` in the paper folder ``folder`` (the tests, the service benchmark):
    (the process, its base URL read from the line it prints once it listens). The process is killed and
    AssertionError raised when it does not start."""
    import os
    import re
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "serve.py", "--port", "0", *map(str, args)], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})))
    line = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not found:
        proc.kill()
        raise AssertionError(f"serve.py did not start: {line!r} {proc.stderr.read()[-2000:]}")
    return proc, f"http://127.0.0.1:{found.group(1)}"

