"""MVTec AD data for the four reproductions: categories, download, lite subset, synthetic data,
and a paddle Dataset for any folder in MVTec layout."""
from adbase import UserError

from .categories import MVTEC_CATEGORIES, OBJECTS, TEXTURES

__all__ = ["MVTEC_CATEGORIES", "TEXTURES", "OBJECTS", "UserError", "MVTecAD", "scan_category"]


def __getattr__(name):
    # Lazy, so `python -m shared_data.download` does not import paddle.
    if name in ("MVTecAD", "scan_category"):
        from . import dataset
        return getattr(dataset, name)
    raise AttributeError(name)
