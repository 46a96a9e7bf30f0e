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
