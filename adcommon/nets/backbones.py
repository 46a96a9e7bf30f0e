"""ImageNet backbones as multi-layer feature extractors.

``build_backbone(name, pretrained, layers)`` -> a ``paddle.nn.Layer`` whose ``forward(x)``
returns a list of feature maps in the order of ``layers`` (``layer1``..``layer4`` at stride
4/8/16/32, ``pooled`` = global average of the last stage, shape (N, C)), computing only as deep
as needed. ``build_vgg16_features`` gives KDAD's VGG-16 ``features`` outputs by index. Their weights
come from ``adcommon.nets.weights`` (``--pretrained``).
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from adbase import UserError
from adcommon.nets.weights import BACKBONES, describe_weights, load_into, normalize_pretrained, resolve_weights

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# EfficientNet-Lite was trained on (x - 127) / 128 of 0..255 pixels, i.e. about [-1, 1]
LITE_MEAN = [0.5, 0.5, 0.5]
LITE_STD = [0.5, 0.5, 0.5]

LAYER_NAMES = ("layer1", "layer2", "layer3", "layer4", "pooled")

VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
KDAD_VGG_INDICES = (1, 4, 6, 9, 11, 13, 16, 18, 20, 23, 25, 27, 30)  # docs/reference.md#kdad-networks

__all__ = ["BACKBONES", "LAYER_NAMES", "build_backbone", "build_vgg16_features", "EfficientNetLite0"]


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (lukemelas EfficientNet-PyTorch layout, Lite variant)
# --------------------------------------------------------------------------------------------

# (repeats, kernel, first stride, expand ratio, in, out) of EfficientNet-B0; Lite0 uses the
# same table with width = depth = 1.0, no squeeze-excite, ReLU6, stem 32 and head 1280.
_B0_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
              (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
              (1, 3, 1, 6, 192, 320)]
# index of the last block at stride 4, 8, 16, 32 (blocks 0..15)
_LITE0_STAGE_END = {"layer1": 2, "layer2": 4, "layer3": 10}


def _bn(c):
    # TF: decay 0.99, eps 1e-3 (torch momentum 0.01 -> paddle momentum 0.99)
    return nn.BatchNorm2D(c, momentum=0.99, epsilon=1e-3)


def _conv(cin, cout, k, stride=1, groups=1):
    # padding="SAME" is TensorFlow's rule (extra pixel at bottom/right for stride 2), the one the
    # TF-trained Lite weights expect; lukemelas reproduces it with Conv2dStaticSamePadding.
    return nn.Conv2D(cin, cout, k, stride=stride, padding="SAME", groups=groups, bias_attr=False)


class _MBConv(nn.Layer):
    """Inverted residual: 1x1 expand -> kxk depthwise -> 1x1 project (+ identity when shapes allow)."""

    def __init__(self, cin, cout, k, stride, expand, drop_connect):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = _conv(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _conv(mid, mid, k, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = _conv(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout
        self.drop_connect = drop_connect

    def forward(self, x):
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))  # linear bottleneck: no activation
        if self.residual:
            if self.training and self.drop_connect > 0:
                # stochastic depth per sample, as in training of the original
                keep = 1.0 - self.drop_connect
                mask = paddle.floor(keep + paddle.rand([y.shape[0], 1, 1, 1], dtype=y.dtype))
                y = y / keep * mask
            y = y + x
        return y


class EfficientNetLite0(nn.Layer):
    """EfficientNet-Lite0 with lukemelas parameter names (``_conv_stem``, ``_blocks.N.*``, ``_fc``)."""

    def __init__(self, num_classes=1000, drop_connect_rate=0.2, dropout=0.2):
        super().__init__()
        self._conv_stem = _conv(3, 32, 3, 2)
        self._bn0 = _bn(32)
        specs = []
        for repeats, k, s, e, cin, cout in _B0_STAGES:
            for r in range(repeats):
                specs.append((cin if r == 0 else cout, cout, k, s if r == 0 else 1, e))
        # drop-connect rate grows linearly with block index, as in the original
        self._blocks = nn.LayerList([
            _MBConv(cin, cout, k, s, e, drop_connect_rate * i / len(specs))
            for i, (cin, cout, k, s, e) in enumerate(specs)])
        self._conv_head = _conv(320, 1280, 1)
        self._bn1 = _bn(1280)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x):
        """(N, 3, H, W) in [-1, 1] -> ImageNet logits (N, 1000)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for blk in self._blocks:
            x = blk(x)
        x = F.relu6(self._bn1(self._conv_head(x)))  # (N, 1280, H/32, W/32)
        x = paddle.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self._fc(self._dropout(x))


# --------------------------------------------------------------------------------------------
# feature extractors
# --------------------------------------------------------------------------------------------

class _FeatureExtractor(nn.Layer):
    """Common part: weights go to ``self.net``; ``frozen`` keeps eval mode and no gradients."""

    def _setup(self, name, net, layers, channels, strides, mean, std, frozen):
        self.name = name
        self.net = net
        self.layers = list(layers)
        self.channels = [channels[k] for k in self.layers]
        self.strides = [strides[k] for k in self.layers]
        self.mean, self.std = list(mean), list(std)
        self.frozen = bool(frozen)
        self.pretrained = describe_weights(name, "none", "random init")
        self.pretrained_arg = "none"

    def _load(self, pretrained, arch):
        sd, desc = resolve_weights(arch, pretrained)
        if sd is not None:
            load_into(self.net, sd, arch, desc)
        self.pretrained, self.pretrained_arg = desc, normalize_pretrained(pretrained)
        if self.frozen:
            self.freeze()

    def freeze(self):
        """No gradients for any parameter and eval mode for good (BN statistics stay put)."""
        self.frozen = True
        for p in self.parameters():
            p.stop_gradient = True
        self._set_eval()

    def _set_eval(self):
        # set flags directly: Layer.eval() would also switch paddle's global tracer mode
        self.training = False
        for layer in self.sublayers():
            layer.training = False

    def train(self, mode=True):
        # Paddle 2.6's Layer.train() takes no argument; 3.x takes `mode`.
        super().train() if mode else super().eval()
        if self.frozen:
            self._set_eval()
        return self

    def _stay_frozen(self):
        # a parent's .train() sets sublayer.training directly, bypassing our train()
        if self.frozen and self.training:
            self._set_eval()


def _check_layers(layers, allowed):
    layers = [layers] if isinstance(layers, str) else list(layers)
    bad = [k for k in layers if k not in allowed]
    if bad or not layers:
        raise UserError(f"unknown backbone layer(s) {bad or layers}; choose from {', '.join(allowed)}")
    return layers


class ResNetBackbone(_FeatureExtractor):
    """paddle.vision ResNet (``.net``) returning layer1..layer4 / pooled features."""

    def __init__(self, name, layers=("layer1", "layer2", "layer3"), pretrained="imagenet", frozen=False):
        super().__init__()
        from paddle.vision.models import resnet18, wide_resnet50_2
        net = {"resnet18": resnet18, "wide_resnet50_2": wide_resnet50_2}[name](pretrained=False)
        c = [64, 128, 256, 512] if name == "resnet18" else [256, 512, 1024, 2048]
        channels = dict(zip(LAYER_NAMES, c + [c[-1]]))
        strides = {"layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32, "pooled": None}
        layers = _check_layers(layers, LAYER_NAMES)
        self._setup(name, net, layers, channels, strides, IMAGENET_MEAN, IMAGENET_STD, frozen)
        # number of residual stages to run: pooled needs all four
        self._depth = max(4 if k == "pooled" else int(k[-1]) for k in layers)
        self._load(pretrained, name)

    def forward(self, x):
        """(N, 3, H, W) normalised -> [features in the order of self.layers]."""
        self._stay_frozen()
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))  # (N, 64, H/4, W/4)
        out = {}
        for i, stage in enumerate((n.layer1, n.layer2, n.layer3, n.layer4)):
            if i >= self._depth:
                break
            x = stage(x)  # layer{i+1}: (N, C_i, H/2^(i+2), W/2^(i+2))
            out[f"layer{i + 1}"] = x
        if "pooled" in self.layers:
            out["pooled"] = paddle.flatten(n.avgpool(x), 1)  # (N, C_4)
        return [out[k] for k in self.layers]

    def classify(self, x):
        """ImageNet logits (N, 1000) of the whole network."""
        return self.net(x)


class EfficientNetLite0Backbone(_FeatureExtractor):
    """EfficientNet-Lite0 as ResNet-like stages.

    layer1 = end of block 2 (24 ch, stride 4), layer2 = block 4 (40 ch, /8), layer3 = block 10
    (112 ch, /16), layer4 = conv_head + BN + ReLU6 after block 15 (1280 ch, /32),
    pooled = global average of layer4 (1280), the input of the ImageNet classifier.
    """

    def __init__(self, layers=("layer1", "layer2", "layer3"), pretrained="imagenet", frozen=False):
        super().__init__()
        channels = {"layer1": 24, "layer2": 40, "layer3": 112, "layer4": 1280, "pooled": 1280}
        strides = {"layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32, "pooled": None}
        layers = _check_layers(layers, LAYER_NAMES)
        self._setup("efficientnet_lite0", EfficientNetLite0(), layers, channels, strides,
                    LITE_MEAN, LITE_STD, frozen)
        deepest = max(LAYER_NAMES.index(k) for k in layers)
        self._last_block = _LITE0_STAGE_END.get(LAYER_NAMES[deepest], len(self.net._blocks) - 1)
        self._need_head = deepest >= 3
        self._taps = {v: k for k, v in _LITE0_STAGE_END.items()}
        self._load(pretrained, "efficientnet_lite0")

    def forward(self, x):
        """(N, 3, H, W) in [-1, 1] -> [features in the order of self.layers]."""
        self._stay_frozen()
        n = self.net
        x = F.relu6(n._bn0(n._conv_stem(x)))  # (N, 32, H/2, W/2)
        out = {}
        for i in range(self._last_block + 1):
            x = n._blocks[i](x)
            if i in self._taps:
                out[self._taps[i]] = x
        if self._need_head:
            x = F.relu6(n._bn1(n._conv_head(x)))  # (N, 1280, H/32, W/32)
            out["layer4"] = x
            out["pooled"] = paddle.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (N, 1280)
        return [out[k] for k in self.layers]

    def classify(self, x):
        """ImageNet logits (N, 1000); input normalised with mean = std = 0.5."""
        return self.net(x)


def build_backbone(name, pretrained="imagenet", layers=("layer1", "layer2", "layer3"), frozen=False):
    """Feature extractor ``name`` with weights from ``pretrained`` (PATH | imagenet | none)."""
    if name in ("resnet18", "wide_resnet50_2"):
        return ResNetBackbone(name, layers=layers, pretrained=pretrained, frozen=frozen)
    if name == "efficientnet_lite0":
        return EfficientNetLite0Backbone(layers=layers, pretrained=pretrained, frozen=frozen)
    raise UserError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


# --------------------------------------------------------------------------------------------
# VGG-16 features (KDAD)
# --------------------------------------------------------------------------------------------

class _VGG16Trunk(nn.Layer):
    """Holds ``features`` (indices 0..30 as in torchvision / paddle.vision: conv, relu, pool)."""

    def __init__(self):
        super().__init__()
        mods, cin = [], 3
        for v in VGG16_CFG:
            if v == "M":
                mods.append(nn.MaxPool2D(kernel_size=2, stride=2))
            else:
                mods += [nn.Conv2D(cin, v, 3, padding=1), nn.ReLU()]
                cin = v
        self.features = nn.Sequential(*mods)


class VGG16Features(_FeatureExtractor):
    """Outputs of VGG-16 ``features[i]`` for i in ``out_indices`` (sorted by the caller's order)."""

    def __init__(self, pretrained="imagenet", out_indices=KDAD_VGG_INDICES, frozen=False):
        super().__init__()
        trunk = _VGG16Trunk()
        n = len(trunk.features)  # 31
        idx = [int(i) for i in out_indices]
        if not idx or any(i < 0 or i >= n for i in idx):
            raise UserError(f"VGG-16 feature indices must be in 0..{n - 1}, got {list(out_indices)}")
        channels, strides, c, s = {}, {}, 3, 1
        for i, m in enumerate(trunk.features):
            if isinstance(m, nn.Conv2D):
                c = m._out_channels
            elif isinstance(m, nn.MaxPool2D):
                s *= 2
            channels[i], strides[i] = c, s
        self._setup("vgg16", trunk, idx, channels, strides, IMAGENET_MEAN, IMAGENET_STD, frozen)
        self.out_indices = idx
        self._load(pretrained, "vgg16")

    def forward(self, x):
        """(N, 3, H, W) -> [features[i](...) for i in out_indices]; stops at the deepest index."""
        self._stay_frozen()
        out = {}
        want = set(self.out_indices)
        for i in range(max(self.out_indices) + 1):
            x = self.net.features[i](x)
            if i in want:
                out[i] = x
        return [out[i] for i in self.out_indices]


def build_vgg16_features(pretrained="imagenet", out_indices=KDAD_VGG_INDICES, frozen=False):
    """VGG-16 ``features`` stack returning the outputs at ``out_indices`` (KDAD's expert)."""
    return VGG16Features(pretrained=pretrained, out_indices=out_indices, frozen=frozen)
