import os

import numpy as np
import pytest
from PIL import Image

from shared_data import UserError
from shared_data import dataset as T
from shared_data.dataset import MVTecAD, scan_category, split_holdout


def test_train_and_test_items(tiny_mvtec):
    tr = MVTecAD(tiny_mvtec, "widget", "train", image_size=32)
    assert len(tr) == 4
    x, m, y, kind, path = tr[0]
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    assert m.shape == (1, 32, 32) and m.max() == 0 and y == 0 and kind == "good"
    te = MVTecAD(tiny_mvtec, "widget", "test", image_size=32, crop_size=28)
    assert len(te) == 4 and te.has_masks
    assert list(te.labels) == [0, 0, 1, 1]
    x, m, y, kind, path = te[2]
    assert x.shape == (3, 28, 28) and kind == "scratch" and y == 1
    assert set(np.unique(m)) == {0.0, 1.0}


def test_normalisation_matches_manual(tiny_mvtec):
    te = MVTecAD(tiny_mvtec, "widget", "test", image_size=40, mean=None)
    x = te[2][0]
    raw = np.asarray(Image.open(te.samples[2].path).convert("RGB"), np.float32) / 255
    np.testing.assert_allclose(x, raw.transpose(2, 0, 1), atol=1e-6)  # same size: no resampling


def test_holdout_split_is_deterministic_and_disjoint(tiny_mvtec):
    fit = MVTecAD(tiny_mvtec, "widget", "train", subset="fit")
    hold = MVTecAD(tiny_mvtec, "widget", "train", subset="holdout")
    assert len(fit) == 3 and len(hold) == 1
    assert not {s.path for s in fit.samples} & {s.path for s in hold.samples}
    assert split_holdout(list("abcdefghij"), 0.2, 0) == split_holdout(list("abcdefghij"), 0.2, 0)


def test_unknown_category_names_found_ones(tiny_mvtec):
    with pytest.raises(UserError, match="unknown category 'carpet'.*widget"):
        scan_category(tiny_mvtec, "carpet")


def test_missing_root(tmp_path):
    with pytest.raises(UserError, match="dataset folder not found"):
        scan_category(str(tmp_path / "nope"), "x")


def test_defective_image_without_mask(tiny_mvtec):
    os.remove(os.path.join(tiny_mvtec, "widget", "ground_truth", "scratch", "001_mask.png"))
    with pytest.raises(UserError, match="without a mask.*001.png"):
        scan_category(tiny_mvtec, "widget")


def test_mask_without_image(tiny_mvtec):
    os.remove(os.path.join(tiny_mvtec, "widget", "test", "scratch", "001.png"))
    with pytest.raises(UserError, match="mask without its image.*001_mask.png"):
        scan_category(tiny_mvtec, "widget")


def test_no_ground_truth_means_image_metrics_only(tiny_mvtec):
    import shutil
    shutil.rmtree(os.path.join(tiny_mvtec, "widget", "ground_truth"))
    te = MVTecAD(tiny_mvtec, "widget", "test", image_size=32)
    assert not te.has_masks and te[3][1].max() == 0


def test_corrupt_image_names_the_file(tiny_mvtec):
    p = os.path.join(tiny_mvtec, "widget", "test", "good", "000.png")
    with open(p, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\nbroken")
    te = MVTecAD(tiny_mvtec, "widget", "test", image_size=32)
    with pytest.raises(UserError, match="000.png"):
        te[0]


def test_image_modes_are_converted(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    g16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(g16).save(tmp_path / "b.tif")
    Image.fromarray(rgba[..., :3]).save(tmp_path / "c.bmp")
    Image.fromarray(rgba[..., :3]).save(tmp_path / "d.jpg")
    for name in "a.png", "b.tif", "c.bmp", "d.jpg":
        rgb = T.load_image(str(tmp_path / name))
        assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    assert T.load_image(str(tmp_path / "a.png"))[0, 0, 0] == 200
    assert T.load_image(str(tmp_path / "b.tif")).max() > 200  # 16 bit scaled, not clipped to 255 everywhere


def test_float_and_32_bit_images_read_as_their_levels(tmp_path):
    """A float TIFF in [0, 1] and a 32-bit integer TIFF read as the same greys as their 8-bit image; values
    with no meaning (negative, NaN, beyond 16 bit) are one error line, never a silently wrong score."""
    g8 = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    Image.fromarray(g8.astype(np.float32) / 255.0, mode="F").save(tmp_path / "f01.tif")
    Image.fromarray(g8.astype(np.float32), mode="F").save(tmp_path / "f255.tif")
    Image.fromarray(g8.astype(np.int32) * 257, mode="I").save(tmp_path / "i16.tif")
    for name in ("f01.tif", "f255.tif", "i16.tif"):
        rgb = T.load_image(str(tmp_path / name))
        assert rgb.shape == (8, 8, 3) and np.abs(rgb[..., 0].astype(int) - g8).max() <= 1, name
    Image.fromarray(np.full((8, 8), -1.0, np.float32), mode="F").save(tmp_path / "neg.tif")
    Image.fromarray(np.full((8, 8), 1 << 20, np.int32), mode="I").save(tmp_path / "big.tif")
    for name in ("neg.tif", "big.tif"):
        with pytest.raises(UserError, match="convert it to an 8- or 16-bit image"):
            T.load_image(str(tmp_path / name))


def test_exif_orientation_turns_the_image_upright(tmp_path):
    """A camera that stores a portrait shot as landscape pixels plus an EXIF orientation: read as shown."""
    a = np.zeros((8, 16, 3), np.uint8)
    a[:, :4] = 255                                  # bright left edge in the stored pixels
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6                                # orientation 6: rotate 90 degrees clockwise to view
    im.save(tmp_path / "cam.jpg", exif=exif, quality=95)
    rgb = T.load_image(str(tmp_path / "cam.jpg"))
    assert rgb.shape == (16, 8, 3)                  # upright: portrait
    assert rgb[:4].mean() > 200 and rgb[-4:].mean() < 50   # the left edge is now the top


class _Fails:
    """Items 0.. are arrays; item ``bad`` raises as a corrupt image does."""

    def __init__(self, n, bad):
        self.n, self.bad = n, bad

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.bad:
            raise UserError(f"cannot read image item{i}.png: truncated")
        return (np.full((2, 2), i, np.float32),)


def test_worker_batches_are_the_same_batches():
    from shared_data.dataset import image_batches
    plain = list(image_batches(_Fails(7, -1), 3))
    pooled = list(image_batches(_Fails(7, -1), 3, num_workers=2))
    assert [b.shape[0] for b in plain] == [3, 3, 1]
    assert all(np.array_equal(a, b) for a, b in zip(plain, pooled)) and len(plain) == len(pooled)


def test_a_workers_error_surfaces_and_nothing_hangs(tmp_path):
    """Paddle's DataLoader with workers hung forever on a worker's exception; ours raises it, in a
    bounded time (the subprocess is killed after 120 s, which fails the test)."""
    import subprocess
    import sys
    helper = tmp_path / "tests_helper.py"
    helper.write_text(
        "import numpy as np\n"
        "from shared_data.dataset import image_batches\n"
        "from adbase import UserError\n"
        "class Fails:\n"
        "    def __len__(self): return 20\n"
        "    def __getitem__(self, i):\n"
        "        if i == 9: raise UserError('cannot read image item9.png: truncated')\n"
        "        return (np.zeros((2, 2), np.float32),)\n"
        "def run():\n"
        "    try:\n"
        "        for _ in image_batches(Fails(), 2, num_workers=2): pass\n"
        "    except UserError as e:\n"
        "        print('raised:', e)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = [{root!r}, {str(tmp_path)!r}]\n"
                        "from tests_helper import run; run()"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "raised: cannot read image item9.png" in r.stdout, r.stderr[-2000:]


def test_a_mask_of_another_shape_is_refused(tmp_path):
    """A mask is resized to its image's size; one of another aspect ratio would be stretched silently."""
    from shared_data.synthetic import generate
    generate(str(tmp_path), ["brick"], seed=0, image_size=64, n_train=2, n_test_good=1, n_test_defect=2)
    ds = MVTecAD(str(tmp_path), "brick", "test", image_size=32)
    i = next(k for k, s in enumerate(ds.samples) if s.mask_path)
    assert ds.load_mask(i).shape == (32, 32)
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(ds.samples[i].mask_path)    # same shape, scaled
    assert ds.load_mask(i).all()
    Image.fromarray(np.full((64, 40), 255, np.uint8)).save(ds.samples[i].mask_path)    # 40 x 64: another shape
    with pytest.raises(UserError, match="is 40x64 but its image .* is 64x64"):
        ds.load_mask(i)
