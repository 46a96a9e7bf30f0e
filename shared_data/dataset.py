"""A paddle Dataset for any folder in MVTec AD layout (MVTec itself, the synthetic set, a user's own data).

Layout: <root>/<category>/train/good/*, test/good/*, test/<kind>/*, optional
ground_truth/<kind>/<stem>_mask.png. Without ground_truth only image metrics are possible.
"""
import dataclasses
import itertools
import os
from collections import namedtuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from adbase import UserError, printable

from .categories import IMAGE_EXTENSIONS

Sample = namedtuple("Sample", "path label kind mask_path")  # label: 0 good, 1 defective


# ----------------------------------------------------------------------------- images and preprocessing

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# Images above this many pixels are refused, one line per image, before they are decoded (--max_megapixels):
# a 20000 x 20000 PNG is 1.2 GB once decoded. PIL's own guard (a warning at 89 MP, an error at 179 MP)
# is replaced by this one.
MAX_PIXELS = 100_000_000
Image.MAX_IMAGE_PIXELS = None


def set_max_megapixels(megapixels):
    """The size limit of every image read (load_image, load_mask), from --max_megapixels."""
    global MAX_PIXELS
    MAX_PIXELS = int(float(megapixels) * 1_000_000)


class ImageTooLarge(UserError):
    """An image over the --max_megapixels limit (refused before it is decoded)."""


class NotAnImage(UserError):
    """A file no image decoder recognises (a text file, an archive, a video)."""


def _open(path, what="image", shown=None):
    """PIL's lazy open (the header only) with the size limit checked before any decoding. ``path``: a file
    name or a binary file object (``shown`` names it in messages)."""
    im = Image.open(path)
    w, h = im.size
    if w * h > MAX_PIXELS:
        im.close()
        raise ImageTooLarge(f"{what} {printable(shown or path)} is {w} x {h} ({w * h / 1e6:.0f} megapixels), over "
                            f"the limit of {MAX_PIXELS / 1e6:g} (--max_megapixels)")
    return im


def _grey_levels(im, path):
    """A one-channel image of more than 8 bits (16- or 32-bit integers, 32-bit floats) -> uint8 (H, W).

    Integers up to 255 are kept, up to 65535 read as 16 bit; floats in [0, 1] are read as fractions of
    white, in [0, 255] and [0, 65535] as 8- and 16-bit levels. Anything else (negative, NaN, beyond 16
    bit) has no meaning we could guess: one error line instead of a silently wrong score."""
    a = np.asarray(im, dtype=np.float64)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 65535:
        raise UserError(f"cannot read image {printable(path)}: its {im.mode} values span [{lo:g}, {hi:g}]; expected "
                        "levels in [0, 1], [0, 255] or [0, 65535]: convert it to an 8- or 16-bit image")
    if im.mode == "F" and hi <= 1.0:
        scale = 1.0
    else:
        scale = 65535.0 if hi > 255 else 255.0
    return np.clip(a / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)


def load_image(path):
    """Read any png/jpg/bmp/tif as RGB uint8 (H, W, 3); greyscale, RGBA, palette, 16-bit, 32-bit integer and
    float converted, and turned upright by its EXIF orientation (as a viewer shows it). The one function
    every script reads images with: one-line errors for a missing, unreadable or oversized file."""
    return _read_rgb(path, path)


def decode_image(data, name="upload"):
    """load_image for an image file's bytes (an HTTP upload), with the same conversions, limit and errors."""
    import io
    if not data:
        raise UserError(f"cannot read image {printable(name)}: it is empty")
    return _read_rgb(io.BytesIO(data), name)


# How the image files this reader knows begin (PNG, JPEG, BMP, TIFF both byte orders, GIF, WebP's RIFF)
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"GIF8", b"RIFF")


def _signed_image(f):
    f.seek(0)
    head = f.read(8)
    return any(head.startswith(s) for s in _SIGNATURES)


def _read_rgb(src, path):
    try:
        with _open(src, shown=path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                a = _grey_levels(im, path)
                return np.repeat(a[:, :, None], 3, axis=2)
            if im.mode == "RGBA" or im.mode == "LA" or (im.mode == "P" and "transparency" in im.info):
                # Composite on black: transparent pixels must not carry hidden colours.
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (0, 0, 0, 255))
                im = Image.alpha_composite(bg, im)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise UserError(f"image not found: {printable(path)}") from None
    except UnidentifiedImageError as e:
        if isinstance(src, (str, bytes, os.PathLike)):
            raise NotAnImage(f"cannot read image {printable(path)}: {printable(e)}") from None
        if _signed_image(src):   # bytes that begin like an image but end before its header is complete
            raise UserError(f"cannot read image {printable(path)}: damaged or truncated") from None
        raise NotAnImage(f"cannot read image {printable(path)}: not an image file this reader knows "
                         "(PNG, JPEG, BMP, TIFF, ...)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"cannot read image {printable(path)}: {printable(e)}") from None
    except MemoryError:
        raise UserError(f"cannot read image {printable(path)}: not enough memory to decode it") from None


def image_size_of(path):
    """(width, height) from the image file's header, without decoding it; None when it cannot be read
    (the reading itself reports that)."""
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None


def load_mask(path):
    """Read a ground-truth mask as bool (H, W): any non-zero pixel is anomalous."""
    try:
        with _open(path, "mask") as im:
            im.load()
            im = ImageOps.exif_transpose(im)   # upright like its image
            a = np.asarray(im) if im.mode in ("I", "F", "I;16", "I;16B", "I;16L") else np.asarray(im.convert("L"))
    except FileNotFoundError:
        raise UserError(f"mask not found: {printable(path)}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"cannot read mask {printable(path)}: {printable(e)}") from None
    return a > 0


def _resize_crop(im, image_size, crop_size, resample):
    if image_size:
        im = im.resize((image_size, image_size), resample)
    if crop_size and crop_size != im.size[0]:
        w, h = im.size
        if crop_size > min(w, h):
            raise UserError(f"crop_size {crop_size} is larger than the resized image {w}x{h}")
        left = int(round((w - crop_size) / 2.0))
        top = int(round((h - crop_size) / 2.0))
        im = im.crop((left, top, left + crop_size, top + crop_size))
    return im


def resize_image(rgb, image_size, crop_size=None):
    """Resize to image_size x image_size (PIL bilinear, antialiased like torchvision on PIL), then centre crop."""
    return np.asarray(_resize_crop(Image.fromarray(rgb), image_size, crop_size, Image.BILINEAR))


def resize_mask(mask, image_size, crop_size=None):
    """Nearest-neighbour resize + centre crop of a bool mask (the PaDiM reference resizes masks NEAREST)."""
    im = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(_resize_crop(im, image_size, crop_size, Image.NEAREST)) > 127


def to_tensor(rgb, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """RGB uint8 (H, W, 3) -> float32 (3, H, W) scaled to [0, 1] then normalised; mean=None skips it."""
    x = rgb.astype(np.float32) / 255.0
    if mean is not None:
        x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def preprocess(path_or_rgb, image_size, crop_size=None, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """File or RGB array -> network input (3, S, S) float32. Used by datasets, predict.py and infer.py."""
    rgb = load_image(path_or_rgb) if isinstance(path_or_rgb, (str, bytes)) or hasattr(path_or_rgb, "__fspath__") \
        else path_or_rgb
    return to_tensor(resize_image(rgb, image_size, crop_size), mean, std)


# ----------------------------------------------------------------------------- the folder layout

HELP_DATA = ("make one with `python -m shared_data.synthetic --data_dir DIR` or fetch MVTec AD with "
             "`python -m shared_data.download --data_dir DIR`")


def list_images(folder):
    """Image files directly in ``folder``, sorted by name (hidden files skipped)."""
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))


def _subdirs(folder):
    return sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)) and not d.startswith("."))


def _find_mask(gt_kind_dir, stem, masks):
    # MVTec names masks <stem>_mask.png; like anomalib, accept any mask whose stem starts with the image stem.
    for m in masks:
        mstem = os.path.splitext(os.path.basename(m))[0]
        if mstem == f"{stem}_mask":
            return m
    for m in masks:
        mstem = os.path.splitext(os.path.basename(m))[0]
        if mstem == stem or mstem.startswith(stem + "_"):
            return m
    return None


def available_categories(root):
    if not os.path.isdir(root):
        return []
    return [d for d in _subdirs(root) if os.path.isdir(os.path.join(root, d, "train")) or
            os.path.isdir(os.path.join(root, d, "test"))]


def category_dir(root, category):
    """Checked path of one category, with a one-line error naming what exists instead."""
    if not os.path.isdir(root):
        raise UserError(f"dataset folder not found: {root}; {HELP_DATA}")
    d = os.path.join(root, category)
    if not os.path.isdir(d):
        cats = available_categories(root)
        found = ", ".join(cats) if cats else "none"
        raise UserError(f"unknown category '{category}' in {root} (found: {found})")
    return d


def scan_category(root, category, split="test"):
    """List the samples of one split as Sample records; checks the layout and the image/mask pairing."""
    cdir = category_dir(root, category)
    if split == "train":
        good = list_images(os.path.join(cdir, "train", "good"))
        if not good:
            raise UserError(f"no training images in {os.path.join(cdir, 'train', 'good')}")
        return [Sample(p, 0, "good", None) for p in good]
    if split != "test":
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    tdir = os.path.join(cdir, "test")
    if not os.path.isdir(tdir):
        raise UserError(f"missing test split: {tdir}")
    gdir = os.path.join(cdir, "ground_truth")
    has_gt = os.path.isdir(gdir) and any(list_images(os.path.join(gdir, k)) for k in _subdirs(gdir))
    samples = []
    for kind in _subdirs(tdir):
        imgs = list_images(os.path.join(tdir, kind))
        if kind == "good":
            samples += [Sample(p, 0, "good", None) for p in imgs]
            continue
        masks = list_images(os.path.join(gdir, kind)) if has_gt else []
        used = set()
        for p in imgs:
            m = None
            if has_gt:
                m = _find_mask(os.path.join(gdir, kind), os.path.splitext(os.path.basename(p))[0], masks)
                if m is None:
                    raise UserError(f"defective image without a mask: {p} (expected "
                                    f"{os.path.join(gdir, kind, os.path.splitext(os.path.basename(p))[0])}"
                                    f"_mask.png)")
                used.add(m)
            samples.append(Sample(p, 1, kind, m))
        orphans = [m for m in masks if m not in used]
        if orphans:
            raise UserError(f"mask without its image: {orphans[0]}")
    if has_gt:
        for kind in _subdirs(gdir):
            if kind != "good" and not os.path.isdir(os.path.join(tdir, kind)) and list_images(os.path.join(gdir, kind)):
                raise UserError(f"mask without its image: {list_images(os.path.join(gdir, kind))[0]}")
    if not samples:
        raise UserError(f"no test images in {tdir}")
    return samples


def split_holdout(paths, ratio=0.2, seed=0):
    """(fit, holdout) split of normal training images, as the STFPM reference does it
    (sklearn train_test_split, test_size=0.2, random_state=0). Needs at least 2 images."""
    from sklearn.model_selection import train_test_split
    paths = list(paths)
    if ratio <= 0 or len(paths) < 2:
        return paths, []
    n_hold = max(1, int(round(len(paths) * ratio)))
    if n_hold >= len(paths):
        n_hold = len(paths) - 1
    fit, hold = train_test_split(paths, test_size=n_hold, random_state=seed)
    return fit, hold


def _paddle_dataset_base():
    import paddle
    return paddle.io.Dataset


@dataclasses.dataclass(frozen=True)
class Subset:
    """A part of train/good: ``part`` 'fit' or 'holdout' of split_holdout(paths, ``ratio``, ``seed``)
    (normal images kept aside for checkpoint choice and the threshold)."""
    part: str
    ratio: float = 0.2
    seed: int = 0


class MVTecAD(_paddle_dataset_base()):
    """One category of an MVTec-layout folder.

    Items: (image (3, S, S) float32, mask (1, S, S) float32 in {0,1}, label int64, kind str, path str)
    where S = crop_size or image_size. ``subset`` (a Subset, or its part 'fit' / 'holdout' with the
    default ratio 0.2 and seed 0) keeps that part of train/good; None keeps them all.
    ``mean=None`` leaves the image in [0, 1] (KDAD).
    """

    def __init__(self, root, category, split="train", image_size=256, crop_size=None,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, subset=None):
        super().__init__()
        self.root, self.category, self.split = root, category, split
        self.image_size, self.crop_size, self.mean, self.std = image_size, crop_size, mean, std
        samples = scan_category(root, category, split)
        if subset is not None:
            if split != "train":
                raise ValueError("subset applies to the train split only")
            subset = Subset(subset) if isinstance(subset, str) else subset
            fit, hold = split_holdout([s.path for s in samples], subset.ratio, subset.seed)
            keep = set(fit if subset.part == "fit" else hold)
            samples = [s for s in samples if s.path in keep]
        self.samples = samples
        self.has_masks = any(s.mask_path for s in samples)
        self.size = crop_size or image_size

    def __len__(self):
        return len(self.samples)

    @property
    def labels(self):
        return np.array([s.label for s in self.samples], np.int64)

    def load_mask(self, i):
        s = self.samples[i]
        if s.mask_path is None:
            return np.zeros((self.size, self.size), bool)
        mask = load_mask(s.mask_path)
        # an unreadable image is reported where it is read
        w, h = image_size_of(s.path) or (mask.shape[1], mask.shape[0])
        if abs(mask.shape[1] * h - w * mask.shape[0]) > max(w, h):   # aspect ratios differ (beyond rounding)
            raise UserError(f"mask {s.mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image {s.path} is "
                            f"{w}x{h}: a mask must cover its image (same size, or the same shape scaled)")
        return resize_mask(mask, self.image_size, self.crop_size)

    def load_rgb(self, i):
        """The resized/cropped RGB image as the network sees it (for pictures)."""
        return resize_image(load_image(self.samples[i].path), self.image_size, self.crop_size)

    def __getitem__(self, i):
        s = self.samples[i]
        x = to_tensor(self.load_rgb(i), self.mean, self.std)
        m = self.load_mask(i).astype(np.float32)[None]
        return x, m, np.int64(s.label), s.kind, s.path


def _first(item):
    return item[0] if isinstance(item, (tuple, list)) else item


_WORKER_DATASET = None


def _worker_init(dataset):
    global _WORKER_DATASET
    _WORKER_DATASET = dataset


def _worker_batch(indices):
    return _batch_of(_WORKER_DATASET, indices)


def image_batches(dataset, batch_size, num_workers=0):
    """Consecutive batches (B, ...) numpy of each item's first field (the image), in order.

    ``num_workers`` > 0 builds the batches in that many worker processes, a few batches ahead. An
    exception in a worker (a corrupt image's UserError included) is raised here, in order, and the
    workers stop: Paddle's DataLoader hangs instead when a worker raises (and its single-process mode
    hangs too), so it is not used for this.
    """
    chunks = [list(range(k, min(k + batch_size, len(dataset)))) for k in range(0, len(dataset), batch_size)]
    if num_workers <= 0:
        for c in chunks:
            yield _batch_of(dataset, c)
        return
    import collections
    import concurrent.futures as cf
    import multiprocessing as mp
    from concurrent.futures.process import BrokenProcessPool
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    ex = cf.ProcessPoolExecutor(num_workers, mp_context=ctx, initializer=_worker_init, initargs=(dataset,))
    pending = collections.deque()
    try:
        todo = iter(chunks)
        pending.extend(ex.submit(_worker_batch, c) for c in itertools.islice(todo, 2 * num_workers))
        while pending:
            batch = pending.popleft().result()   # re-raises a worker's exception
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(ex.submit(_worker_batch, nxt))
            yield batch
    except BrokenProcessPool:
        raise UserError("a data-loading worker process died (out of memory?); try --num_workers 0") from None
    finally:
        for f in pending:   # the batches not started yet are dropped; running ones end (bounded: the prefetch)
            f.cancel()
        ex.shutdown(wait=True)


def _batch_of(dataset, indices):
    """The first field (the image) of the items ``indices``, stacked."""
    return np.stack([_first(dataset[j]) for j in indices])


def train_split(root, category, holdout_ratio=0.2, **kw):
    """(fit, held-out) MVTecAD datasets of train/good, or (all, None) with ``holdout_ratio`` 0: the
    normal images a method trains on and the ones it keeps aside for its checkpoint choice and its
    threshold (split_holdout). ``kw``: image_size, crop_size, mean, std."""
    if holdout_ratio and holdout_ratio > 0:
        return (MVTecAD(root, category, "train", subset=Subset("fit", holdout_ratio), **kw),
                MVTecAD(root, category, "train", subset=Subset("holdout", holdout_ratio), **kw))
    return MVTecAD(root, category, "train", **kw), None


class ImageCache:
    """A dataset's images decoded and resized once, held in memory as uint8 (N, S, S, 3): decoding a PNG
    costs more than a training step on small images, and the reference implementations cache their
    training sets the same way. ``batch(idx)`` -> normalised float32 (B, 3, S, S) as the dataset gives."""

    def __init__(self, dataset):
        self.rgb = np.stack([dataset.load_rgb(i) for i in range(len(dataset))]) if len(dataset) else \
            np.zeros((0, dataset.size, dataset.size, 3), np.uint8)
        self.mean, self.std = dataset.mean, dataset.std

    def __len__(self):
        return len(self.rgb)

    def batch(self, idx):
        return np.stack([to_tensor(self.rgb[i], self.mean, self.std) for i in idx])

    def all(self):
        return self.batch(range(len(self)))
