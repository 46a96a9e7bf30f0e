"""CutPaste augmentations: geometry of the pasted regions, seeding, the 3-way batch, a picture to look at."""
import math
import os

import cv2
import numpy as np

from sspcab import cutpaste as C


def _image(i=0, size=256):
    from shared_data.synthetic import render_normal
    return render_normal("tablet", 0, "train", i, size)     # RGB uint8 with texture and an object


def test_cutpaste_normal_geometry():
    img = _image()
    for seed in range(40):
        out, mask = C.cutpaste_normal(img, np.random.default_rng(seed))
        ys, xs = np.nonzero(mask)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert mask.sum() == h * w                              # one axis-aligned rectangle
        area = h * w / img.shape[0] / img.shape[1]
        assert 0.02 * 0.9 <= area <= 0.15 * 1.1                 # U(0.02, 0.15) of the image, up to rounding
        assert 0.3 * 0.9 <= w / h <= (1 / 0.3) * 1.1            # log-uniform aspect in [0.3, 1/0.3]
        np.testing.assert_array_equal(out[~mask], img[~mask])   # nothing changes outside the patch


def test_cutpaste_scar_geometry():
    img = _image()
    for seed in range(40):
        out, mask = C.cutpaste_scar(img, np.random.default_rng(seed))
        np.testing.assert_array_equal(out[~mask], img[~mask])
        (_, _), (a, b), angle = cv2.minAreaRect(np.argwhere(mask)[:, ::-1].astype(np.float32))
        short, long_ = sorted((a, b))
        # width U(2, 16) x height U(10, 25) pixels at 256 px, rotated +-45 deg with nearest resampling
        assert 2 - 1.5 <= short <= 16 + 1.5 and 10 - 1.5 <= long_ <= 25 + 1.5, (seed, a, b)
        assert 2 * 10 * 0.6 <= mask.sum() <= 16 * 25 * 1.3


def test_scar_scales_with_image_size():
    """Scar sizes are pixels at 256 px; at 128 px the strip is half as large (same share of the image)."""
    img = _image(size=128)
    sizes = [np.sort(cv2.minAreaRect(np.argwhere(C.cutpaste_scar(img, np.random.default_rng(s))[1])[:, ::-1]
                                     .astype(np.float32))[1]) for s in range(30)]
    assert max(s[1] for s in sizes) <= 25 / 2 + 1.5 and min(s[1] for s in sizes) >= 10 / 2 - 1.5


def test_rotation_matches_pil_expand():
    """_rotate_expand grows the canvas like PIL's rotate(expand=True) and keeps the patch's pixel count."""
    patch = np.full((20, 6, 3), 200, np.uint8)
    for deg in (-45, -10, 0, 30, 45):
        rot, alpha = C._rotate_expand(patch, deg)
        r = math.radians(deg)
        assert rot.shape[:2] == alpha.shape
        assert abs(alpha.shape[1] - (6 * abs(math.cos(r)) + 20 * abs(math.sin(r)))) <= 1.5
        assert abs(alpha.sum() - 120) <= 0.25 * 120
        assert (rot[alpha] == 200).all() and (rot[~alpha] == 0).all()


def test_seeded_and_reproducible():
    img = _image()
    a = C.cutpaste_views(img, C.step_rng(3, 7, 1))
    b = C.cutpaste_views(img, C.step_rng(3, 7, 1))
    c = C.cutpaste_views(img, C.step_rng(3, 7, 2))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    np.testing.assert_array_equal(C.color_jitter(img, np.random.default_rng(0), 0.0), img)


def test_views_per_variant_and_labels():
    img = _image()
    for variant, n in C.VARIANTS.items():
        views = C.cutpaste_views(img, np.random.default_rng(0), variant)
        assert len(views) == n and all(v.shape == img.shape and v.dtype == np.uint8 for v in views)
    orig, normal, scar = C.cutpaste_views(img, np.random.default_rng(1), "3way")
    # the classes differ from the (jittered) original only where something was pasted
    assert 0 < (normal != orig).any(2).mean() <= 0.16 and 0 < (scar != orig).any(2).mean() < 0.02
    from sspcab.loss import class_labels
    assert class_labels(3, 2).numpy().tolist() == [0, 0, 1, 1, 2, 2]


def test_batch_indices():
    idx = C.batch_indices(10, 4, seed=0, step=5)
    assert len(set(idx.tolist())) == 4 and np.array_equal(idx, C.batch_indices(10, 4, 0, 5))
    big = C.batch_indices(3, 7, 0, 0)                          # more samples than images: every image twice+
    assert len(big) == 7 and set(big.tolist()) == {0, 1, 2}


def test_steps_dataset_is_resume_consistent():
    """Step k's batch is the same whether the dataset starts at step 0 or at step k (resume)."""
    from sspcab.engine import CutPasteSteps
    imgs = np.stack([_image(i, 128) for i in range(3)])
    args = {"variant": "3way", "mean": [0.5] * 3, "std": [0.5] * 3}
    full = CutPasteSteps(imgs, args, 2, 0, 4)
    resumed = CutPasteSteps(imgs, args, 2, 0, 4, first_step=2)
    assert len(full) == 8 and len(resumed) == 4
    for i in range(4):
        np.testing.assert_array_equal(full[4 + i], resumed[i])
    assert full[0].shape == (3, 3, 128, 128) and full[0].dtype == np.float32


def test_grid_picture(tmp_path):
    """A grid of augmented samples for a person to look at: rows = images, columns = original /
    CutPaste-normal / CutPaste-scar, pasted regions outlined in the right half."""
    rows = []
    for i in range(4):
        img = _image(i)
        rng = np.random.default_rng(i)
        base = C.color_jitter(img, rng)
        normal, m1 = C.cutpaste_normal(base, rng)
        scar, m2 = C.cutpaste_scar(base, rng)
        outlined = []
        for v, m in ((normal, m1), (scar, m2)):
            v = v.copy()
            cnt, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(v, cnt, -1, (255, 0, 0), 1)
            outlined.append(v)
        rows.append(np.concatenate([base, normal, scar] + outlined, axis=1))
    grid = np.concatenate(rows, axis=0)
    path = os.path.join(str(tmp_path), "cutpaste_grid.png")
    assert cv2.imwrite(path, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    assert cv2.imread(path).shape == (4 * 256, 5 * 256, 3)
    print(f"\ncutpaste grid: {path}")
