"""Results at the original resolution: where the model looked, the anomaly map and the binary mask at
each image's own width x height, and the defective regions as boxes a line controller can act on.

The model sees an image resized to S x S (``image_size``, stretched whatever its aspect ratio) and,
with a ``crop_size``, only the centre C x C of that. Its post-processed map (the one the image score is
taken from) covers exactly that square, so it is resized once, bilinear, onto the matching rectangle
of the original image; everything outside the rectangle was not inspected and is NaN in the map and 0
in the mask. The score does not change: it comes from the model-resolution map as before.
"""
import cv2
import numpy as np
from scipy import ndimage

from adbase import atomic_path
from adcommon.files import write_png

__all__ = ["inspected_box", "to_image", "find_regions", "mask_array", "save_mask", "map_png16", "save_map",
           "crop_note", "aspect_note"]


def inspected_box(width, height, image_size, crop_size=None):
    """(x0, y0, x1, y1), in pixels of a ``width`` x ``height`` image, of the area the model scores:
    the whole image without a crop, else the centre crop mapped back through the resize (the same
    rounding as shared_data.dataset's crop)."""
    if not crop_size or not image_size or crop_size >= image_size:
        return 0, 0, int(width), int(height)
    off = int(round((image_size - crop_size) / 2.0))
    sx, sy = width / image_size, height / image_size
    return (int(round(off * sx)), int(round(off * sy)),
            int(round((off + crop_size) * sx)), int(round((off + crop_size) * sy)))


def to_image(amap, width, height, image_size, crop_size=None):
    """The model-resolution map (h, w) placed on a ``width`` x ``height`` canvas: resized once (bilinear)
    onto the inspected box, NaN elsewhere. float32 (height, width)."""
    a = np.asarray(amap, np.float32)
    x0, y0, x1, y1 = inspected_box(width, height, image_size, crop_size)
    out = np.full((int(height), int(width)), np.nan, np.float32)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = a if a.shape == (y1 - y0, x1 - x0) else \
            cv2.resize(a, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    return out


def find_regions(amap, threshold):
    """Connected regions (8-connectivity) of ``amap >= threshold`` (NaN never counts), largest first:
    [{"bbox": [x0, y0, x1, y1] (x1, y1 exclusive), "area": pixels, "peak": max, "mean": mean}]."""
    if threshold is None:
        return []
    a = np.asarray(amap, np.float32)
    hot = np.nan_to_num(a, nan=-np.inf) >= threshold
    if not hot.any():
        return []
    n, labels, stats, _ = cv2.connectedComponentsWithStats(hot.astype(np.uint8), connectivity=8)
    index = np.arange(1, n)
    peaks = ndimage.maximum(a, labels, index)
    means = ndimage.mean(a, labels, index)
    out = []
    for k, (x, y, w, h, area) in enumerate(stats[1:]):
        out.append({"bbox": [int(x), int(y), int(x + w), int(y + h)], "area": int(area),
                    "peak": round(float(peaks[k]), 6), "mean": round(float(means[k]), 6)})
    return sorted(out, key=lambda r: -r["area"])


def mask_array(amap, threshold):
    """uint8 0 / 255 of ``amap >= threshold`` (no threshold: all 0; NaN never counts)."""
    if threshold is None:
        return np.zeros(np.shape(amap), np.uint8)
    return np.where(np.nan_to_num(np.asarray(amap, np.float32), nan=-np.inf) >= threshold, 255, 0).astype(np.uint8)


def save_mask(path, amap, threshold, clean=True):
    """Binary PNG (0 / 255) of ``amap >= threshold`` (no threshold: all 0), written atomically."""
    return write_png(path, mask_array(amap, threshold), clean)


def map_png16(amap, vrange=None):
    """The map as uint16 (``vrange`` [lo, hi], else its own range, scaled to 1..65535; 0 where not
    inspected) and the scaling that reads it back."""
    a = np.asarray(amap, np.float32)
    lo, hi = (float(vrange[0]), float(vrange[1])) if vrange else (float(np.nanmin(a)), float(np.nanmax(a)))
    hi = hi if hi > lo else lo + 1.0
    u16 = np.round(1 + np.clip((a - lo) / (hi - lo), 0, 1) * 65534)
    return (np.where(np.isnan(a), 0, u16).astype(np.uint16),
            {"png16": "value = lo + (pixel - 1) / 65534 * (hi - lo); 0 = not inspected", "lo": lo, "hi": hi})


def save_map(path, amap, fmt, vrange=None, clean=True):
    """The anomaly map as ``npy`` (float32, NaN where not inspected) or ``png16`` (uint16: ``vrange``
    [lo, hi] scaled to 1..65535, 0 where not inspected). Returns the scaling written (png16) or None."""
    a = np.asarray(amap, np.float32)
    if fmt == "npy":
        with atomic_path(path, clean) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, a)
        return None
    u16, scale = map_png16(a, vrange)
    write_png(path, u16, clean)
    return scale


def crop_note(image_size, crop_size):
    """The line saying that a centre crop leaves part of each image unscored (None without a crop)."""
    if not crop_size or not image_size or crop_size >= image_size:
        return None
    share = 100.0 * crop_size * crop_size / (image_size * image_size)
    return (f"note: the centre crop ({crop_size} of {image_size} px) inspects {share:.0f} % of each image; the "
            "border is not scored (the pictures mark the inspected area)")


def aspect_note(sizes, image_size):
    """The line saying that non-square images are stretched to the model's square (None if all are square).
    ``sizes``: (width, height) of each image."""
    odd = [(w, h) for w, h in sizes if w != h]
    if not odd:
        return None
    w, h = odd[0]
    return (f"note: {len(odd)} of {len(sizes)} images are not square (e.g. {w}x{h}); each is stretched to "
            f"{image_size}x{image_size} for the model, and its map, mask and regions are mapped back to its "
            "own size")
