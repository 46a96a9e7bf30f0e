"""Reading ``.pdparams`` files as data: ``paddle.load`` with an unpickler that builds nothing but data.

``paddle.save`` writes a pickle, and a plain ``pickle.load`` calls whatever a file names (a
``__reduce__`` returning ``os.system``, say): any checkpoint a user receives could run code as it is
read. ``load`` runs Paddle's own loader (its conversions of saved tensors and its file layouts, Paddle
2.6 and 3.x alike) with ``pickle.load`` replaced, for that call, by an unpickler whose ``find_class``
allows only what a checkpoint of this suite or a weights file holds: containers, numbers, strings,
bytes, numpy arrays, scalars and dtypes. Anything else ends the read with one ``error:`` line before
any object of the file is built, so nothing of it runs.
"""
import _compat_pickle
import contextlib
import io
import pickle
import threading

from adbase import UserError

__all__ = ["load", "data_unpickler", "UnsafeFile", "ALLOWED"]

# (module, name) a checkpoint or weights file may name. numpy's array, dtype and scalar reconstructors
# live in numpy.core before numpy 2 and in numpy._core from it; protocol 2 files (Paddle 2.x on
# Python 2 era pickles) spell bytes as _codecs.encode.
_NUMPY = ("_reconstruct", "scalar", "_frombuffer")
ALLOWED = frozenset(
    [("collections", "OrderedDict"), ("_codecs", "encode")]
    + [("builtins", n) for n in ("tuple", "list", "dict", "set", "frozenset", "bytearray", "complex",
                                 "bool", "int", "float", "str", "bytes", "slice")]
    + [("numpy", "ndarray"), ("numpy", "dtype")]
    + [(f"numpy.{core}.{mod}", n) for core in ("core", "_core") for mod in ("multiarray", "numeric")
       for n in _NUMPY]
)


class UnsafeFile(UserError):
    """A file names a callable that no checkpoint holds: refused, nothing of it built."""


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, file, path, **kwargs):
        super().__init__(file, **kwargs)
        self._path = path

    def find_class(self, module, name):
        # Python 2 names (protocol 2: __builtin__.tuple) as the unpickler maps them
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in ALLOWED or (module.startswith("numpy.dtypes") and name.endswith("DType")):
            return super().find_class(module, name)
        raise UnsafeFile(f"{self._path} is not a plain checkpoint: it names {module}.{name}, which a "
                         "weights file never holds (refused without running it; use files from a source "
                         "you trust)")


def data_unpickler(file, path, **kwargs):
    """A ``pickle.Unpickler`` over ``file`` that builds only the data of ``ALLOWED``."""
    return _DataUnpickler(file, path, **kwargs)


class _PickleShim:
    """Stands in for the ``pickle`` module inside ``paddle.framework.io`` during one load."""

    def __init__(self, path):
        self._path = path

    def __getattr__(self, name):
        return getattr(pickle, name)

    def load(self, file, **kwargs):
        return _DataUnpickler(file, self._path, **kwargs).load()

    def loads(self, data, **kwargs):
        return _DataUnpickler(io.BytesIO(data), self._path, **kwargs).load()


_LOCK = threading.Lock()


@contextlib.contextmanager
def _restricted(path):
    import paddle.framework.io as pio
    with _LOCK:
        real = pio.pickle
        pio.pickle = _PickleShim(path)
        try:
            yield
        finally:
            pio.pickle = real


def load(path, **configs):
    """``paddle.load(path, **configs)`` that refuses (``UnsafeFile``) a file naming anything but data."""
    import paddle
    with _restricted(str(path)):
        try:
            return paddle.load(path, **configs)
        except UnsafeFile:
            raise
        except Exception as e:  # Paddle wraps some errors; ours may come back inside another type
            cause = e
            while cause is not None and not isinstance(cause, UnsafeFile):
                cause = cause.__cause__ or cause.__context__
            if isinstance(cause, UnsafeFile):
                raise cause from None
            raise
