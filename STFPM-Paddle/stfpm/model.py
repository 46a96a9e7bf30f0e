"""STFPM model: a frozen ImageNet teacher and a same-architecture student trained from scratch.

Eval forward returns what is deployed: the three per-layer distance maps at feature resolution,
[(N, 1, S/4, S/4), (N, 1, S/8, S/8), (N, 1, S/16, S/16)] (64, 32, 16 for a 256 input). Upsampling,
the product over layers and the image score are adcommon.method.pipeline's job: F.interpolate inside the
graph breaks Paddle 3's oneDNN predictor (docs/reference.md#interpolate-breaks-the-onednn-predictor).
"""
import paddle.nn as nn

from adcommon.nets.backbones import build_backbone

from .loss import layer_distance

LAYERS = ("layer1", "layer2", "layer3")  # paper: ResNet-18 conv2_x..conv4_x, i.e. layer1-3


class STFPM(nn.Layer):
    """Teacher (pretrained, frozen, eval mode) and student (random init) feature pyramids, Sec. 3.1."""

    def __init__(self, backbone="resnet18", pretrained="imagenet", image_size=256):
        super().__init__()
        if image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
        self.teacher = build_backbone(backbone, pretrained=pretrained, layers=LAYERS, frozen=True)
        self.student = build_backbone(backbone, pretrained="none", layers=LAYERS, frozen=False)
        for blk in getattr(self.student.net, "_blocks", []):
            # EfficientNet's stochastic depth regularises a classifier; a student that must copy the
            # teacher's features position by position gains nothing from randomly dropped blocks.
            blk.drop_connect = 0.0
        for layer in self.student.sublayers():
            if isinstance(layer, nn.BatchNorm2D):
                # EfficientNet's TF decay 0.99 would leave the running statistics near their init after
                # the few hundred steps of STFPM training, and the eval-mode student far from the trained
                # one; the official recipe trains with torch's default (0.1, Paddle momentum 0.9).
                layer._momentum = 0.9
        self.model_args = {"backbone": backbone, "weights": self.teacher.pretrained, "layers": list(LAYERS),
                           "image_size": int(image_size), "mean": list(self.teacher.mean),
                           "std": list(self.teacher.std)}

    def features(self, x):
        """(N, 3, S, S) normalised images -> (teacher features, student features), 3 maps each."""
        return self.teacher(x), self.student(x)

    def forward(self, x):
        """(N, 3, S, S) -> per-layer anomaly maps [(N, 1, h_l, w_l)] for l = 1..3 (Sec. 3.3)."""
        t_feats, s_feats = self.features(x)
        return [layer_distance(t, s) for t, s in zip(t_feats, s_feats)]
