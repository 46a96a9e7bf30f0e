"""adcommon.method.pipeline against Paddle F.interpolate, cv2.resize and scipy gaussian_filter."""
import cv2
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from adbase import UserError
from adcommon.evaluate.maps import anomaly_maps, combine, gaussian_blur, image_scores, postprocess, upsample


def _paddle_bilinear(x, size):
    paddle = pytest.importorskip("paddle")
    import paddle.nn.functional as F

    paddle.set_device("cpu")
    t = paddle.to_tensor(x[:, None])  # (N, 1, h, w)
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False).numpy()[:, 0]


@pytest.mark.parametrize("src,dst", [((56, 56), (224, 224)), ((64, 64), (256, 256)),
                                     ((16, 16), (256, 256)), ((7, 9), (30, 17)),  # non-integer factors
                                     ((256, 256), (64, 64)), ((224, 224), (56, 50))])  # downsampling
def test_upsample_equals_paddle_interpolate(src, dst):
    x = np.random.default_rng(0).random((3,) + src).astype(np.float32) * 5
    ours = upsample(x, dst)
    assert ours.shape == (3,) + dst and ours.dtype == np.float32
    assert np.abs(ours - _paddle_bilinear(x, dst)).max() <= 1e-5


@pytest.mark.parametrize("src,dst", [((56, 56), (224, 224)), ((64, 64), (256, 256)), ((7, 9), (30, 17))])
def test_upsample_equals_cv2_inter_linear_when_enlarging(src, dst):
    # STFPM's reference resizes with cv2.resize(INTER_LINEAR): same half-pixel rule when enlarging
    x = np.random.default_rng(1).random((2,) + src).astype(np.float32)
    ref = np.stack([cv2.resize(m, (dst[1], dst[0]), interpolation=cv2.INTER_LINEAR) for m in x])
    assert np.abs(upsample(x, dst) - ref).max() <= 1e-5


def test_upsample_accepts_n1hw_int_size_and_same_size():
    x = np.random.default_rng(2).random((2, 1, 8, 8)).astype(np.float32)
    assert upsample(x, 32).shape == (2, 32, 32)
    same = upsample(x, (8, 8))
    assert np.array_equal(same, x[:, 0]) and same is not x
    c = np.full((1, 4, 4), 3.0)
    assert np.allclose(upsample(c, 16), 3.0)  # weights sum to 1
    with pytest.raises(UserError, match="shape"):
        upsample(np.zeros((2, 3, 8, 8)), 16)


def test_combine_modes():
    a = np.full((2, 4, 4), 2.0, np.float32)
    b = np.full((2, 1, 4, 4), 3.0, np.float32)
    assert np.allclose(combine([a, b], "product"), 6.0)
    assert np.allclose(combine([a, b], "sum"), 5.0)
    assert np.allclose(combine([a, b], "mean"), 2.5)
    out = combine([a], "product")
    out += 1
    assert np.allclose(a, 2.0)  # inputs are never modified
    with pytest.raises(UserError, match="shape"):
        combine([a, np.zeros((2, 5, 5))])
    with pytest.raises(UserError, match="mode"):
        combine([a, a], "max")


@pytest.mark.parametrize("sigma", [4, 1.5])
def test_gaussian_blur_equals_scipy_per_map(sigma):
    x = np.random.default_rng(3).random((3, 56, 60)).astype(np.float32) * 10
    ref = np.stack([gaussian_filter(m, sigma) for m in x])  # PaDiM's reference call
    out = gaussian_blur(x, sigma)
    assert out.dtype == np.float32 and np.abs(out - ref).max() <= 1e-5
    assert np.array_equal(gaussian_blur(x, None), x)


def test_anomaly_maps_order_upsample_then_combine_then_blur():
    rng = np.random.default_rng(4)
    raw = [rng.random((2, 1, s, s)).astype(np.float32) for s in (64, 32, 16)]  # STFPM's 3 layers
    out = anomaly_maps(raw, 256)
    ref = upsample(raw[0], 256) * upsample(raw[1], 256) * upsample(raw[2], 256)
    assert out.shape == (2, 256, 256) and out.dtype == np.float32
    assert np.abs(out - ref).max() <= 1e-6
    # product of upsampled maps differs from upsampling the product (order matters and is fixed)
    single = rng.random((2, 56, 56)).astype(np.float32)
    out = anomaly_maps(single, 224, sigma=4)  # PaDiM: one map, bilinear to 224, blur sigma 4
    ref = np.stack([gaussian_filter(m, 4) for m in _paddle_bilinear(single, (224, 224))])
    assert np.abs(out - ref).max() <= 1e-5


def test_anomaly_maps_accepts_paddle_tensor():
    paddle = pytest.importorskip("paddle")
    x = np.random.default_rng(5).random((1, 1, 8, 8)).astype(np.float32)
    assert np.array_equal(anomaly_maps(paddle.to_tensor(x), 16), upsample(x, 16))


def test_image_scores():
    m = np.zeros((3, 5, 5), np.float32)
    m[1, 2, 3] = 7.0
    m[2] = 1.0
    assert np.array_equal(image_scores(m), [0.0, 7.0, 1.0])
    assert np.allclose(image_scores(m, "mean"), [0.0, 7.0 / 25, 1.0])
    assert image_scores(m[:, None]).shape == (3,)
    with pytest.raises(UserError, match="reduce"):
        image_scores(m, "median")


def test_image_scores_top_fraction():
    """``top``: the mean of each map's highest share of pixels (at least one pixel, at most all)."""
    rng = np.random.default_rng(0)
    m = rng.random((4, 10, 10)).astype(np.float32)
    want = np.sort(m.reshape(4, -1), axis=1)[:, -5:].mean(1)
    np.testing.assert_allclose(image_scores(m, top=0.05), want, rtol=1e-6)
    np.testing.assert_allclose(image_scores(m, top=1e-6), m.max(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(image_scores(m, top=1.0), m.mean(axis=(1, 2)), rtol=1e-6)
    spec = {"out_size": 10, "combine": "product", "sigma": None, "map_outputs": [0], "score_output": None}
    maps, scores = postprocess([m[:, None]], dict(spec, score_top=0.05))
    np.testing.assert_allclose(scores, want, rtol=1e-6)
    assert np.array_equal(postprocess([m[:, None]], spec)[1], m.max(axis=(1, 2)))


def test_map_size_combines_at_intermediate_resolution():
    """STFPM's order: each layer to 64x64 (bilinear), product there, then the product to 256."""
    import paddle
    import paddle.nn.functional as F

    from adcommon.evaluate.maps import anomaly_maps
    rng = np.random.default_rng(3)
    raw = [rng.random((2, 1, s, s)).astype(np.float32) for s in (16, 8, 4)]
    got = anomaly_maps(raw, 64, "product", map_size=16)
    prod = np.ones((2, 1, 16, 16), np.float32)
    for r in raw:
        prod *= F.interpolate(paddle.to_tensor(r), size=(16, 16), mode="bilinear", align_corners=False).numpy()
    ref = F.interpolate(paddle.to_tensor(prod), size=(64, 64), mode="bilinear", align_corners=False).numpy()[:, 0]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
