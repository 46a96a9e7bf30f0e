import numpy as np
import paddle
import pytest

from padim.gaussian import GaussianAccumulator


def _features(n, d, p, seed):
    rng = np.random.default_rng(seed)
    # a large common offset: the shifted sums must keep float32 accurate
    return (rng.standard_normal((n, d, p)) * rng.uniform(0.5, 2, (1, d, 1)) + 50.0).astype(np.float32)


@pytest.mark.smoke
def test_mean_cov_equal_numpy_cov_over_batches():
    e = _features(23, 5, 7, 0)
    acc = GaussianAccumulator(5, 7)
    for i in range(0, 23, 4):   # uneven batches
        acc.add(paddle.to_tensor(e[i:i + 4]), chunk=3)   # chunks of positions too
    mean, cov = acc.mean_cov(eps=0.01)
    for p in range(7):
        ref = np.cov(e[:, :, p].astype(np.float64), rowvar=False) + 0.01 * np.eye(5)
        np.testing.assert_allclose(cov[p], ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(mean[p], e[:, :, p].mean(0), rtol=1e-5, atol=1e-4)


def test_inverse_and_too_few_images():
    e = _features(12, 3, 4, 2)
    acc = GaussianAccumulator(3, 4)
    acc.add(paddle.to_tensor(e))
    inv = paddle.zeros([4, 3, 3], "float32")
    buf = inv.data_ptr() if hasattr(inv, "data_ptr") else None
    assert acc.write_inverse(inv, chunk=3) is inv   # chunking across positions, written in place
    if buf is not None:
        assert inv.data_ptr() == buf
    _, cov = acc.mean_cov(chunk=3)
    eye = np.einsum("pij,pjk->pik", cov.astype(np.float64), inv.numpy().astype(np.float64))
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(3), eye.shape), atol=1e-4)
    one = GaussianAccumulator(3, 4)
    one.add(paddle.to_tensor(e[:1]))
    with pytest.raises(ValueError, match="at least 2"):
        one.mean_cov()
    with pytest.raises(ValueError, match="at least 2"):
        one.write_inverse(paddle.zeros([4, 3, 3], "float32"))


def test_left_out_sums_equal_a_fit_without_those_images():
    e = _features(20, 4, 6, 5)
    acc = GaussianAccumulator(4, 6)
    acc.add(e[:12])
    acc.add(e[12:])
    part = GaussianAccumulator(4, 6, shift=acc.shift)
    part.add(e[[1, 5, 13]])
    rest = np.delete(e, [1, 5, 13], axis=0)
    ref = GaussianAccumulator(4, 6)
    ref.add(rest)
    np.testing.assert_allclose(acc.mean(minus=part), ref.mean(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(acc.cov_chunk(0, 6, minus=part), ref.cov_chunk(0, 6), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="shift"):
        acc.mean(minus=ref)


def test_out_of_fold_fit_scores_every_image_and_ends_with_all_images():
    """engine.fit scores each fold with Gaussians fitted without it (equal to a separate fit on the
    other folds), sets the threshold from all these scores, and ends with the Gaussians of every image."""
    from padim import engine
    from padim.model import PaDiM
    paddle.seed(0)
    rng = np.random.default_rng(3)
    images = rng.standard_normal((15, 3, 64, 64)).astype(np.float32)
    model = PaDiM("resnet18", pretrained="none", d=6, image_size=64, crop_size=64)
    quiet = lambda *_: None  # noqa: E731
    stats = engine.fit(model, list(images), engine.FitSettings(batch_size=4, folds=3), log=quiet)
    assert stats["n_gaussian"] == 15 and stats["threshold"] is not None and len(stats["holdout_scores"]) == 15
    mean, inv = model.mean.numpy().copy(), model.inv_cov.numpy().copy()
    oof = np.array(stats["holdout_scores"])
    fold = engine.fold_of(15, 3, 0)
    k = fold[0]   # refit without image 0's fold: the same score for image 0
    engine.fit(model, list(images[fold != k]), engine.FitSettings(batch_size=4, folds=0), log=quiet)
    spec = engine.postprocess_spec(64)
    from adcommon.evaluate.maps import postprocess
    with paddle.no_grad():
        _, s0 = postprocess([model(paddle.to_tensor(images[:1])).numpy()], spec)
    np.testing.assert_allclose(s0[0], oof[0], rtol=1e-3)
    engine.fit(model, list(images), engine.FitSettings(batch_size=4, folds=0), log=quiet)
    np.testing.assert_allclose(mean, model.mean.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(inv, model.inv_cov.numpy(), rtol=1e-4, atol=1e-4)
