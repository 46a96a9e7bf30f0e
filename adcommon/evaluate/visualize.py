"""Pictures of anomaly maps: heat maps, overlays, contours, a side-by-side panel, PNG and ROC files.

Every image here is an RGB uint8 (H, W, 3) numpy array. OpenCV works in BGR, so the only BGR
conversion happens inside ``save_png`` (the seed ports wrote channel-swapped files by mixing them up).
"""
import dataclasses
from typing import Optional

import cv2
import numpy as np

from adbase import UserError, atomic_path

__all__ = ["heatmap", "overlay", "draw_contours", "panel", "save_png", "save_roc"]


def _rgb(image, name="image"):
    """RGB uint8 (H, W, 3) from RGB or greyscale (H, W) / (H, W, 1), uint8/int 0-255 or float 0-1."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise UserError(f"{name} must be an RGB (H, W, 3) or greyscale (H, W) array, got shape {a.shape}")
    if a.dtype != np.uint8:
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if np.issubdtype(a.dtype, np.integer) and lo >= 0 and hi <= 255:
            a = a.astype(np.uint8)
        elif np.issubdtype(a.dtype, np.floating) and lo >= 0 and hi <= 1:
            a = np.round(a * 255).astype(np.uint8)
        else:
            raise UserError(f"{name} must be uint8 (0-255) or float in [0, 1]; got {a.dtype} in [{lo}, {hi}]")
    return np.ascontiguousarray(a)


def _map2d(amap):
    a = np.asarray(amap, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise UserError(f"anomaly map must be (H, W), got shape {a.shape}")
    return a


def _fit(image, shape):
    """Resize an RGB image to ``shape`` (H, W) (area when shrinking, linear when enlarging)."""
    if image.shape[:2] == tuple(shape):
        return image
    shrink = shape[0] * shape[1] < image.shape[0] * image.shape[1]
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def heatmap(amap, vmin, vmax):
    """RGB uint8 JET colouring of ``amap`` scaled with FIXED ``vmin``/``vmax`` (e.g. from the normal
    validation scores), not per-image min-max: a normal image then stays blue instead of being
    stretched until its noise looks like a defect. Values outside [vmin, vmax] are clipped."""
    a = _map2d(amap)
    if not vmax > vmin:
        raise UserError(f"heatmap needs vmax > vmin, got vmin={vmin}, vmax={vmax}")
    u8 = np.round(np.clip((a - vmin) / (vmax - vmin), 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)  # (H, W, 3)


def overlay(image, amap, vmin, vmax, alpha=0.5):
    """Heat map blended over the image (the image is resized to the map's size): RGB uint8."""
    heat = heatmap(amap, vmin, vmax)
    img = _fit(_rgb(image), heat.shape[:2])
    return cv2.addWeighted(heat, float(alpha), img, 1.0 - float(alpha), 0.0)


def draw_contours(image, mask, color=(255, 0, 0), thickness=1):
    """Copy of the RGB image with the boundaries of ``mask > 0`` drawn in ``color`` (RGB)."""
    img = _rgb(image).copy()
    m = (np.asarray(mask) > 0).astype(np.uint8)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.shape != img.shape[:2]:  # a mask at another resolution: nearest keeps it binary
        m = cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(img, contours, -1, tuple(int(c) for c in color), int(thickness))
    return img


def _label(tile, text):
    """Write ``text`` in the tile's top-left corner on a dark box (in place)."""
    scale = max(0.3, tile.shape[1] / 600)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(tile, (0, 0), (tw + 4, th + base + 4), (0, 0, 0), -1)
    cv2.putText(tile, text, (2, th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def panel(image, amap, threshold, vmin, vmax, gt_mask=None, title=None):
    """Side-by-side RGB uint8: image | heat-map overlay | prediction (amap >= threshold, red contour
    and tint) | ground truth (green contour) when ``gt_mask`` is given; a title bar on top when
    ``title`` is given (e.g. "score 3.21 / thr 2.50: ANOMALY"). Tiles are at the map's resolution;
    the image (and mask) are resized to it. NaN in ``amap`` marks what the model did not inspect (a
    crop's border): it is dimmed in the overlay, never predicted, and the inspected area is framed."""
    a = _map2d(amap)  # (H, W)
    img = _fit(_rgb(image), a.shape)  # (H, W, 3)
    inside = np.isfinite(a)
    pred = inside & (np.where(inside, a, -np.inf) >= threshold)
    tint = img.copy()
    tint[pred] = (0.5 * tint[pred] + 0.5 * np.array([255, 0, 0])).astype(np.uint8)
    heat = overlay(img, np.where(inside, a, vmin), vmin, vmax)
    heat[~inside] = (0.4 * img[~inside]).astype(np.uint8)
    tiles = [img.copy(), heat, draw_contours(tint, pred, (255, 0, 0), 2)]
    if gt_mask is not None:
        tiles.append(draw_contours(img, gt_mask, (0, 255, 0), 2))
    if inside.any() and not inside.all():
        ys, xs = np.nonzero(inside)
        for t in tiles:
            cv2.rectangle(t, (int(xs.min()), int(ys.min())), (int(xs.max()), int(ys.max())), (255, 255, 255), 1)
    tiles = [_label(t, n) for t, n in zip(tiles, ["image", "anomaly map", "prediction", "ground truth"])]
    out = np.concatenate(tiles, axis=1)  # (H, k W, 3)
    if title:
        scale = max(0.4, out.shape[0] / 400)
        (_, th), base = cv2.getTextSize(str(title), cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        bar = np.full((th + base + 10, out.shape[1], 3), 255, np.uint8)
        cv2.putText(bar, str(title), (5, th + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
        out = np.concatenate([bar, out], axis=0)
    return out


def save_png(path, rgb, clean=True):
    """Write an RGB (or greyscale) uint8 image as PNG, atomically (temporary file, then rename)."""
    from adcommon.files import write_png
    return write_png(path, _rgb(rgb), clean)


def save_roc(labels, scores, path, title=None):
    """ROC curve of image scores with the AUROC in the legend, saved atomically (matplotlib, Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    from adcommon.evaluate.metrics import image_auroc

    auc = image_auroc(labels, scores)  # validates the inputs, raises UserError when one class only
    fpr, tpr, _ = roc_curve(np.asarray(labels).astype(bool).ravel(), np.asarray(scores, np.float64).ravel())
    fig = Figure(figsize=(4, 4), dpi=100)  # no pyplot: no global state, no display backend
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(fpr, tpr, lw=2, label=f"AUROC = {auc:.4f}")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate",
           title=title or "ROC")
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def verdict(score, threshold):
    return "anomalous" if threshold is not None and score >= threshold else "normal"


@dataclasses.dataclass(frozen=True)
class PanelStyle:
    """How a panel shows a map: ``threshold`` is the image threshold of the verdict in the title (None:
    no verdict), ``vmin``/``vmax`` the heat map's fixed scale, ``map_threshold`` the threshold of the
    predicted region when the map has other units than the score (default: ``threshold``, else ``vmax``),
    and ``region_only_if_anomalous`` draws the region only for images over the image threshold (maps
    scaled per image always have a hot spot)."""
    threshold: Optional[float]
    vmin: float
    vmax: float
    map_threshold: Optional[float] = None
    region_only_if_anomalous: bool = False

    def title(self, score):
        if self.threshold is None:
            return f"score {score:.3f} (no threshold)"
        return f"score {score:.3f} / thr {self.threshold:.3f}: {verdict(score, self.threshold).upper()}"

    def region(self, score):
        """The map threshold of the predicted region of an image with this score (inf: no region)."""
        region = self.map_threshold if self.map_threshold is not None else self.threshold
        if region is None:
            region = self.vmax
        if self.region_only_if_anomalous and self.threshold is not None and score < self.threshold:
            region = float("inf")
        return region


def save_panel(path, rgb, amap, score, style, *legacy, gt_mask=None, clean=True):
    """One picture: image | overlay | predicted mask | ground truth (when ``gt_mask`` is given), with the
    score and the verdict in its title; ``style`` is a PanelStyle.

    The older positional form, ``threshold, vmin, vmax[, gt_mask, map_threshold, region_only_if_anomalous]``
    in place of ``style``, is still accepted.
    """
    if not isinstance(style, PanelStyle):
        style, gt_mask = _legacy_style(style, *legacy, **({} if gt_mask is None else {"gt_mask": gt_mask}))
    save_png(path, panel_picture(rgb, amap, score, style, gt_mask), clean)


def _legacy_style(threshold, vmin, vmax, gt_mask=None, map_threshold=None, region_only_if_anomalous=False):
    """(PanelStyle, ground truth) of save_panel's older positional arguments."""
    return PanelStyle(threshold, vmin, vmax, map_threshold, region_only_if_anomalous), gt_mask


def panel_picture(rgb, amap, score, style, gt_mask=None):
    """save_panel's picture as an RGB uint8 array: ``panel`` with the title and the region's threshold
    that ``style`` (a PanelStyle) gives an image with this ``score``."""
    return panel(rgb, amap, style.region(score), style.vmin, style.vmax, gt_mask=gt_mask, title=style.title(score))
