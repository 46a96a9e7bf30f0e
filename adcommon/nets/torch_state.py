"""Read a PyTorch state dict (``.pth`` / ``.pt``) into ``{name: numpy array}`` without torch.

Two on-disk formats exist:

* zip (``torch.save`` since 1.6): ``<root>/data.pkl`` is a protocol-2 pickle whose tensors are
  ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` calls; each storage is
  a persistent id ``('storage', torch.FloatStorage, key, location, numel)`` whose raw
  little-endian bytes live in ``<root>/data/<key>``.
* legacy (before 1.6, or ``_use_new_zipfile_serialization=False``): five pickles in a row
  (magic number, protocol version, sys info, the object with persistent ids
  ``('storage', storage_type, key, location, numel, view_meta)``, the sorted storage keys),
  then for each key an int64 little-endian element count and the raw bytes.

Only the globals a state dict needs are allowed (a restricted ``pickle.Unpickler``), so a
``.pth`` that pickles a whole model or arbitrary code is refused instead of executed.
"""
import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from adbase import UserError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER

_CONVERT_HINT = (
    "convert with torch: torch.save(model.state_dict(), 'weights.pth') "
    "(a plain dict of tensors)"
)

# torch storage class name -> numpy dtype (bfloat16 is read as uint16 and widened below)
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "DoubleStorage": np.float64,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "BFloat16Storage": np.uint16,
}


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` & co.: only its element type matters."""

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A flat typed buffer; ``data`` is filled when the bytes are read (legacy: after the pickle)."""

    def __init__(self, storage_type, numel):
        self.storage_type = storage_type
        self.numel = int(numel)
        self.data = None  # 1-D numpy array of storage_type.dtype, length numel


class _StorageView:
    """Legacy storage view: elements [offset, offset + size) of a root storage."""

    def __init__(self, root, offset, size):
        self.root, self.offset, self.size = root, int(offset), int(size)


class _TensorRef:
    """A tensor described by the pickle, materialised once its storage bytes are known."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data  # an nn.Parameter is just its tensor here


def _rebuild_parameter_with_state(data, requires_grad=False, backward_hooks=None, state=None):
    return data


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _Unpickler(pickle.Unpickler):
    """Unpickler that knows tensors and storages and nothing else."""

    def __init__(self, file, path, storage_for):
        super().__init__(file, encoding="latin1")  # latin1: py2-era pickles hold byte strings
        self._path = path
        self._storage_for = storage_for  # callable(pid tuple) -> _Storage / _StorageView

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UserError(
            f"unsupported object in .pth ({module}.{name}) in {self._path}; {_CONVERT_HINT}"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UserError(f"unsupported persistent id {pid!r:.60} in {self._path}; {_CONVERT_HINT}")
        return self._storage_for(pid)


def _storage_type(obj, path):
    if isinstance(obj, _StorageType):
        return obj
    # newer torch may pickle the dtype name as a string
    name = {"float32": "FloatStorage", "float16": "HalfStorage", "float64": "DoubleStorage",
            "int64": "LongStorage", "uint8": "ByteStorage", "bool": "BoolStorage"}.get(str(obj))
    if name is None:
        raise UserError(f"unsupported storage type {obj!r} in {path}; {_CONVERT_HINT}")
    return _StorageType(name)


def _materialise(obj, path):
    """Replace every _TensorRef in a nested dict/list/tuple by a contiguous numpy array."""
    if isinstance(obj, _TensorRef):
        st = obj.storage
        base_offset = 0
        if isinstance(st, _StorageView):
            base_offset, st = st.offset, st.root
        if st.data is None:
            raise UserError(f"storage bytes missing in {path}: the file is truncated or corrupt")
        flat = st.data
        offset = base_offset + obj.offset
        # highest element index this view touches; empty tensors touch nothing
        if any(s == 0 for s in obj.size):
            return np.zeros(obj.size, dtype=_numpy_dtype(st))
        last = offset + sum((s - 1) * d for s, d in zip(obj.size, obj.stride))
        if offset < 0 or last >= flat.size or any(d < 0 for d in obj.stride):
            raise UserError(f"tensor view outside its storage in {path}: the file is corrupt")
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=obj.size, strides=[d * item for d in obj.stride], writeable=False)
        # copy: honours non-contiguous strides (np.ascontiguousarray would turn 0-d into (1,))
        arr = np.array(view, order="C", copy=True)
        if st.storage_type.name == "BFloat16Storage":
            # bfloat16 = upper 16 bits of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return arr
    if isinstance(obj, dict):
        out = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialise(v, path)
        return out
    if isinstance(obj, list):
        return [_materialise(v, path) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v, path) for v in obj)
    return obj


def _numpy_dtype(storage):
    return np.float32 if storage.storage_type.name == "BFloat16Storage" else storage.storage_type.dtype


def _load_zip(path):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise UserError(f"{path} is a zip file but not a torch checkpoint (no */data.pkl)")
        root = pkl[0][: -len("data.pkl")]  # 'archive/' (or the file stem in torch 1.6-1.x)
        big_endian = False
        if root + "byteorder" in names:
            big_endian = zf.read(root + "byteorder").strip() == b"big"
        storages = {}

        def storage_for(pid):
            # pid = ('storage', storage_type, key, location, numel)
            _, stype, key, _location, numel = pid[:5]
            key = str(key)
            if key not in storages:
                stype = _storage_type(stype, path)
                st = _Storage(stype, numel)
                try:
                    raw = zf.read(f"{root}data/{key}")
                except KeyError:
                    raise UserError(f"storage {key} missing in {path}: the file is corrupt") from None
                dt = stype.dtype.newbyteorder(">") if big_endian else stype.dtype
                st.data = np.frombuffer(raw, dtype=dt, count=st.numel).astype(stype.dtype, copy=False)
                storages[key] = st
            return storages[key]

        with zf.open(pkl[0]) as f:
            obj = _Unpickler(io.BytesIO(f.read()), path, storage_for).load()
    return _materialise(obj, path)


def _plain(f, path):
    """One pickle of plain data (numbers, strings, containers) from f; anything callable is refused."""
    from ..pdfile import data_unpickler
    return data_unpickler(f, path).load()


def _load_legacy(path):
    with open(path, "rb") as f:
        try:
            magic = _plain(f, path)
        except UserError:
            raise
        except Exception:
            magic = None
        if magic != LEGACY_MAGIC:
            raise UserError(f"{path} is not a PyTorch checkpoint (neither zip nor legacy format)")
        _plain(f, path)  # protocol number (1001)
        _sys_info = _plain(f, path)  # {'protocol_version', 'little_endian', 'type_sizes'}
        little = not isinstance(_sys_info, dict) or _sys_info.get("little_endian", True)
        storages = {}

        def storage_for(pid):
            # pid = ('storage', storage_type, root_key, location, numel, view_meta)
            _, stype, key, _location, numel = pid[:5]
            view_meta = pid[5] if len(pid) > 5 else None
            key = str(key)
            if key not in storages:
                storages[key] = _Storage(_storage_type(stype, path), numel)
            root = storages[key]
            if view_meta is not None:  # (view_key, offset, view_size): a slice of root
                return _StorageView(root, view_meta[1], view_meta[2])
            return root

        obj = _Unpickler(f, path, storage_for).load()
        keys = _plain(f, path)  # serialized storage keys, in the order the bytes follow
        for key in keys:
            key = str(key)
            head = f.read(8)
            if len(head) != 8:
                raise UserError(f"{path} is truncated (storage {key})")
            (numel,) = struct.unpack("<q" if little else ">q", head)
            st = storages.get(key)
            if st is None:
                raise UserError(f"{path}: storage {key} is not referenced by the pickle (corrupt)")
            dt = st.storage_type.dtype
            raw = f.read(numel * dt.itemsize)
            if len(raw) != numel * dt.itemsize:
                raise UserError(f"{path} is truncated (storage {key})")
            st.data = np.frombuffer(raw, dtype=dt if little else dt.newbyteorder(">")).astype(dt, copy=False)
    return _materialise(obj, path)


def unwrap_state_dict(obj, path, hint=_CONVERT_HINT):
    """Find the dict of arrays inside common checkpoint containers; strip DataParallel's prefix."""
    for _ in range(3):
        if not isinstance(obj, dict):
            break
        if obj and all(isinstance(v, np.ndarray) for v in obj.values()):
            break
        for key in ("state_dict", "model", "model_state_dict", "net", "params"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        else:
            break
    if not isinstance(obj, dict):
        raise UserError(f"{path} holds a {type(obj).__name__}, not a state dict; {hint}")
    out = collections.OrderedDict()
    for k, v in obj.items():
        if not isinstance(v, np.ndarray):
            continue  # e.g. integers or strings stored next to tensors
        k = str(k)
        out[k[len("module."):] if k.startswith("module.") else k] = v
    if not out:
        raise UserError(f"{path} contains no tensors; {hint}")
    return out


def load_torch_state_dict(path):
    """Return ``{name: numpy array}`` (insertion order kept) from a PyTorch ``.pth``/``.pt`` file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"weights file not found: {path}")
    if zipfile.is_zipfile(path):
        obj = _load_zip(path)
    else:
        try:
            obj = _load_legacy(path)
        except UserError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, struct.error) as e:
            raise UserError(f"cannot read {path} as a PyTorch checkpoint ({e})") from None
    return unwrap_state_dict(obj, path)
