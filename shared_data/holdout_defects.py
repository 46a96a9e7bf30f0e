"""A label-free validation category: defects drawn onto held-out normal images of a real category.

Choosing a recipe (image size, schedule, image score) needs anomalies to score, and the test set's
must never be used for that. This command builds a second MVTec-layout category from ``train/good``
alone: part of the normal images is held out of training and each held-out image also appears with
one drawn defect (the synthetic data's scratches, cracks, holes, contamination, discolouration and
threads, with exact masks). Train on the new category's ``train/good`` and run val.py on it as on any
category; its metrics rank recipes without a test label. The drawn defects are not the real ones, so
the figures only compare recipes; they do not predict a test figure.

    python -m shared_data.holdout_defects --data_dir data/mvtec --category screw --out_dir data/holdout

The new category has the same name under ``--out_dir``. Its ``test/good`` are the held-out images
unchanged and ``test/<kind>`` the same images with a defect (paired, so the pose and the lighting of an
image cancel out), and ``train/good`` holds the rest (hard links where the file system allows).
Nothing under ``--data_dir`` changes, and an existing output category is never replaced.
"""
import os
import shutil

import cv2
import numpy as np

from adbase import ArgumentParser, Range, UserError, make_dirs, make_temp_dir, run_cli
from shared_data import synthetic
from shared_data.dataset import category_dir, list_images, load_image, split_holdout

KINDS = ("scratch", "crack", "hole", "contamination", "color", "thread")
_REGION_SIZE = 256        # the foreground estimate works on images this size
_MIN_REGION, _MAX_REGION = 0.005, 0.5


def _grey_small(rgb):
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.resize(g, (_REGION_SIZE, _REGION_SIZE), interpolation=cv2.INTER_AREA)


def _smooth_background(grey):
    """The image's background as a smooth surface: a quadratic in x and y fitted to the grey levels,
    refitted twice without the pixels far from it (the part), as a light plate under a lamp looks."""
    n = grey.shape[0]
    y, x = np.mgrid[0:n, 0:n].astype(np.float64) / n - 0.5
    A = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], -1).reshape(-1, 6)
    v = grey.reshape(-1).astype(np.float64)
    keep = np.ones(v.shape, bool)
    for _ in range(3):
        coef = np.linalg.lstsq(A[keep], v[keep], rcond=None)[0]
        r = v - A @ coef
        mad = float(np.median(np.abs(r[keep] - np.median(r[keep])))) + 1e-6
        keep = np.abs(r) < 3.0 * 1.4826 * mad
    return (A @ coef).reshape(grey.shape).astype(np.float32)


def foreground(rgb):
    """Where a defect may land on ``rgb``: the part, found as the pixels far from a smooth background
    (Otsu on the blurred difference, closed, largest blob). The whole image instead when no single
    compact part stands out: the blob covers under 0.5 % or over half the image, holds under 85 % of
    what differs, or fills under half its convex hull (textures, grids, parts that fill the frame)."""
    h, w = rgb.shape[:2]
    grey = _grey_small(rgb)
    diff = cv2.GaussianBlur(np.abs(grey - _smooth_background(grey)), (0, 0), 2.0)
    d8 = np.clip(diff * (255.0 / max(float(diff.max()), 1e-6)), 0, 255).astype(np.uint8)
    _, fg = cv2.threshold(d8, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg)
    if n < 2:
        return np.ones((h, w), np.float32)
    part = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    contours, _ = cv2.findContours(part, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.contourArea(cv2.convexHull(np.vstack(contours)))
    area = float(part.sum())
    if not (_MIN_REGION <= area / part.size <= _MAX_REGION and area >= 0.85 * fg.sum()
            and area >= 0.5 * hull):
        return np.ones((h, w), np.float32)
    part = cv2.erode(part, np.ones((3, 3), np.uint8)).astype(np.float32)  # keep defects off the outline
    return (cv2.resize(part, (w, h), interpolation=cv2.INTER_LINEAR) > 0.5).astype(np.float32)


def _is_grey(rgb):
    """An RGB array whose three channels are equal (a greyscale image loaded as RGB)."""
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def draw(rgb, region, kind, rng):
    """One ``kind`` defect on ``rgb`` (H x W x 3 uint8) inside ``region`` -> (image, bool mask).

    The defect is drawn in a square window around a point of the region, sized to the part (the side
    of a square as large as the region, / 0.6, as a part fills a synthetic image), so that it keeps
    the proportion to the part that the synthetic data's defects have to theirs.
    """
    h, w = rgb.shape[:2]
    grey = _is_grey(rgb)
    src = rgb[..., :1] if grey else rgb
    side = int(np.clip(np.sqrt(region.sum()) / 0.6, min(64, h, w), min(h, w)))
    ys, xs = np.nonzero(region > 0.5)
    k = int(rng.integers(len(ys)))
    y0 = int(np.clip(ys[k] - side // 2, 0, h - side))
    x0 = int(np.clip(xs[k] - side // 2, 0, w - side))
    win = (slice(y0, y0 + side), slice(x0, x0 + side))
    normal = np.ascontiguousarray(src[win])
    scene = dict(S=side, img=normal.astype(np.float32) / 255.0, region=region[win].astype(np.float32))

    def finish(a):
        return np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)

    patch, patch_mask = synthetic.place_defect(scene, rng, kind, normal, finish)
    out, mask = src.copy(), np.zeros((h, w), bool)
    out[win], mask[win] = patch, patch_mask
    return (np.repeat(out, 3, axis=2) if grey else out), mask


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _write(path, rgb, grey):
    synthetic._write_png(path, rgb[..., 0] if grey else rgb)


def _build(tmp, normals, ratio, seed, kinds):
    fit, held = split_holdout(normals, ratio)  # train.py's split (seed 0): its held-out images, exactly
    if len(fit) < 2 or not held:
        raise UserError(f"{len(normals)} normal images are too few to hold some out (--ratio {ratio})")
    for sub in ["train/good", "test/good"] + [f"{top}/{k}" for top in ("test", "ground_truth") for k in kinds]:
        os.makedirs(os.path.join(tmp, sub))
    for p in fit:
        _link_or_copy(p, os.path.join(tmp, "train", "good", os.path.basename(p)))
    counts = dict.fromkeys(kinds, 0)
    for i, p in enumerate(held):
        rgb = load_image(p)
        grey = _is_grey(rgb)
        stem = os.path.splitext(os.path.basename(p))[0]
        _write(os.path.join(tmp, "test", "good", stem + ".png"), rgb, grey)
        kind = kinds[i % len(kinds)]
        img, mask = draw(rgb, foreground(rgb), kind, np.random.default_rng([seed, i]))
        j = counts[kind]
        counts[kind] += 1
        _write(os.path.join(tmp, "test", kind, f"{j:03d}.png"), img, grey)
        synthetic._write_png(os.path.join(tmp, "ground_truth", kind, f"{j:03d}_mask.png"),
                             mask.astype(np.uint8) * 255)
    return len(fit), len(held)


def build(data_dir, category, out_dir, ratio=0.2, seed=0, kinds=KINDS):
    """Write ``<out_dir>/<category>`` from ``<data_dir>/<category>/train/good``; return its path."""
    src = category_dir(data_dir, category)
    normals = list_images(os.path.join(src, "train", "good"))
    if not normals:
        raise UserError(f"no images in {os.path.join(src, 'train', 'good')}")
    root = os.path.abspath(os.fspath(out_dir))
    final = os.path.join(root, category)
    if os.path.realpath(final) == os.path.realpath(src):
        raise UserError("--out_dir must not be --data_dir: the new category would replace the real one")
    if os.path.exists(final):
        raise UserError(f"{final} exists; choose another --out_dir (nothing is replaced)")
    make_dirs(root)
    tmp = make_temp_dir(category, root)
    try:
        n_fit, n_held = _build(tmp, normals, ratio, seed, list(kinds))
        with open(os.path.join(tmp, "readme.txt"), "w", encoding="utf-8") as f:
            f.write(f"Label-free validation category built by python -m shared_data.holdout_defects from\n"
                    f"{src}/train/good: {n_fit} training images, {n_held} held-out normals in test/good and\n"
                    f"the same {n_held} images with one drawn defect each (seed {seed}). No test image was used.\n")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {final}: {n_fit} training images, {n_held} held-out normals, {n_held} with a drawn defect")
    return final


def main(argv=None):
    ap = ArgumentParser(prog="python -m shared_data.holdout_defects",
                        description="Build a label-free validation category from a category's normal "
                                    "training images (held-out normals, and the same with drawn defects).")
    ap.add_argument("--data_dir", required=True, help="root holding <category>/train/good")
    ap.add_argument("--category", required=True)
    ap.add_argument("--out_dir", required=True, help="where <category> is written (must not exist yet)")
    ap.add_argument("--ratio", type=float, default=0.2, limits=Range(0.0, 0.9, lo_open=True),
                    help="share of train/good held out, as train.py's --holdout_ratio (default 0.2)")
    ap.add_argument("--seed", type=int, default=0, limits=Range(0), help="seed of the drawn defects")
    args = ap.parse_args(argv)
    build(args.data_dir, args.category, args.out_dir, args.ratio, args.seed)


if __name__ == "__main__":
    run_cli(main)
