"""KDAD networks: a frozen expert (VGG-16 features, ImageNet) and a small cloner trained to copy it.

Eval forward returns what is deployed (docs/design.md#eval-forward-returns-raw-outputs): the
detection score (N,) and the localization map. With ``deploy_map="gradients"`` (the paper) the map is
the vanilla gradient of the score with respect to the input, |grad| summed over channels and scaled per image by its
minimum and 99th percentile, (N, 1, S, S); with ``"discrepancy"`` (our oneDNN/Paddle-2.6 friendly
alternative) it is three per-position expert/cloner discrepancy maps at 1/8, 1/16, 1/32 of S.
The Gaussian blur (sigma 4) happens in adcommon.method.pipeline, outside the graph.
"""
import dataclasses
from typing import Optional

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from adcommon.nets.backbones import KDAD_VGG_INDICES, VGG16_CFG, build_backbone, build_vgg16_features

from .localization import discrepancy_maps, percentile_normalise
from .loss import distill_score

# Indices into the 13 collected outputs: pool2..pool5 are matched in training,
# pool3..pool5 score at test time (3.4: the pool2 term is dropped).
TRAIN_LAYERS = (3, 6, 9, 12)
SCORE_LAYERS = (6, 9, 12)
EXPERTS = ("vgg16", "efficientnet_lite0")
FEATURE_SCALES = ("none", "rms")
CLONER_POOLS = ("relu", "linear")
# 'loss': the paper's detection score, eq. 3 on pool3..pool5 of the whole image (output 0 of the graph);
# 'map_max': the maximum of the post-processed discrepancy map (computed outside the graph, as PaDiM and
# STFPM score an image; needs the discrepancy map).
IMAGE_SCORES = ("loss", "map_max")


def cloner_cfg(pool_channels, equal_network_size=False):
    """Cloner widths: 'B' = [16, 16, M, 16, c2, M, 16, 16, c3, M, 16, 16, c4, M, 16, 16, c5, M]
    where c2..c5 are the expert's channels at pool2..pool5 (VGG-16: 128, 256, 512, 512, the paper's
    list); 'A' (equal_network_size) = full VGG-16 widths."""
    if equal_network_size:
        return list(VGG16_CFG)
    c2, c3, c4, c5 = (int(c) for c in pool_channels)
    return [16, 16, "M", 16, c2, "M", 16, 16, c3, "M", 16, 16, c4, "M", 16, 16, c5, "M"]


class _GuidedReLU(paddle.autograd.PyLayer):
    """ReLU whose backward passes only positive gradients through active units (guided backprop,
    Springenberg et al. 2015; the reference hooks every ReLU of the cloner this way)."""

    @staticmethod
    def forward(ctx, x):
        y = F.relu(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensor()
        return dy.clip(min=0.0) * (y > 0).astype(dy.dtype)


class Cloner(nn.Layer):
    """VGG-like cloner (reference ``make_layers(cfg, use_bias, batch_norm=True)``): every conv is 3x3,
    Xavier-uniform, no bias by default; BatchNorm follows every conv except the one before a max-pool.

    forward(x) returns 13 tensors at the same places as the expert's outputs: after the ReLU of each
    conv that is not the last of its block, and after each max-pool (cfg 'B': module indices
    2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38).

    With ``linear_pools`` the conv before each max-pool has no ReLU (an ``Identity`` in its place, so
    parameter names stay the same): the pooled outputs can then be negative, as the stage outputs of
    EfficientNet-Lite0 are (linear bottlenecks: about half of their values, and half their energy, are
    below zero), which a ReLU'd output can never match.
    """

    def __init__(self, cfg, use_bias=False, linear_pools=False):
        super().__init__()
        mods, outs, cin = [], [], 3
        for i, v in enumerate(cfg):
            if v == "M":
                mods.append(nn.MaxPool2D(kernel_size=2, stride=2))
                outs.append(len(mods) - 1)
                continue
            # torch's default bias init is uniform, Paddle's is zero; bias is off in the paper anyway
            mods.append(nn.Conv2D(cin, v, 3, padding=1, weight_attr=nn.initializer.XavierUniform(),
                                  bias_attr=None if use_bias else False))
            before_pool = i + 1 < len(cfg) and cfg[i + 1] == "M"
            if not before_pool:
                mods.append(nn.BatchNorm2D(v))  # torch momentum 0.1 = Paddle momentum 0.9 (default)
            mods.append(nn.Identity() if before_pool and linear_pools else nn.ReLU())
            if not before_pool:
                outs.append(len(mods) - 1)
            cin = v
        self.features = nn.Sequential(*mods)
        self.out_indices = outs
        self.guided = False  # guided backprop (dygraph only, never exported)

    def forward(self, x):
        """(N, 3, S, S) -> list of 13 feature maps; the pools are (N, c_k, S/2^k, S/2^k)."""
        out = []
        want = set(self.out_indices)
        for i, layer in enumerate(self.features):
            if self.guided and isinstance(layer, nn.ReLU):
                x = _GuidedReLU.apply(x)
            else:
                x = layer(x)
            if i in want:
                out.append(x)
        return out


class Expert(nn.Layer):
    """Frozen source network returning its pool2..pool5 features (strides 4, 8, 16, 32).

    vgg16: ``features`` outputs at indices 1, 4, ..., 30 (13 tensors), on [0, 1] input without
    ImageNet normalisation, exactly as the reference feeds it. efficientnet_lite0: the four stages
    ending at strides 4..32 (24, 40, 112, 1280 channels), on its own [-1, 1] scaling.
    """

    def __init__(self, name="vgg16", pretrained="imagenet"):
        super().__init__()
        # Divisor of each matched layer (fitted by engine.calibrate_feature_scale, or 1): with
        # feature_scale 'rms' every layer reaches the loss at unit RMS (see KDAD.__init__).
        self.register_buffer("feature_scale", paddle.ones([4], "float32"))
        if name == "vgg16":
            self.net = build_vgg16_features(pretrained, KDAD_VGG_INDICES, frozen=True)
            self.pool_positions = TRAIN_LAYERS      # pools among the 13 outputs
        elif name == "efficientnet_lite0":
            self.net = build_backbone(name, pretrained, layers=("layer1", "layer2", "layer3", "layer4"),
                                      frozen=True)
            self.pool_positions = (0, 1, 2, 3)
        else:
            from adbase import UserError
            raise UserError(f"unknown expert backbone {name!r}; choose one of {', '.join(EXPERTS)}")
        self.name = name
        chans = list(self.net.channels)
        self.pool_channels = [chans[i] for i in self.pool_positions]  # VGG: [128, 256, 512, 512]
        self.weights = self.net.pretrained

    def forward(self, x):
        """(N, 3, S, S) in [0, 1] -> [pool2, pool3, pool4, pool5] features."""
        if self.name == "efficientnet_lite0":
            x = x * 2.0 - 1.0  # its ImageNet training scale (mean = std = 0.5); the cloner still sees [0, 1]
        feats = self.net(x)
        return [feats[i] / self.feature_scale[k] for k, i in enumerate(self.pool_positions)]


@dataclasses.dataclass
class Architecture:
    """What a KDAD is built from (its model_args hold the same names)."""
    backbone: str = "vgg16"
    image_size: int = 128
    lamda: float = 0.5
    use_bias: bool = False
    equal_network_size: bool = False     # cloner 'A' (VGG-16 widths) instead of the smaller 'B'
    direction_loss_only: bool = False
    # 'none' (the paper, with VGG-16): the expert's raw features. 'rms' (default for EfficientNet-Lite0):
    # each matched layer divided by its RMS over the training images. Lite0's stride 4..16 stages have RMS
    # ~7 and its 1280-channel head ~1.3, so the MSE term of the early layers, 30x the head's and the
    # direction terms, decides the loss (README: root causes).
    feature_scale: Optional[str] = None
    # 'relu' (the paper's cloner, VGG-16's pools are ReLU'd) or 'linear' (default for EfficientNet-Lite0,
    # whose stride 4..16 stage outputs are signed: README, root causes).
    cloner_pools: Optional[str] = None
    image_score: str = "loss"

    @classmethod
    def of(cls, model_args):
        """The architecture of a checkpoint's model_args (names it lacks: the defaults)."""
        return cls(**{f.name: model_args[f.name] for f in dataclasses.fields(cls) if f.name in model_args})

    def resolved(self):
        """The backbone's defaults filled in, every choice checked (one line for a bad one)."""
        from adbase import UserError
        vgg = self.backbone == "vgg16"
        a = dataclasses.replace(self, feature_scale=self.feature_scale or ("none" if vgg else "rms"),
                                cloner_pools=self.cloner_pools or ("relu" if vgg else "linear"))
        for name, allowed in (("cloner_pools", CLONER_POOLS), ("image_score", IMAGE_SCORES),
                              ("feature_scale", FEATURE_SCALES)):
            if getattr(a, name) not in allowed:
                raise UserError(f"{name} must be one of {', '.join(allowed)}, got {getattr(a, name)!r}")
        if a.image_size % 32:
            raise UserError(f"--image_size must be a multiple of 32 (five 2x2 pools), got {a.image_size}")
        if a.equal_network_size and not vgg:
            raise UserError("equal_network_size (cloner 'A' = VGG-16 widths) needs the vgg16 expert")
        return a


class KDAD(nn.Layer):
    """Expert + cloner. ``pools(x)`` -> (cloner pools, expert pools), both [pool2, pool3, pool4, pool5].
    ``deploy_map`` (set after building): the deployed map, 'gradients' (the paper) or 'discrepancy'."""

    def __init__(self, arch=None, pretrained="imagenet"):
        super().__init__()
        a = (arch or Architecture()).resolved()
        self.expert = Expert(a.backbone, pretrained)
        cfg = cloner_cfg(self.expert.pool_channels, a.equal_network_size)
        self.cloner = Cloner(cfg, a.use_bias, linear_pools=a.cloner_pools == "linear")
        self.lamda = float(a.lamda)
        self.direction_only = bool(a.direction_loss_only)
        self.deploy_map = "gradients"
        self.model_args = {"backbone": a.backbone, "weights": self.expert.weights, "image_size": int(a.image_size),
                           "lamda": self.lamda, "use_bias": bool(a.use_bias),
                           "equal_network_size": bool(a.equal_network_size),
                           "direction_loss_only": self.direction_only, "cloner_cfg": cfg,
                           "feature_scale": a.feature_scale, "cloner_pools": a.cloner_pools,
                           "image_score": a.image_score,
                           "mean": None, "std": None}  # input stays in [0, 1] (reference: ToTensor only)

    def train(self, mode=True):
        """Train mode for the cloner only: the expert stays in eval mode (frozen)."""
        super().train() if mode else super().eval()
        for layer in [self.expert] + self.expert.sublayers():
            layer.training = False
        return self

    def cloner_pools(self, x):
        """[pool2..pool5] of the cloner; its 13 outputs hold them at TRAIN_LAYERS."""
        outs = self.cloner(x)
        return [outs[i] for i in TRAIN_LAYERS]

    def pools(self, x):
        return self.cloner_pools(x), self.expert(x)

    def score(self, x, guided=False):
        """Detection score (N,): sum over pool3..pool5 of (1 - cos) + lamda * MSE
        (docs/reference.md#kdad-detection-score)."""
        self.cloner.guided = guided
        try:
            pred, real = self.pools(x)
        finally:
            self.cloner.guided = False
        return distill_score(pred[1:], real[1:], self.lamda, self.direction_only)

    def input_gradient(self, x):
        """(score (N,), d score / d x (N, 3, S, S)); images are independent in eval mode, so the
        gradient of the summed scores is each image's own gradient (the reference loops per image)."""
        x.stop_gradient = False
        s = self.score(x)
        (g,) = paddle.grad(s.sum(), x)
        return s, g

    def forward(self, x):
        """Deployed outputs: [score (N,), gradient map (N, 1, S, S)] or, with deploy_map='discrepancy',
        [score (N,), d_pool3 (N, 1, S/8, S/8), d_pool4 (N, 1, S/16, S/16), d_pool5 (N, 1, S/32, S/32)]."""
        if self.deploy_map == "discrepancy":
            pred, real = self.pools(x)
            s = distill_score(pred[1:], real[1:], self.lamda, self.direction_only)
            return [s] + discrepancy_maps(pred[1:], real[1:], self.lamda, self.direction_only)
        s, g = self.input_gradient(x)
        gray = g.abs().sum(axis=1, keepdim=True)        # (N, 1, S, S): reference convert_to_grayscale
        return [s, percentile_normalise(gray, 99.0)]
