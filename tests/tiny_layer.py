"""A small layer with the ops the exported models use (conv, buffers, matmul, repeat_interleave).

Lives in a .py file because dy2static converts from source."""
import paddle
import paddle.nn as nn


class TinyNet(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3, stride=2, padding=1)
        self.register_buffer("proj", paddle.randn([4, 4]))

    def forward(self, x):
        f = self.conv(x)                                            # (N, 4, H/2, W/2)
        up = f.repeat_interleave(2, axis=2).repeat_interleave(2, axis=3)  # exact nearest x2
        z = paddle.matmul(up.transpose([0, 2, 3, 1]), self.proj)    # (N, H, W, 4)
        return [z.pow(2).sum(axis=-1, keepdim=True).transpose([0, 3, 1, 2]), f.mean(axis=[2, 3])]
