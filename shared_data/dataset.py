"""A paddle Dataset for any folder in MVTec AD layout (MVTec itself, the synthetic set, a user's own data).

Layout: <root>/<category>/train/good/*, test/good/*, test/<kind>/*, optional
ground_truth/<kind>/<stem>_mask.png. Without ground_truth only image metrics are possible.
"""
import os
from collections import namedtuple

import numpy as np

from . import transforms as T
from .categories import IMAGE_EXTENSIONS
from .errors import UserError

Sample = namedtuple("Sample", "path label kind mask_path")  # label: 0 good, 1 defective

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


class MVTecAD(_paddle_dataset_base()):
    """One category of an MVTec-layout folder.

    Items: (image (3, S, S) float32, mask (1, S, S) float32 in {0,1}, label int64, kind str, path str)
    where S = crop_size or image_size. ``subset`` splits train/good into 'fit' and 'holdout'
    (normal images kept aside for checkpoint choice and the threshold); None keeps them all.
    ``mean=None`` leaves the image in [0, 1] (KDAD).
    """

    def __init__(self, root, category, split="train", image_size=256, crop_size=None,
                 mean=T.IMAGENET_MEAN, std=T.IMAGENET_STD, subset=None, holdout_ratio=0.2, seed=0):
        super().__init__()
        self.root, self.category, self.split = root, category, split
        self.image_size, self.crop_size, self.mean, self.std = image_size, crop_size, mean, std
        samples = scan_category(root, category, split)
        if subset is not None:
            if split != "train":
                raise ValueError("subset applies to the train split only")
            fit, hold = split_holdout([s.path for s in samples], holdout_ratio, seed)
            keep = set(fit if subset == "fit" else hold)
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
        return T.resize_mask(T.load_mask(s.mask_path), self.image_size, self.crop_size)

    def load_rgb(self, i):
        """The resized/cropped RGB image as the network sees it (for pictures)."""
        return T.resize_image(T.load_image(self.samples[i].path), self.image_size, self.crop_size)

    def __getitem__(self, i):
        s = self.samples[i]
        x = T.to_tensor(self.load_rgb(i), self.mean, self.std)
        m = self.load_mask(i).astype(np.float32)[None]
        return x, m, np.int64(s.label), s.kind, s.path


def image_batches(dataset, batch_size, num_workers=0):
    """Consecutive batches (B, ...) numpy of each item's first field (the image), in order.

    Without workers the items are built here: Paddle 3.3's single-process DataLoader hangs instead
    of raising when __getitem__ raises (a corrupt image would freeze training rather than give the
    one-line error). With workers, paddle.io.DataLoader does the loading.
    """
    first = lambda item: item[0] if isinstance(item, (tuple, list)) else item  # noqa: E731
    if num_workers > 0:
        import paddle
        for b in paddle.io.DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=False,
                                      num_workers=num_workers, use_shared_memory=False):
            x = first(b)
            yield x.numpy() if hasattr(x, "numpy") else np.asarray(x)
        return
    for k in range(0, len(dataset), batch_size):
        yield np.stack([first(dataset[j]) for j in range(k, min(k + batch_size, len(dataset)))])
