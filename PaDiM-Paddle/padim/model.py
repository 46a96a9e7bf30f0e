"""PaDiM model: frozen backbone -> aligned multi-layer embedding -> per-position Mahalanobis distance.

Eval forward returns what is deployed: the distance map at feature resolution, (N, 1, h, w)
(56 x 56 for a 224 input). Resize, blur and the image score are adcommon.method.pipeline's job.
"""
import random

import paddle
import paddle.nn as nn

from adbase import UserError
from adcommon.nets.backbones import build_backbone

# Paper: ResNet-18 layer1-3 has 448 channels, a random subset of d=100 is kept; Wide-ResNet-50 1792 -> 550.
PAPER_DIMS = {"resnet18": 100, "wide_resnet50_2": 550, "efficientnet_lite0": 100}
LAYERS = ("layer1", "layer2", "layer3")


def random_channel_index(total, d, seed):
    """The reference's channel subset: random.seed(seed); random.sample(range(total), d)."""
    rng = random.Random(seed)
    return rng.sample(range(total), d)


class PaDiM(nn.Layer):
    """Backbone features of layer1-3, layer2/3 repeated onto layer1's grid, d random channels,
    scored against a Gaussian per grid position (mean and inverse covariance are buffers)."""

    def __init__(self, backbone="resnet18", pretrained="imagenet", d=None, image_size=256, crop_size=224,
                 seed=1024):
        super().__init__()
        crop_size = int(crop_size) if crop_size else None   # None: the whole resized image is inspected
        if crop_size and crop_size > image_size:
            raise UserError(f"--crop_size {crop_size} is larger than --image_size {image_size} (the crop is taken "
                            "from the resized image)")
        self.backbone = build_backbone(backbone, pretrained=pretrained, layers=LAYERS, frozen=True)
        strides = list(self.backbone.strides)
        side = crop_size or image_size                           # the network's input side
        if side % strides[-1]:
            flag = "--crop_size" if crop_size else "--image_size (no crop)"
            raise UserError(f"{flag} must be a multiple of {strides[-1]} for {backbone} (its layers' grids "
                            f"must align), got {side}")
        self.factors = [s // strides[0] for s in strides]       # nearest upsampling factor per layer (1, 2, 4)
        total = int(sum(self.backbone.channels))
        d = int(d or PAPER_DIMS.get(backbone, 100))
        if not 0 < d <= total:
            raise UserError(f"--d must be in 1..{total} for {backbone} (its layer1-3 channels), got {d}")
        self.grid = side // strides[0]                           # 56 for 224 / stride 4
        positions = self.grid * self.grid
        self.model_args = {"backbone": backbone, "weights": self.backbone.pretrained, "d": d,
                           "image_size": image_size, "crop_size": crop_size, "seed": seed,
                           "mean": list(self.backbone.mean), "std": list(self.backbone.std)}
        idx = random_channel_index(total, d, seed)
        # The index is saved with the model: prediction never depends on re-deriving it from a seed.
        self.register_buffer("channel_idx", paddle.to_tensor(idx, dtype="int64"))
        self.register_buffer("mean", paddle.zeros([positions, d], "float32"))          # (P, d)
        self.register_buffer("inv_cov", paddle.zeros([positions, d, d], "float32"))   # (P, d, d)

    def embed(self, x):
        """(N, 3, S, S) -> (N, d, P) embedding of the selected channels on layer1's grid."""
        feats = self.backbone(x)
        parts = []
        for f, k in zip(feats, self.factors):
            if k > 1:
                # exact nearest upsampling by k: each value copied into a k x k block. F.interpolate breaks
                # oneDNN in Paddle 3 exports, and repeat_interleave becomes an ONNX Tile that neither ONNX
                # Runtime nor OpenVINO runs; unsqueeze-expand-reshape gives the same numbers everywhere
                _, c, h, w = f.shape
                f = f.unsqueeze([3, 5]).expand([-1, c, h, k, w, k]).reshape([-1, c, h * k, w * k])
            parts.append(f)
        e = paddle.concat(parts, axis=1)                         # (N, 448, h, w) for ResNet-18
        e = paddle.index_select(e, self.channel_idx, axis=1)     # (N, d, h, w)
        return e.flatten(2)                                       # (N, d, P)

    def forward(self, x):
        return self.distance(self.embed(x))

    def distance(self, e):
        """(N, d, P) embeddings -> (N, 1, h, w) Mahalanobis distance to each position's Gaussian.

        All positions at once: one batched (P, N, d) x (P, d, d) matmul, no per-position loop. The
        mean is subtracted before the transpose (a cheaper broadcast). Reading the (P, d, d) inverse
        covariances (125 MB for ResNet-18) bounds the cost, so larger batches are cheaper per image.
        """
        delta = (e - self.mean.transpose([1, 0])).transpose([2, 0, 1])   # (P, N, d)
        m = paddle.matmul(delta, self.inv_cov)                           # (P, N, d)
        dist2 = (m * delta).sum(axis=-1).transpose([1, 0])               # (N, P)
        dist = paddle.sqrt(paddle.clip(dist2, min=0.0))                  # Mahalanobis distance (reference: sqrt)
        return dist.reshape([-1, 1, self.grid, self.grid])               # (N, 1, h, w)
