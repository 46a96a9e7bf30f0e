"""adcommon.evaluate.visualize: colour order on disk, colour map direction, panel layout, ROC file."""
import os

import numpy as np
import pytest
from PIL import Image

from adbase import UserError
from adcommon.evaluate.visualize import draw_contours, heatmap, overlay, panel, save_png, save_roc


def test_save_png_keeps_rgb_order(tmp_path):
    red = np.zeros((8, 10, 3), np.uint8)
    red[..., 0] = 255  # pure red in RGB
    path = str(tmp_path / "sub" / "red.png")
    save_png(path, red)
    back = np.asarray(Image.open(path).convert("RGB"))  # PIL reads RGB: independent of cv2
    assert back.shape == (8, 10, 3)
    assert (back[..., 0] == 255).all() and (back[..., 1:] == 0).all()
    assert os.listdir(tmp_path / "sub") == ["red.png"]  # no temporary left behind


def test_save_png_greyscale_and_bad_input(tmp_path):
    save_png(str(tmp_path / "g.png"), np.full((4, 4), 7, np.uint8))
    assert np.asarray(Image.open(tmp_path / "g.png").convert("RGB"))[0, 0].tolist() == [7, 7, 7]
    with pytest.raises(UserError):
        save_png(str(tmp_path / "bad.png"), np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(UserError):
        save_png(str(tmp_path / "bad.png"), np.full((4, 4, 3), 3.0))  # float outside [0, 1]
    assert not (tmp_path / "bad.png").exists()


def test_heatmap_fixed_range_low_blue_high_red():
    amap = np.array([[0.0, 1.0], [-5.0, 9.0]], np.float32)
    h = heatmap(amap, vmin=0.0, vmax=1.0)
    assert h.dtype == np.uint8 and h.shape == (2, 2, 3)
    r, g, b = (int(v) for v in h[0, 0])
    assert b > 100 and r < 50  # vmin -> blue-ish
    r, g, b = (int(v) for v in h[0, 1])
    assert r > 100 and b < 50  # vmax -> red-ish
    assert (h[1, 0] == h[0, 0]).all() and (h[1, 1] == h[0, 1]).all()  # clipped, no per-image rescale
    flat = heatmap(np.full((3, 3), 0.1), 0.0, 10.0)  # a quiet map stays cool
    assert flat[..., 2].min() > flat[..., 0].max()
    with pytest.raises(UserError):
        heatmap(amap, 1.0, 1.0)


def test_overlay_resizes_image_to_map():
    img = np.full((64, 48, 3), 200, np.uint8)
    out = overlay(img, np.zeros((32, 24)), 0.0, 1.0, alpha=0.5)
    assert out.shape == (32, 24, 3) and out.dtype == np.uint8


def test_draw_contours_marks_boundary_in_colour():
    img = np.zeros((20, 20, 3), np.uint8)
    mask = np.zeros((20, 20), np.uint8)
    mask[5:15, 5:15] = 255
    out = draw_contours(img, mask, (0, 255, 0))
    assert (out[5, 5] == [0, 255, 0]).all() and (out[10, 10] == 0).all()  # edge drawn, inside not
    assert (img == 0).all()  # input untouched


def test_panel_tiles_and_title():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)  # image larger than the map
    amap = np.zeros((64, 64), np.float32)
    amap[20:30, 20:40] = 3.0
    gt = np.zeros((128, 128), np.uint8)
    gt[40:60, 40:80] = 1
    p3 = panel(img, amap, threshold=2.5, vmin=0.0, vmax=4.0)
    assert p3.shape == (64, 3 * 64, 3) and p3.dtype == np.uint8
    p4 = panel(img, amap, 2.5, 0.0, 4.0, gt_mask=gt, title="score 3.00 / thr 2.50: ANOMALY")
    assert p4.shape[1] == 4 * 64 and p4.shape[0] > 64 and p4.dtype == np.uint8
    assert (p4[:5] == 255).any()  # white title bar on top


def test_save_roc_writes_png(tmp_path):
    path = str(tmp_path / "roc.png")
    save_roc([0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.9], path, title="widget")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100
    with pytest.raises(UserError):
        save_roc([1, 1], [0.1, 0.2], str(tmp_path / "one_class.png"))
    assert sorted(os.listdir(tmp_path)) == ["roc.png"]
