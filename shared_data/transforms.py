"""Image loading and the deterministic preprocessing shared by training, val.py and infer.py.

One function does the preprocessing for the dygraph scripts and for the exported predictor, so the
two see the same numbers (docs/design.md#one-post-processing-path applies to inputs too).
"""
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_image(path):
    """Read any png/jpg/bmp/tif as RGB uint8 (H, W, 3); greyscale, RGBA, palette and 16-bit converted."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit greyscale: scale to 8 bit instead of PIL's clipping conversion.
                a = np.asarray(im, dtype=np.float64)
                hi = 65535.0 if a.max() > 255 else 255.0
                a = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
                return np.repeat(a[:, :, None], 3, axis=2)
            if im.mode == "RGBA" or im.mode == "LA" or (im.mode == "P" and "transparency" in im.info):
                # Composite on black: transparent pixels must not carry hidden colours.
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (0, 0, 0, 255))
                im = Image.alpha_composite(bg, im)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise UserError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UserError(f"cannot read image {path}: {e}") from None


def load_mask(path):
    """Read a ground-truth mask as bool (H, W): any non-zero pixel is anomalous."""
    try:
        with Image.open(path) as im:
            im.load()
            a = np.asarray(im.convert("L"))
    except FileNotFoundError:
        raise UserError(f"mask not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UserError(f"cannot read mask {path}: {e}") from None
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
