"""SSPCAB: Self-Supervised Predictive Convolutional Attentive Block (Ristea et al., CVPR 2022).

A masked convolution (four k' x k' sub-kernels in the corners of a (2k' + 2d + 1)^2 receptive field
whose 1 x 1 centre is hidden) predicts every input value from its context, then a squeeze-and-excitation
channel attention rescales the prediction. The block keeps the input's shape, so it replaces an
ordinary C -> C convolution; its self-supervised loss is MSE(output, input) (paper Sec. 3, L_SSPCAB).
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F


class SELayer(nn.Layer):
    """Channel attention: global average -> Linear(C, C/r) -> ReLU -> Linear(C/r, C) -> sigmoid -> scale."""

    def __init__(self, channels, reduction_ratio=8):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction_ratio)
        self.fc2 = nn.Linear(channels // reduction_ratio, channels)

    def forward(self, x):
        w = x.mean(axis=[2, 3])                            # (N, C)
        w = F.sigmoid(self.fc2(F.relu(self.fc1(w))))       # (N, C) in (0, 1)
        return x * w.unsqueeze(-1).unsqueeze(-1)           # (N, C, H, W)


def zero_pad(x, p):
    """(N, C, H, W) -> (N, C, H + 2p, W + 2p), zeros around: F.pad's result, built from concatenations.
    F.pad on a 4-D tensor is a pad3d op, whose fill value paddle2onnx 2.1 loses: the exported ONNX
    graph then pads with whatever the memory held (seen: -1.8e29), so ONNX Runtime and OpenVINO gave
    other scores than Paddle for some models (tests/test_export.py::test_the_three_backends_agree)."""
    if p == 0:
        return x
    row = x[:, :, :1, :] * 0.0
    x = paddle.concat([row] * p + [x] + [row] * p, axis=2)
    col = x[:, :, :, :1] * 0.0
    return paddle.concat([col] * p + [x] + [col] * p, axis=3)


class SSPCAB(nn.Layer):
    """Masked convolution + channel attention; output (N, C, H, W) = input shape.

    ``kernel_dim`` is k' (sub-kernel size), ``dilation`` is d (distance of the sub-kernels from the
    masked centre). The paper's ablation picks k' = 1, d = 1, r = 8.
    """

    def __init__(self, channels, kernel_dim=1, dilation=1, reduction_ratio=8):
        super().__init__()
        self.channels, self.kernel_dim, self.dilation = channels, kernel_dim, dilation
        self.pad = kernel_dim + dilation                  # zero padding keeps H, W
        self.border = kernel_dim + 2 * dilation + 1       # offset between opposite sub-kernels
        # one convolution per corner sub-kernel K1..K4 (with bias, as the authors' code)
        self.conv1 = nn.Conv2D(channels, channels, kernel_dim)
        self.conv2 = nn.Conv2D(channels, channels, kernel_dim)
        self.conv3 = nn.Conv2D(channels, channels, kernel_dim)
        self.conv4 = nn.Conv2D(channels, channels, kernel_dim)
        self.se = SELayer(channels, reduction_ratio)

    def masked_conv(self, x):
        """(N, C, H, W) -> ReLU(sum of the four corner convolutions), (N, C, H, W).

        Output (i, j) sees the input only at the corners of its receptive field, never at (i, j):
        with k' = d = 1 at (i - 2, j - 2), (i + 2, j - 2), (i - 2, j + 2), (i + 2, j + 2).
        """
        p, b = self.pad, self.border
        x = zero_pad(x, p)                                # (N, C, H + 2p, W + 2p)
        z = (self.conv1(x[:, :, :-b, :-b]) + self.conv2(x[:, :, b:, :-b]) +
             self.conv3(x[:, :, :-b, b:]) + self.conv4(x[:, :, b:, b:]))
        return F.relu(z)                                  # (N, C, H, W)

    def forward(self, x):
        return self.se(self.masked_conv(x))


def sspcab_loss(output, target):
    """L_SSPCAB = mean squared error between the block's output and its input; the total loss is
    L_task + lambda * L_SSPCAB (paper Sec. 3)."""
    return F.mse_loss(output, target)


def count_parameters(layer):
    return int(sum(int(paddle.numel(p)) for p in layer.parameters()))
