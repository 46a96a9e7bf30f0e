"""CutPaste augmentations (Li et al., CVPR 2021), as in Runinho/pytorch-cutpaste, the code the SSPCAB
authors built on: CutPaste-normal (a rectangle pasted elsewhere in the same image), CutPaste-scar (a
thin rotated strip), each with a colour-jittered patch; 3-way classification labels 0 / 1 / 2.

Images are RGB uint8 (S, S, 3) numpy arrays. Every random draw comes from the numpy Generator passed
in (never the global ``random``), so one seed gives the same augmentations in any worker, on resume.
Each cut-paste returns ``(augmented image, pasted-pixel mask)``; the mask is what the tests check.
"""
import math

import cv2
import numpy as np

REFERENCE_SIZE = 256                 # the paper's image size; scar sizes are in pixels at this size
NORMAL_AREA = (0.02, 0.15)           # patch area / image area
NORMAL_ASPECT = 0.3                  # aspect ratio drawn log-uniformly in [0.3, 1 / 0.3]
SCAR_WIDTH = (2, 16)                 # pixels at 256 x 256
SCAR_HEIGHT = (10, 25)
SCAR_ROTATION = (-45, 45)            # degrees
JITTER = 0.1                         # ColorJitter(brightness, contrast, saturation, hue) = 0.1 each
VARIANTS = {"normal": 2, "scar": 2, "3way": 3}   # variant -> number of classes


def _gray(x):
    """ITU-R 601 luma (what PIL 'L' and torchvision use), (..., 3) float -> (...) float."""
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


def color_jitter(img, rng, strength=JITTER):
    """torchvision ColorJitter(b, c, s, h = strength): four factors drawn, applied in a random order.

    brightness x*b; contrast blend with the image's mean grey; saturation blend with the grey image;
    hue rotation by h in [-strength, strength] of the colour circle. uint8 in, uint8 out.
    """
    if not strength:
        return img.copy()
    b, c, s = rng.uniform(1 - strength, 1 + strength, size=3).astype(np.float32)
    h = np.float32(rng.uniform(-strength, strength))
    order = rng.permutation(4)
    x = img.astype(np.float32) / 255.0                    # (H, W, 3) in [0, 1]
    for op in order:
        if op == 0:
            x = np.clip(x * b, 0, 1)
        elif op == 1:
            x = np.clip(c * x + (1 - c) * _gray(x).mean(), 0, 1)
        elif op == 2:
            x = np.clip(s * x + (1 - s) * _gray(x)[..., None], 0, 1)
        else:
            hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)      # float input: H in degrees [0, 360)
            hsv[..., 0] = np.mod(hsv[..., 0] + h * 360.0, 360.0)
            x = np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0, 1)
    return np.round(x * 255.0).astype(np.uint8)


def cutpaste_normal(img, rng, area_ratio=NORMAL_AREA, aspect_ratio=NORMAL_ASPECT, jitter=JITTER):
    """Cut a rectangle of area U(area_ratio) * H * W and log-uniform aspect, jitter it, paste it at a
    random place of the same image. Returns (image, mask of the pasted rectangle)."""
    H, W = img.shape[:2]
    area = rng.uniform(*area_ratio) * H * W
    aspect = math.exp(rng.uniform(math.log(aspect_ratio), math.log(1 / aspect_ratio)))
    cw = min(W, max(1, int(round(math.sqrt(area * aspect)))))   # width / height = aspect
    ch = min(H, max(1, int(round(math.sqrt(area / aspect)))))
    y0, x0 = int(rng.uniform(0, H - ch)), int(rng.uniform(0, W - cw))
    patch = color_jitter(img[y0:y0 + ch, x0:x0 + cw], rng, jitter)
    y1, x1 = int(rng.uniform(0, H - ch)), int(rng.uniform(0, W - cw))
    out, mask = img.copy(), np.zeros((H, W), bool)
    out[y1:y1 + ch, x1:x1 + cw] = patch
    mask[y1:y1 + ch, x1:x1 + cw] = True
    return out, mask


def _rotate_expand(patch, degrees):
    """PIL ``Image.rotate(degrees, expand=True)`` with nearest resampling: counter-clockwise, the canvas
    grows to hold the whole patch. Returns (rotated patch, alpha mask) of the same (h', w')."""
    h, w = patch.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(math.ceil(h * sin + w * cos - 1e-6)), int(math.ceil(h * cos + w * sin - 1e-6))
    m[0, 2] += nw / 2.0 - w / 2.0                           # re-centre on the grown canvas
    m[1, 2] += nh / 2.0 - h / 2.0
    rot = cv2.warpAffine(patch, m, (nw, nh), flags=cv2.INTER_NEAREST, borderValue=0)
    alpha = cv2.warpAffine(np.ones((h, w), np.uint8), m, (nw, nh), flags=cv2.INTER_NEAREST, borderValue=0)
    return rot, alpha.astype(bool)


def cutpaste_scar(img, rng, width=SCAR_WIDTH, height=SCAR_HEIGHT, rotation=SCAR_ROTATION, jitter=JITTER):
    """Cut a thin strip (width x height pixels, scaled by S / 256), jitter it, rotate it by
    U(rotation) degrees and paste it through its alpha mask at a random place.
    Returns (image, mask of the pasted pixels)."""
    H, W = img.shape[:2]
    scale = min(H, W) / REFERENCE_SIZE                    # 1 at the paper's 256 x 256
    cw = min(W, max(1, int(round(rng.uniform(*width) * scale))))
    ch = min(H, max(1, int(round(rng.uniform(*height) * scale))))
    y0, x0 = int(rng.uniform(0, H - ch)), int(rng.uniform(0, W - cw))
    patch = color_jitter(img[y0:y0 + ch, x0:x0 + cw], rng, jitter)
    rot, alpha = _rotate_expand(patch, rng.uniform(*rotation))
    rh, rw = min(H, rot.shape[0]), min(W, rot.shape[1])
    rot, alpha = rot[:rh, :rw], alpha[:rh, :rw]
    y1, x1 = int(rng.uniform(0, H - rh)), int(rng.uniform(0, W - rw))
    out, mask = img.copy(), np.zeros((H, W), bool)
    region = out[y1:y1 + rh, x1:x1 + rw]
    region[alpha] = rot[alpha]
    mask[y1:y1 + rh, x1:x1 + rw] = alpha
    return out, mask


def cutpaste_views(img, rng, variant="3way", jitter=JITTER):
    """The training views of one image, in label order: 3way -> (original, normal, scar),
    normal -> (original, normal), scar -> (original, scar). The whole image is colour-jittered once
    first (the reference's pre-transform), so the classes differ only by the pasted region."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    base = color_jitter(img, rng, jitter)
    views = [base]
    if variant in ("normal", "3way"):
        views.append(cutpaste_normal(base, rng, jitter=jitter)[0])
    if variant in ("scar", "3way"):
        views.append(cutpaste_scar(base, rng, jitter=jitter)[0])
    return views


def step_rng(seed, step, index=None):
    """The Generator for one training step (batch composition) or one sample of it.

    Keyed by (seed, step[, index]) instead of drawn from a running stream, so step k has the same
    data whether the run started at 0 or resumed at k, and whatever the number of workers.
    """
    key = [int(seed), int(step)] + ([] if index is None else [int(index)])
    return np.random.default_rng(key)


def batch_indices(n_images, batch_size, seed, step):
    """Which training images form step ``step``'s batch: a fresh permutation per step (with
    repetition only when the batch is larger than the image set)."""
    rng = step_rng(seed, step)
    reps = -(-batch_size // n_images)                     # ceil
    return np.concatenate([rng.permutation(n_images) for _ in range(reps)])[:batch_size]
