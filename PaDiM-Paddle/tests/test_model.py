import random

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest
from scipy.spatial.distance import mahalanobis

from padim.model import PaDiM, random_channel_index


@pytest.fixture(scope="module")
def model():
    paddle.seed(0)
    m = PaDiM("resnet18", pretrained="none", image_size=64, crop_size=64)
    m.eval()
    return m


def test_shapes_and_paper_dims(model):
    assert model.model_args["d"] == 100 and model.grid == 16
    x = paddle.randn([2, 3, 64, 64])
    with paddle.no_grad():
        e = model.embed(x)
        out = model(x)
    assert e.shape == [2, 100, 256] and out.shape == [2, 1, 16, 16]


def test_channel_index_is_the_references_and_saved(model):
    random.seed(1024)
    assert random_channel_index(448, 100, 1024) == random.sample(range(0, 448), 100)
    assert "channel_idx" in model.state_dict()
    np.testing.assert_array_equal(model.channel_idx.numpy(), random_channel_index(448, 100, 1024))


def test_alignment_equals_nearest_interpolation(model):
    x = paddle.randn([1, 3, 64, 64])
    with paddle.no_grad():
        f1, f2, f3 = model.backbone(x)
        ref = paddle.concat([f1, F.interpolate(f2, size=f1.shape[2:], mode="nearest"),
                             F.interpolate(f3, size=f1.shape[2:], mode="nearest")], axis=1)
        ref = paddle.index_select(ref, model.channel_idx, axis=1).flatten(2)
        np.testing.assert_array_equal(model.embed(x).numpy(), ref.numpy())


@pytest.mark.smoke
def test_batched_mahalanobis_equals_per_position_reference():
    """The reference's loop: numpy inverse per position, scipy mahalanobis per sample."""
    paddle.seed(1)
    m = PaDiM("resnet18", pretrained="none", d=6, image_size=64, crop_size=64)
    m.eval()
    rng = np.random.default_rng(0)
    P, d = m.mean.shape
    covs = []
    for _ in range(P):
        a = rng.standard_normal((d, d))
        covs.append(a @ a.T + 0.5 * np.eye(d))
    covs = np.stack(covs)
    mean = rng.standard_normal((P, d)).astype(np.float32)
    m.mean.set_value(paddle.to_tensor(mean))
    m.inv_cov.set_value(paddle.to_tensor(np.linalg.inv(covs).astype(np.float32)))
    e = rng.standard_normal((3, d, P)).astype(np.float32)
    with paddle.no_grad():
        got = m.distance(paddle.to_tensor(e)).numpy().reshape(3, P)
    ref = np.array([[mahalanobis(e[n, :, p], mean[p], np.linalg.inv(covs[p])) for p in range(P)] for n in range(3)])
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3)


def test_wide_resnet50_uses_paper_dims():
    m = PaDiM("wide_resnet50_2", pretrained="none", image_size=64, crop_size=64)
    assert sum(m.backbone.channels) == 1792 and m.model_args["d"] == 550
    assert m.inv_cov.shape == [256, 550, 550]
