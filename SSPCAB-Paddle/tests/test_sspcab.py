"""The SSPCAB block: shape, the masked centre, the corner sub-kernels, the channel attention."""
import numpy as np
import pytest

paddle = pytest.importorskip("paddle")
import paddle.nn.functional as F  # noqa: E402

from sspcab.sspcab import SSPCAB, count_parameters  # noqa: E402


def _block(c=8, k=1, d=1, seed=0):
    paddle.seed(seed)
    b = SSPCAB(c, kernel_dim=k, dilation=d, reduction_ratio=4)
    b.eval()
    return b


@pytest.mark.parametrize("k,d", [(1, 1), (2, 1), (1, 2), (3, 0)])
def test_output_has_input_shape(k, d):
    b = _block(k=k, d=d)
    x = paddle.randn([2, 8, 9, 7])
    assert b(x).shape == [2, 8, 9, 7]
    assert b.masked_conv(x).shape == [2, 8, 9, 7]


@pytest.mark.smoke
def test_centre_pixel_is_masked():
    """Changing the input at (i, j) (all channels) leaves the pre-attention output at (i, j) unchanged,
    while the outputs whose corners see (i, j) do change."""
    b = _block()
    x = paddle.randn([1, 8, 10, 10])
    y0 = b.masked_conv(x).numpy()
    x2 = x.numpy().copy()
    x2[:, :, 5, 4] += 10.0
    y1 = b.masked_conv(paddle.to_tensor(x2)).numpy()
    np.testing.assert_array_equal(y0[:, :, 5, 4], y1[:, :, 5, 4])
    changed = np.argwhere(np.abs(y1 - y0).max(axis=(0, 1)) > 0)
    # with k' = d = 1 the pixel (5, 4) is a corner of exactly the outputs (5 +- 2, 4 +- 2)
    assert {tuple(p) for p in changed} <= {(3, 2), (3, 6), (7, 2), (7, 6)}
    assert len(changed) > 0


def test_masked_conv_equals_a_dense_kernel_with_zeros():
    """Independent check: the four shifted k' x k' convolutions = one (2k'+2d+1)^2 convolution whose
    weights are the sub-kernels in the corners and zero elsewhere (the centre above all)."""
    k, d, c = 2, 1, 3
    b = _block(c=c, k=k, d=d)
    size = 2 * k + 2 * d + 1
    w = np.zeros((c, c, size, size), np.float32)
    subs = [b.conv1, b.conv2, b.conv3, b.conv4]
    # conv1 sees the top-left corner, conv2 bottom-left, conv3 top-right, conv4 bottom-right
    corners = [(0, 0), (size - k, 0), (0, size - k), (size - k, size - k)]
    for conv, (r, col) in zip(subs, corners):
        w[:, :, r:r + k, col:col + k] = conv.weight.numpy()
    bias = sum(conv.bias.numpy() for conv in subs)
    x = paddle.randn([2, c, 11, 9])
    dense = F.relu(F.conv2d(x, paddle.to_tensor(w), paddle.to_tensor(bias), padding=k + d))
    np.testing.assert_allclose(b.masked_conv(x).numpy(), dense.numpy(), atol=1e-5)
    assert np.all(w[:, :, k + d, k + d] == 0)


def test_channel_attention_rescales_each_channel():
    b = _block()
    x = paddle.randn([2, 8, 6, 6])
    z, out = b.masked_conv(x).numpy(), b(x).numpy()
    pos = z > 1e-6
    ratio = np.where(pos, out / np.where(pos, z, 1), np.nan)            # sigmoid weight per (n, c)
    spread = np.nanmax(ratio, axis=(2, 3)) - np.nanmin(ratio, axis=(2, 3))
    assert np.nanmax(spread) < 1e-5 and np.nanmin(ratio) > 0 and np.nanmax(ratio) < 1


def test_parameter_count():
    # four C x C x k' x k' convolutions with bias + SE: C -> C/r -> C
    b = SSPCAB(512, 1, 1, 8)
    assert count_parameters(b) == 4 * (512 * 512 + 512) + (512 * 64 + 64) + (64 * 512 + 512)


@pytest.mark.parametrize("p", [0, 1, 2, 3])
def test_zero_pad_is_f_pad(p):
    """The masked convolution's padding, built from concatenations so that paddle2onnx keeps its zeros
    (its pad3d conversion loses the fill value), equals F.pad exactly."""
    from sspcab.sspcab import zero_pad
    x = paddle.to_tensor(np.random.default_rng(p).standard_normal((2, 5, 4, 6)).astype("float32"))
    np.testing.assert_array_equal(zero_pad(x, p).numpy(), F.pad(x, [p, p, p, p]).numpy())
