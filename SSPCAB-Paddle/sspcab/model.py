"""CutPaste ProjectionNet (Li et al., CVPR 2021) with SSPCAB in the penultimate convolution (Ristea et al.).

Training: backbone -> pooled embedding -> projection head -> 3-way logits (original / CutPaste-normal /
CutPaste-scar), plus the SSPCAB block's input and output for its reconstruction loss.
Eval forward returns what is deployed, scored inside the graph from buffers (no pickles):
    [image score (N,): Mahalanobis distance of the L2-normalised pooled embedding (GDE, the paper),
     patch map (N, 1, h, w): a GDE shared by every position of the ``patch_layer`` features (ours,
     localisation; layer3 = stride 16 by default, README: root causes)]
Resize and blur of the map are adcommon.method.pipeline's job (no interpolate in the graph).
"""
import dataclasses

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from adbase import UserError
from adcommon.nets.backbones import build_backbone

from .cutpaste import VARIANTS
from .sspcab import SSPCAB

BACKBONES = ("resnet18", "efficientnet_lite0")
# Where SSPCAB goes: the authors replace "the penultimate convolutional layer" (ristea/sspcab #3).
# ResNet-18: conv1 of the last BasicBlock (512 -> 512, 3x3; conv2 of that block is the last conv).
# EfficientNet-Lite0: its last two convolutions change the width (project 1152 -> 320, head 320 -> 1280)
# and SSPCAB must keep it, so it replaces the one before them: the 3x3 depthwise conv of the last
# MBConv block (1152 -> 1152).
SSPCAB_SITES = {"resnet18": ("layer4", -1, "conv1"), "efficientnet_lite0": ("_blocks", -1, "_depthwise_conv")}
HEAD_WIDTH, PROJ_DIM = 512, 128      # Runinho: head = [512] * head_layer + [128], each Linear+BN+ReLU
PATCH_LAYERS = ("layer3", "layer4")  # the features of the patch map (layer4: versions before 2026-11-30)
IMAGE_SCORES = ("pooled", "patch_max")


def mahalanobis(e, mean, precision):
    """(..., D) embeddings -> (...) sqrt((e - mu)^T P (e - mu)), in the graph (matmul with buffers)."""
    d = e - mean                                              # (..., D)
    m2 = (paddle.matmul(d, precision) * d).sum(axis=-1)       # (...)
    return paddle.sqrt(paddle.clip(m2, min=0.0))


@dataclasses.dataclass
class BlockShape:
    """The SSPCAB block's shape: its masked kernel's k' and dilation d, and the channel reduction of its
    attention (the paper's defaults)."""
    kernel: int = 1
    dilation: int = 1
    reduction: int = 8


class ProjectionNet(nn.Layer):
    """Backbone (+ SSPCAB) -> embedding; head -> logits for training; GDE buffers for scoring.
    ``sspcab``: True (the block, BlockShape's defaults), a BlockShape, or False (plain CutPaste)."""

    def __init__(self, backbone="resnet18", pretrained="imagenet", head_layer=1, variant="3way", sspcab=True,
                 image_size=256, patch_layer="layer3", image_score="pooled"):
        super().__init__()
        shape = sspcab if isinstance(sspcab, BlockShape) else BlockShape()
        sspcab_kernel, sspcab_dilation, sspcab_reduction = shape.kernel, shape.dilation, shape.reduction
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}")
        if patch_layer not in PATCH_LAYERS or image_score not in IMAGE_SCORES:
            raise UserError(f"patch_layer must be one of {PATCH_LAYERS} and image_score one of {IMAGE_SCORES}, "
                            f"got {patch_layer!r}, {image_score!r}")
        grid = -(-int(image_size) // 32)                      # layer4 is at stride 32: (S / 32)^2 positions
        if sspcab and grid < 2 * (sspcab_kernel + sspcab_dilation):
            # every visible sub-kernel of position (i, j) lies at (i +- (k' + d), j +- (k' + d)): on a
            # smaller map some positions see only zero padding, and on 2 x 2 all of them do
            raise UserError(f"image size {image_size} gives a {grid}x{grid} layer4 map, too small for SSPCAB's "
                            f"masked kernel (k'={sspcab_kernel}, d={sspcab_dilation}): use an image size >= "
                            f"{32 * 2 * (sspcab_kernel + sspcab_dilation)}, or no SSPCAB")
        # patch_layer = the feature map of the patch map, pooled = the global average of the last stage
        self.backbone = build_backbone(backbone, pretrained=pretrained, layers=(patch_layer, "pooled"), frozen=False)
        dim = self.backbone.channels[-1]                      # 512 (ResNet-18) or 1280 (Lite0)
        pdim = self.backbone.channels[0]                      # layer3: 256 (ResNet-18) or 112 (Lite0)
        self._sspcab_io = None
        self._sspcab_path = None
        if sspcab:
            # inserted after the ImageNet weights are loaded: the replaced conv's weights are dropped
            parent, name, old = self._site(SSPCAB_SITES[backbone])
            block = SSPCAB(old._in_channels, sspcab_kernel, sspcab_dilation, sspcab_reduction)
            setattr(parent, name, block)
            block.register_forward_post_hook(self._record_sspcab)
            self._sspcab_path = SSPCAB_SITES[backbone]
        # trainable weights that came with the backbone (not SSPCAB's, not BatchNorm's running statistics,
        # which paddle keeps as stop_gradient parameters): what --freeze_steps freezes
        new = {id(p) for p in self.sspcab.parameters()} if sspcab else set()
        self._pretrained_ids = {id(p) for p in self.backbone.parameters() if not p.stop_gradient and id(p) not in new}
        layers, last = [], dim
        for width in [HEAD_WIDTH] * int(head_layer) + [PROJ_DIM]:
            layers += [nn.Linear(last, width), nn.BatchNorm1D(width), nn.ReLU()]
            last = width
        self.head = nn.Sequential(*layers)
        self.out = nn.Linear(last, VARIANTS[variant])
        # fitted state, saved and exported with the weights: image GDE, patch GDE, map scale (see engine)
        self.register_buffer("density_mean", paddle.zeros([dim], "float32"))
        self.register_buffer("density_precision", paddle.zeros([dim, dim], "float32"))
        self.register_buffer("patch_mean", paddle.zeros([pdim], "float32"))
        self.register_buffer("patch_precision", paddle.zeros([pdim, pdim], "float32"))
        self.register_buffer("map_scale", paddle.ones([1], "float32"))
        bb = self.backbone
        self.model_args = {"backbone": backbone, "weights": bb.pretrained, "pretrained": bb.pretrained_arg,
                           "image_size": int(image_size), "head_layer": int(head_layer), "variant": variant,
                           "sspcab": bool(sspcab), "sspcab_kernel": int(sspcab_kernel),
                           "sspcab_dilation": int(sspcab_dilation), "sspcab_reduction": int(sspcab_reduction),
                           "sspcab_site": "{}[{}].{}".format(*self._sspcab_path) if sspcab else None,
                           "embed_dim": int(dim), "patch_layer": patch_layer, "patch_dim": int(pdim),
                           "image_score": image_score, "mean": list(bb.mean), "std": list(bb.std)}

    def _site(self, path):
        """(parent layer, attribute name, current layer) of ``net.<a>[<i>].<b>``."""
        seq, idx, name = path
        parent = getattr(self.backbone.net, seq)[idx]
        return parent, name, getattr(parent, name)

    @property
    def sspcab(self):
        """The SSPCAB block inside the backbone, or None for the plain CutPaste baseline."""
        return self._site(self._sspcab_path)[2] if self._sspcab_path else None

    def _record_sspcab(self, layer, inputs, output):
        # forward post-hook: keep the block's (input, output) of a training pass for L_SSPCAB
        if layer.training:
            self._sspcab_io = (inputs[0], output)

    def freeze_stages(self, upto):
        """Keep the backbone's stem and every stage up to ``upto`` (layer1..layer3) at their ImageNet
        weights and BatchNorm statistics for the whole run (eval mode, no gradients): the quick-start
        recipe; the paper fine-tunes everything. Backward then stops at the first trainable stage."""
        from adcommon.nets.backbones import _LITE0_STAGE_END
        net = self.backbone.net
        k = int(upto[-1])
        if self.model_args["backbone"] == "efficientnet_lite0":
            layers = [net._conv_stem, net._bn0] + [net._blocks[i] for i in range(_LITE0_STAGE_END[upto] + 1)]
        else:
            layers = [net.conv1, net.bn1] + [getattr(net, f"layer{i}") for i in range(1, k + 1)]
        self._frozen = layers
        ids = {id(p) for layer in layers for p in layer.parameters()}
        for p in self.backbone.parameters():
            if id(p) in ids:
                p.stop_gradient = True
        self._pretrained_ids -= ids
        self.train(self.training)

    def train(self, mode=True):
        # Paddle 2.6's Layer.train() takes no argument; frozen stages stay in eval mode
        super().train() if mode else super().eval()
        for layer in getattr(self, "_frozen", []):
            for sub in [layer] + layer.sublayers():
                sub.training = False
        return self

    def set_backbone_trainable(self, trainable):
        """Freeze / unfreeze the pretrained weights (CutPaste's --freeze_resnet); SSPCAB and head stay
        trainable. BatchNorm statistics keep updating, as in the reference (requires_grad only)."""
        for p in self.backbone.parameters():
            if id(p) in self._pretrained_ids:
                p.stop_gradient = not trainable

    def train_forward(self, x):
        """(B, 3, S, S) -> (embeddings (B, D), logits (B, classes), (SSPCAB input, output) or None)."""
        self._sspcab_io = None
        _, pooled = self.backbone(x)                          # (B, D); the hook fills _sspcab_io
        return pooled, self.out(self.head(pooled)), self._sspcab_io

    def score(self, pooled):
        """(N, D) pooled embeddings -> (N,) image scores: Mahalanobis of the L2-normalised embedding."""
        return mahalanobis(F.normalize(pooled, axis=1), self.density_mean, self.density_precision)

    def patch_map(self, fmap):
        """(N, C, h, w) patch-layer features -> (N, 1, h, w): the patch GDE at every position, times map_scale."""
        e = F.normalize(fmap.transpose([0, 2, 3, 1]), axis=-1)           # (N, h, w, C)
        return mahalanobis(e, self.patch_mean, self.patch_precision).unsqueeze(1) * self.map_scale

    def embed(self, x):
        """(N, 3, S, S) -> (patch-layer features (N, C, h, w), pooled embedding (N, D))."""
        return self.backbone(x)

    def forward(self, x):
        fmap, pooled = self.backbone(x)
        return [self.score(pooled), self.patch_map(fmap)]
