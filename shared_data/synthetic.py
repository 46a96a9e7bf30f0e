"""Offline stand-in for MVTec AD: an MVTec-layout tree of realistic normal images and defects.

MVTec AD cannot be downloaded here or redistributed (CC BY-NC-SA), so the quick start, the
tests and the TIPC lite chain run on this. Textures are built from scikit-image's bundled
photographs (brick, grass, gravel) plus a rendered woven mesh; objects (a speckled tablet, a
turned metal hex nut) are rendered with shading, pose and lighting variation. Defects follow
MVTec's kinds; a mask is exactly where its defect was drawn (every pixel outside it equals the
defect-free image). Every image comes from its own numpy Generator seeded by
(seed, category, split, index), so output is byte-identical for a seed and changing one count
does not reshuffle the other images.

    python -m shared_data.synthetic --data_dir data/synthetic --categories brick tablet
"""
import functools
import os
import shutil
import sys
import time
import zlib

import cv2
import numpy as np

from adbase import ArgumentParser, UserError, make_dirs, make_temp_dir, run_cli
from shared_data.categories import MVTEC_CATEGORIES

TEXTURE_CATEGORIES = ["brick", "grass", "gravel", "mesh", "concrete"]
OBJECT_CATEGORIES = ["tablet", "hexnut"]
SYNTHETIC_CATEGORIES = TEXTURE_CATEGORIES + OBJECT_CATEGORIES
# Saved as single-channel PNGs, like MVTec's grid, screw and zipper.
GREYSCALE_CATEGORIES = ["mesh", "hexnut", "concrete"]
# Test folder names follow MVTec's (carpet/grid/tile/metal_nut/pill use the same words).
DEFECT_KINDS = {
    "brick": ["color", "contamination", "crack", "hole"],
    "grass": ["color", "cut", "hole", "thread"],
    "gravel": ["color", "contamination", "glue", "hole"],
    "mesh": ["bent", "broken", "glue", "metal_contamination", "thread"],
    "tablet": ["color", "contamination", "crack", "faulty_imprint", "scratch"],
    "hexnut": ["bent", "color", "cut", "flip", "scratch"],
    # fine linear defects, dark on a bright structured surface (cracked tiles, inspected panels)
    "concrete": ["crack", "scratch", "thread"],
}
# Roughly MVTec's proportions (about 7 train images per test defect image) at a size that
# generates in seconds; every count is a flag.
DEFAULT_COUNTS = {"n_train": 160, "n_test_good": 24, "n_test_defect": 48}

_SPLIT_CODES = {"train": 0, "test_good": 1, "test_defect": 2}
_MASK_THRESHOLD = 0.06   # blend weights below this are cut to 0, so the mask is where A > 0
_MIN_MEAN_DIFF = 2.0     # grey levels: a defect that rounds away is redrawn


# ----------------------------------------------------------------------------------------------
# Small numeric helpers (all float32, images are (S, S, C) in [0, 1])

def _rng(seed, category, split, index):
    # crc32, not hash(): str hashes are salted per process and would break reproducibility.
    return np.random.default_rng([seed, zlib.crc32(category.encode()), _SPLIT_CODES[split], index])


@functools.lru_cache(maxsize=4)
def _grid(S):
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    return xx, yy


def _smooth_noise(rng, S, cells):
    """Unit-variance noise with features about S/cells pixels wide (bicubic-upsampled lattice)."""
    cells = int(max(2, min(cells, S)))
    lat = rng.standard_normal((cells + 3, cells + 3)).astype(np.float32)
    big = cv2.resize(lat, (S + 3 * S // cells + 1,) * 2, interpolation=cv2.INTER_CUBIC)
    o = S // cells  # drop the border cells, where bicubic interpolation sees the edge
    out = big[o:o + S, o:o + S]
    return (out - out.mean()) / (out.std() + 1e-6)


def _soft_cut(A, thr=_MASK_THRESHOLD):
    # Rescale instead of clipping so the blend stays continuous at the mask border.
    return np.clip((A - thr) / (1.0 - thr), 0.0, 1.0).astype(np.float32)


def _blend(img, A, target):
    A3 = A[..., None]
    return (img * (1.0 - A3) + target * A3).astype(np.float32)


def _blob(rng, S, cx, cy, r, aspect=1.0, rough=0.3, edge=1.0):
    """Soft irregular blob: an ellipse whose outline is pushed in and out by smooth noise."""
    xx, yy = _grid(S)
    ang = rng.uniform(0, np.pi)
    c, s = float(np.cos(ang)), float(np.sin(ang))
    dx, dy = xx - float(cx), yy - float(cy)  # Python floats keep the maps float32
    u = dx * c + dy * s
    v = (-dx * s + dy * c) * aspect
    d = np.sqrt(u * u + v * v) / r
    n = _smooth_noise(rng, S, S / max(0.8 * r, 1.0))
    field = (1.0 - d + rough * n) * r / edge  # about a signed distance in units of `edge` px
    return np.clip(field + 0.5, 0.0, 1.0).astype(np.float32)


def _walk(rng, start, heading, length, step, turn, jag=0.0):
    """Random-walk polyline: heading drifts by N(0, turn) per step; `jag` adds sideways jitter
    in px per vertex (cracks are jagged but keep their direction, threads curl)."""
    n = max(2, int(length / step))
    h = heading + np.cumsum(rng.normal(0.0, turn, n))
    d = np.stack([np.cos(h), np.sin(h)], 1) * step
    pts = np.vstack([start, start + np.cumsum(d, 0)])
    if jag:
        side = np.stack([-np.sin(h), np.cos(h)], 1) * rng.normal(0, jag, (n, 1))
        pts[1:] += side
    return pts


def _arc(rng, center, length, bend, n=24):
    """Smooth curve of given length centred at `center` whose heading turns by `bend` rad."""
    h0 = rng.uniform(0, 2 * np.pi)
    h = h0 + bend * np.linspace(-0.5, 0.5, n)
    d = np.stack([np.cos(h), np.sin(h)], 1) * (length / n)
    pts = np.vstack([[0.0, 0.0], np.cumsum(d, 0)])
    return pts - pts.mean(0) + np.asarray(center, np.float64)


def _draw_lines(S, polylines, widths):
    """Anti-aliased polylines to a [0, 1] map; widths per polyline: scalar or one per segment."""
    canvas = np.zeros((S, S), np.uint8)
    for pts, w in zip(polylines, widths):
        q = np.round(np.asarray(pts) * 16).astype(np.int32)  # shift=4: 1/16 px positions
        ws = np.broadcast_to(np.asarray(w, np.float64), (len(q) - 1,))
        for i in range(len(q) - 1):
            cv2.line(canvas, tuple(map(int, q[i])), tuple(map(int, q[i + 1])), 255,
                     max(1, int(round(ws[i]))), cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


def _pick(rng, scene, margin=0.12):
    """A defect centre: anywhere on a texture, on solid object pixels for an object."""
    S = scene["S"]
    region = scene.get("region")
    if region is None:
        x, y = rng.uniform(margin * S, (1 - margin) * S, 2)
    else:
        idx = np.flatnonzero(region.ravel() > 0.99)
        k = idx[rng.integers(len(idx))]
        x, y = np.array([k % S, k // S]) + rng.uniform(-0.5, 0.5, 2)
    return float(x), float(y)  # Python floats: numpy float64 scalars would upcast float32 maps


def _palette(rng, grey):
    """Colour of foreign material: dark dirt, pale dust, or a saturated fibre/paint colour."""
    if grey:
        return np.array([rng.choice([rng.uniform(0.02, 0.15), rng.uniform(0.75, 0.95)])],
                        np.float32)
    cols = np.array([[0.20, 0.12, 0.06], [0.05, 0.05, 0.05], [0.85, 0.83, 0.78],
                     [0.15, 0.25, 0.65], [0.70, 0.12, 0.10], [0.80, 0.65, 0.20],
                     [0.35, 0.45, 0.20]], np.float32)
    c = cols[rng.integers(len(cols))] * rng.uniform(0.85, 1.15)
    return np.clip(c, 0, 1).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Lighting and quantisation, shared by a normal image and its defective twin

def _sample_light(rng, S, C):
    """Camera/illumination variation: gain, gamma, colour balance, a smooth gradient, noise."""
    xx, yy = _grid(S)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - S / 2) * float(np.cos(ang)) + (yy - S / 2) * float(np.sin(ang))) / S
    illum = 1.0 + rng.uniform(0.0, 0.16) * ramp + rng.uniform(0.0, 0.03) * _smooth_noise(rng, S, 3)
    balance = np.ones(1, np.float32)
    if C == 3:
        balance = (1.0 + rng.normal(0, 0.02, C)).astype(np.float32)
    sigma = rng.uniform(0.003, 0.010)
    noise = rng.standard_normal((S, S, C), dtype=np.float32) * np.float32(sigma)
    if C == 3:  # sensor noise is partly shared between channels after demosaicing
        noise = 0.6 * noise + 0.4 * noise.mean(2, keepdims=True)
    return dict(gain=rng.uniform(0.9, 1.1), gamma=rng.uniform(0.88, 1.12),
                illum=illum.astype(np.float32)[..., None], balance=balance, noise=noise)


def _finish(img, light):
    out = np.clip(img * light["illum"] * light["balance"] * light["gain"], 0, 1) ** light["gamma"]
    out = out + light["noise"]
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Photographic textures (scikit-image sample photos, 512 x 512 grey)

@functools.lru_cache(maxsize=None)
def _photo(name):
    try:  # imported lazily: only the photo categories need it
        from skimage import data
    except ImportError:
        raise UserError(f"the '{name}' category needs scikit-image: pip install scikit-image") from None
    return np.ascontiguousarray(getattr(data, name)()).astype(np.float32) / 255.0


def _crop_photo(rng, S, name, rot_deg, side_frac, flips):
    """Rotated, scaled crop of a sample photo, so each normal image shows a different patch."""
    src = _photo(name)
    H = src.shape[0]
    side = rng.uniform(*side_frac) * H
    th = np.deg2rad(rng.uniform(-rot_deg, rot_deg))
    half = side * (abs(np.cos(th)) + abs(np.sin(th))) / 2 + 1  # the rotated crop stays inside
    cx, cy = rng.uniform(half, H - half, 2)
    c = int(round(side))
    M = cv2.getRotationMatrix2D((float(cx), float(cy)), float(np.rad2deg(th)), 1.0)
    M[:, 2] += (c / 2 - cx, c / 2 - cy)
    crop = cv2.warpAffine(src, M, (c, c), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    interp = cv2.INTER_AREA if S < c else cv2.INTER_CUBIC
    g = cv2.resize(crop, (S, S), interpolation=interp)
    if flips and rng.random() < 0.5:
        g = g[:, ::-1]
    if flips and rng.random() < 0.5:
        g = g[::-1]
    return np.ascontiguousarray(g)


def _render_brick(rng, S):
    g = _crop_photo(rng, S, "brick", 3.0, (0.50, 0.68), flips=True)
    # Mortar is the bright part of the photo; bricks get a fired-clay colour, mortar a pale
    # cement colour.
    m = np.clip((g - 0.52) / 0.18, 0, 1)
    m = (m * m * (3 - 2 * m))[..., None]
    # Every brick is fired a little differently: one tint per connected brick face.
    n, lab = cv2.connectedComponents((m[..., 0] < 0.5).astype(np.uint8), connectivity=4)
    tint = rng.normal(0, 1, (n, 3)).astype(np.float32)
    tint = 1 + 0.10 * tint[:, :1] + 0.03 * tint  # mostly lightness, a little hue
    clay = np.array([0.56, 0.25, 0.16], np.float32) * rng.uniform(0.92, 1.08, 3).astype(np.float32)
    # Amplify the photo's fine grain so the faces read as rough clay, not plastic.
    detail = (g - cv2.GaussianBlur(g, (0, 0), 2.0 * S / 256))[..., None]
    brick = clay * tint[lab] * (0.55 + 1.1 * g[..., None] + 1.5 * detail)
    brick = brick * (1 + 0.04 * _smooth_noise(rng, S, 6))[..., None]
    mortar = np.array([0.78, 0.74, 0.66], np.float32) * (0.55 + 0.6 * g[..., None])
    return dict(img=np.clip(brick * (1 - m) + mortar * m, 0, 1).astype(np.float32))


def _render_grass(rng, S):
    g = _crop_photo(rng, S, "grass", 15.0, (0.50, 0.68), flips=True)
    # Shadowed blades deep green, lit blades fresh green, a few dry patches yellowish.
    t = np.clip(1.7 * g - 0.3, 0, 1.3)[..., None] ** 1.2
    deep = np.array([0.04, 0.14, 0.03], np.float32)
    light = np.array([0.42, 0.68, 0.22], np.float32) * rng.uniform(0.92, 1.08)
    dry = (0.5 + 0.5 * np.tanh(1.5 * _smooth_noise(rng, S, 4) - 1.0))[..., None]
    light = light * (1 - 0.35 * dry) + np.array([0.72, 0.66, 0.32], np.float32) * 0.35 * dry
    img = deep + (light - deep) * t
    return dict(img=np.clip(img, 0, 1).astype(np.float32))


def _render_gravel(rng, S):
    g = _crop_photo(rng, S, "gravel", 180.0, (0.42, 0.58), flips=True)
    # Each stone has a slightly different mineral tint; the tint field varies at stone scale.
    base = np.array([0.60, 0.57, 0.52], np.float32) * rng.uniform(0.95, 1.05)
    tint = np.stack([_smooth_noise(rng, S, 18) for _ in range(2)], -1) * 0.035
    col = base + np.concatenate([tint[..., :1], 0.5 * (tint[..., :1] + tint[..., 1:]),
                                 tint[..., 1:]], -1)
    return dict(img=np.clip(col * (0.25 + 1.35 * g[..., None]), 0, 1).astype(np.float32))


def _render_concrete(rng, S):
    """Bright, structured grey surface: a smoothed concrete slab whose aggregate (the gravel photo,
    contrast compressed) shows through, with fine pores and trowel marks; the background of the
    fine dark crack / scratch / hair defects."""
    g = _crop_photo(rng, S, "gravel", 180.0, (0.30, 0.42), flips=True)
    g = cv2.GaussianBlur(g, (0, 0), 0.8 * S / 256)
    base = rng.uniform(0.66, 0.76)
    img = base + 0.22 * (g - 0.5)                                  # aggregate, low contrast
    pores = np.clip(_smooth_noise(rng, S, S / 2.5) - 1.6, 0, None)  # sparse small dark pores
    img = img - 0.25 * pores
    ang = rng.uniform(0, np.pi)                                     # faint parallel trowel marks
    xx, yy = _grid(S)
    marks = np.sin((xx * np.cos(ang) + yy * np.sin(ang)) * 2 * np.pi / (S * rng.uniform(0.05, 0.08)))
    img = img + 0.015 * marks + 0.03 * _smooth_noise(rng, S, 5)
    return dict(img=np.clip(img, 0, 1).astype(np.float32)[..., None])


# ----------------------------------------------------------------------------------------------
# Woven wire mesh (greyscale, the role of MVTec's grid)

def _mesh_params(rng, S):
    k = S / 256.0
    return dict(
        p=k * rng.uniform(15.0, 16.5),            # wire pitch, px
        w=rng.uniform(0.40, 0.44),                 # wire diameter / pitch
        th=np.deg2rad(rng.uniform(-3, 3)),
        phase=rng.uniform(0, 2, 2),                # in pitches; 2 so both weave parities occur
        jit=rng.normal(0, 0.025, (2, 64)),         # each wire sits a little off the ideal grid
        warp=np.stack([_smooth_noise(rng, S, 3), _smooth_noise(rng, S, 3)]) * 0.8 * k,
        bg=rng.uniform(0.10, 0.15), metal=rng.uniform(0.62, 0.72),
        bgtex=_smooth_noise(rng, S, 24) * 0.015,
        fine=rng.standard_normal((S, S), dtype=np.float32),
    )


def _render_mesh(P, S, gaps=()):
    """Two wire families over and under each other; `gaps`: (family, wire, start, end) removed."""
    xx, yy = _grid(S)
    x = xx + P["warp"][0]
    y = yy + P["warp"][1]
    c, s, p = float(np.cos(P["th"])), float(np.sin(P["th"])), float(P["p"])
    u = (x * c + y * s) / p + P["phase"][0]
    v = (-x * s + y * c) / p + P["phase"][1]
    w = P["w"] * p
    layers = []
    for fam, (a, b) in enumerate(((u, v), (v, u))):
        k = np.floor(a + 0.5)
        ki = k.astype(np.int64)
        d = (a - k - P["jit"][fam][ki % 64]) * p           # px from this wire's centre line
        cov = np.clip(w / 2 - np.abs(d) + 0.5, 0, 1)        # 1-px anti-aliased edge
        for gf, gk, g0, g1 in gaps:
            if gf == fam:
                ragged = 0.12 * d / w                       # broken ends are torn at an angle
                cov = np.where((ki == gk) & (b > g0 + ragged) & (b < g1 - ragged), 0.0, cov)
        cyl = np.sqrt(np.clip(1 - (2 * d / w) ** 2, 0, 1))
        z = 0.5 * np.cos(np.pi * (b + k)) * (1 if fam == 0 else -1)  # over/under along the wire
        shade = P["metal"] * (0.35 + 0.65 * cyl ** 0.6) * (0.62 + 0.38 * (z + 0.5))
        shade = shade + 0.22 * cyl ** 12 * (z + 0.5) + 0.02 * P["fine"] * cyl
        layers.append((cov.astype(np.float32), shade.astype(np.float32), z))
    (cv_, sv, zv), (ch, sh, zh) = layers
    bg = P["bg"] * (1 + P["bgtex"])
    shadow = cv2.GaussianBlur(np.maximum(cv_, ch), (0, 0), 0.12 * p)
    bg = bg * (1 - 0.45 * shadow)
    v_top = zv >= zh
    top_c, top_s = np.where(v_top, cv_, ch), np.where(v_top, sv, sh)
    und_c, und_s = np.where(v_top, ch, cv_), np.where(v_top, sh, sv)
    under = und_s * und_c + bg * (1 - und_c)
    img = top_s * top_c + under * (1 - top_c)
    return np.clip(img, 0, 1).astype(np.float32)[..., None]


def _render_mesh_scene(rng, S):
    P = _mesh_params(rng, S)
    return dict(img=_render_mesh(P, S), mesh=P)


# ----------------------------------------------------------------------------------------------
# Objects: layers (background, object colour, coverage) so cuts can reveal the background

def _text_map(S, text, scale, thick, center, u, v):
    """Text drawn in the object's own frame, sampled at object coordinates (u, v) -> [0, 1]."""
    T = np.zeros((S, S), np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    org = (int(round(S / 2 + center[0] - tw / 2)), int(round(S / 2 + center[1] + th / 2)))
    cv2.putText(T, text, org, font, scale, 255, thick, cv2.LINE_AA)
    T = cv2.GaussianBlur(T, (0, 0), 0.5)
    return cv2.remap(T.astype(np.float32) / 255.0, (u + S / 2).astype(np.float32),
                     (v + S / 2).astype(np.float32), cv2.INTER_LINEAR, borderValue=0)


def _shadow(alpha, S, dx, dy, blur, strength):
    M = np.float32([[1, 0, dx], [0, 1, dy]])
    sh = cv2.warpAffine(alpha, M, (S, S))
    return 1.0 - strength * cv2.GaussianBlur(sh, (0, 0), blur)


def _tablet_params(rng, S):
    k = S / 256.0
    n_sp = int(rng.integers(90, 160))
    return dict(
        c=S / 2 + rng.normal(0, 0.012 * S, 2), th=np.deg2rad(rng.normal(0, 2.0)),
        a=0.37 * S * rng.uniform(0.985, 1.015), b=0.19 * S * rng.uniform(0.985, 1.015),
        col=np.array([0.92, 0.90, 0.85], np.float32) + rng.normal(0, 0.008, 3).astype(np.float32),
        sp_uv=rng.uniform(-1, 1, (n_sp, 2)), sp_r=k * rng.uniform(0.5, 1.6, n_sp),
        sp_a=rng.uniform(0.25, 0.9, n_sp),
        bg=np.array([0.09, 0.09, 0.10], np.float32) * rng.uniform(0.85, 1.15),
        bgtex=_smooth_noise(rng, S, 40) * 0.012 + _smooth_noise(rng, S, 5) * 0.012,
        light=np.deg2rad(rng.normal(-125, 6)),
    )


def _render_tablet(P, S):
    xx, yy = _grid(S)
    c, s = float(np.cos(P["th"])), float(np.sin(P["th"]))
    x, y = xx - float(P["c"][0]), yy - float(P["c"][1])
    u, v = x * c + y * s, -x * s + y * c
    a, b, n = P["a"], P["b"], 2.6
    r = (np.abs(u / a) ** n + np.abs(v / b) ** n) ** (1 / n)  # superellipse: a pressed caplet
    alpha = np.clip((1 - r) * b + 0.5, 0, 1).astype(np.float32)
    # Dome height (px) and its normal for Lambert + Blinn-Phong shading.
    h = 0.32 * b * np.sqrt(np.clip(1 - r ** 2, 0, 1))
    gy, gx = np.gradient(h)
    nz = 1.0 / np.sqrt(gx ** 2 + gy ** 2 + 1)
    nx, ny = -gx * nz, -gy * nz
    L = np.array([np.cos(P["light"]) * 0.55, np.sin(P["light"]) * 0.55, 0.83])
    lam = np.clip(nx * L[0] + ny * L[1] + nz * L[2], 0, 1)
    Hv = L + np.array([0, 0, 1.0])
    Hv /= np.linalg.norm(Hv)
    spec = np.clip(nx * Hv[0] + ny * Hv[1] + nz * Hv[2], 0, 1) ** 60
    # Red-brown speckles in the tablet's frame, so they turn with it.
    sp = np.zeros((S, S), np.uint8)
    uv = P["sp_uv"] * np.array([a, b]) * 0.97
    pts = np.stack([P["c"][0] + uv[:, 0] * c - uv[:, 1] * s,
                    P["c"][1] + uv[:, 0] * s + uv[:, 1] * c], 1)
    for (px, py), rad, al in zip(pts, P["sp_r"], P["sp_a"]):
        cv2.circle(sp, (int(round(px * 16)), int(round(py * 16))), max(1, int(round(rad * 16))),
                   int(255 * al), -1, cv2.LINE_AA, shift=4)
    sp = cv2.GaussianBlur(sp.astype(np.float32) / 255.0, (0, 0), 0.6 * S / 256)
    ink = _text_map(S, "S 5", 1.35 * S / 256, max(1, int(round(3 * S / 256))), (0, 0), u, v)
    bg = (P["bg"] * (1 + P["bgtex"])[..., None]) * _shadow(alpha, S, 3 * S / 256, 4 * S / 256,
                                                             5 * S / 256, 0.6)[..., None]
    return dict(u=u, v=v, alpha=alpha, lam=lam.astype(np.float32), spec=spec.astype(np.float32),
                speck=sp, ink=ink, bg=bg.astype(np.float32))


def _compose_tablet(P, R, ink):
    speck, ink = R["speck"][..., None], 0.9 * ink[..., None]
    surf = P["col"] * (1 - speck) + np.array([0.72, 0.30, 0.22], np.float32) * speck
    surf = surf * (1 - ink) + np.array([0.50, 0.12, 0.12], np.float32) * ink  # red print
    obj = surf * (0.30 + 0.78 * R["lam"][..., None]) + 0.45 * R["spec"][..., None]
    return _blend(R["bg"], R["alpha"], np.clip(obj, 0, 1))


def _render_tablet_scene(rng, S):
    P = _tablet_params(rng, S)
    R = _render_tablet(P, S)
    return dict(img=_compose_tablet(P, R, R["ink"]), region=R["alpha"], tablet=(P, R))


def _hexnut_params(rng, S):
    ring = cv2.GaussianBlur(rng.normal(0, 1, (1, 1024)).astype(np.float32), (0, 0), 1.5)
    return dict(
        c=S / 2 + rng.normal(0, 0.012 * S, 2), th=rng.uniform(0, 2 * np.pi),
        a=0.30 * S * rng.uniform(0.985, 1.015), metal=rng.uniform(0.56, 0.64),
        light=np.deg2rad(rng.normal(-130, 5)), ring=ring[0] / (ring.std() + 1e-6),
        fine=rng.standard_normal((S, S), dtype=np.float32),
        bg=rng.uniform(0.20, 0.25),
        bgtex=_smooth_noise(rng, S, 30) * 0.02 + _smooth_noise(rng, S, 4) * 0.02,
    )


def _render_hexnut(P, S, flip=False):
    """Top view of a turned hex nut: chamfered corners, concentric tool marks, stamped grade."""
    xx, yy = _grid(S)
    x, y = xx - float(P["c"][0]), yy - float(P["c"][1])
    c, s = float(np.cos(P["th"])), float(np.sin(P["th"]))
    u, v = x * c + y * s, -x * s + y * c
    if flip:  # the underside: mirror image, no chamfer ring, no stamp
        u = -u
    a = P["a"]
    # Hexagon 'radius': the largest projection onto the three face normals.
    dhex = np.max([np.abs(u * float(np.cos(t)) + v * float(np.sin(t)))
                   for t in (0, np.pi / 3, 2 * np.pi / 3)], 0)
    r = np.sqrt(x * x + y * y)
    phi = np.arctan2(y, x)
    ri = 0.47 * a
    alpha = (np.clip(a - dhex + 0.5, 0, 1) * np.clip(r - ri + 0.5, 0, 1)).astype(np.float32)
    ldiff = np.cos(phi - float(P["light"]))
    ridx = np.clip(r / a * 400, 0, 1023).astype(np.int64)
    marks = P["ring"][ridx]  # concentric tool marks from facing on a lathe
    # The underside is sand-blasted rather than faced: fewer tool marks, more grain.
    m_amp, g_amp = (0.015, 0.05) if flip else (0.035, 0.02)
    base = P["metal"] * (1 + m_amp * marks + g_amp * P["fine"])
    # Brushed-metal highlight: bands through the centre along the light direction.
    dphi = np.angle(np.exp(1j * 2 * (phi - P["light"]))) / 2
    face = base * (0.85 + 0.12 * ldiff) + (0.22 if not flip else 0.08) * np.exp(-(dphi / 0.35) ** 2)
    rc = 0.965 * a if not flip else 1.2 * a
    t_ch = np.clip(r - rc + 0.5, 0, 1)       # chamfer facets at the six corners
    chamfer = P["metal"] * (0.70 + 0.35 * ldiff)
    t_bev = np.clip((ri + 0.13 * a) - r + 0.5, 0, 1)  # countersink around the hole, lit opposite
    bevel = P["metal"] * (0.45 - 0.30 * ldiff) + 0.06 * np.sin(2 * np.pi * r / (0.035 * a))
    obj = face * (1 - t_ch) + chamfer * t_ch
    obj = obj * (1 - t_bev) + bevel * t_bev
    edge = np.clip(dhex - (a - 1.5 * S / 256), 0, 1)  # the dark outer edge line
    obj = obj * (1 - 0.35 * edge)
    if not flip:
        thick = max(1, int(round(2 * S / 256)))
        T = _text_map(S, "8.8", 0.55 * a / 64, thick, (0, -0.76 * a), u, v)  # property class
        Ts = cv2.warpAffine(T, np.float32([[1, 0, 1], [0, 1, 1]]), (S, S))
        obj = obj - 0.25 * T + 0.12 * np.clip(Ts - T, 0, 1)  # engraved: dark groove, lit lip
    bg = P["bg"] * (1 + P["bgtex"]) * _shadow(alpha, S, 3 * S / 256, 4 * S / 256, 4 * S / 256, 0.55)
    return dict(bg=bg.astype(np.float32)[..., None], alpha=alpha, u=u, v=v,
                obj=np.clip(obj, 0, 1).astype(np.float32)[..., None])


def _render_hexnut_scene(rng, S):
    P = _hexnut_params(rng, S)
    R = _render_hexnut(P, S)
    return dict(img=_blend(R["bg"], R["alpha"], R["obj"]), region=R["alpha"], hexnut=(P, R),
                shiny=True)


# ----------------------------------------------------------------------------------------------
# Defects. Each returns (defective float image, bool mask of the pixels it may change).

def _weight_to_mask(scene, A):
    if scene.get("region") is not None:
        A = A * np.clip(scene["region"], 0, 1)
    A = _soft_cut(A)
    return A, A > 0


def _d_scratch(scene, rng, sev):
    S, img = scene["S"], scene["img"]
    k = S / 256.0
    pts = _arc(rng, _pick(rng, scene), S * rng.uniform(0.10, 0.35), rng.uniform(-1.2, 1.2))
    A = _draw_lines(S, [pts], [k * rng.uniform(1.0, 2.2)])
    A = cv2.GaussianBlur(A, (0, 0), 0.5 * k)
    A, M = _weight_to_mask(scene, A)
    amt = 0.12 + 0.5 * sev
    # Metal scratches catch the light; scratches in a coated tablet are dull grey grooves.
    if scene.get("shiny") and rng.random() < 0.7:
        target = np.clip(img + amt, 0, 1)
    else:
        target = img * (1 - 0.6 * amt) + 0.25 * amt * img.mean()
    return _blend(img, A, target), M


def _crack_weight(rng, S, center, length, width):
    """A long, jagged, straight-ish dark line, widest in the middle, with a fork or two."""
    k = S / 256.0
    h = rng.uniform(0, 2 * np.pi)
    step = 2.5 * k
    arms = [_walk(rng, center, hd, length / 2 * rng.uniform(0.6, 1.0), step, 0.06, 0.5 * k)
            for hd in (h, h + np.pi)]  # grows both ways from where it started
    main = np.vstack([arms[0][::-1], arms[1][1:]])
    lines = [main]
    widths = [width * (1 - 0.75 * np.abs(np.linspace(-1, 1, len(main) - 1)))]
    for _ in range(int(rng.integers(0, 3))):
        i = int(rng.integers(len(main) // 5, len(main) - len(main) // 5 - 1))
        along = np.arctan2(*(main[i + 1] - main[i - 1])[::-1])
        turn = rng.choice([-1, 1]) * rng.uniform(0.4, 1.0)  # forks leave at an angle
        br = _walk(rng, main[i], along + turn, length * rng.uniform(0.08, 0.25), step, 0.1, 0.5 * k)
        lines.append(br)
        widths.append(max(1.0, 0.5 * width))
    A = _draw_lines(S, lines, widths)
    halo = cv2.GaussianBlur(A, (0, 0), 1.0 * k)  # crushed material along the crack edges
    return np.maximum(A, 0.35 * halo)


def _d_crack(scene, rng, sev):
    S, img = scene["S"], scene["img"]
    k = S / 256.0
    length = S * rng.uniform(0.2, 0.5) * (0.6 + 0.5 * sev)
    A = _crack_weight(rng, S, _pick(rng, scene), length, k * rng.uniform(1.0, 2.2))
    A, M = _weight_to_mask(scene, A)
    return _blend(img, A, img * (0.75 - 0.6 * sev)), M  # faint hairline .. deep crack


def _d_hole(scene, rng, sev):
    S, img = scene["S"], scene["img"]
    cx, cy = _pick(rng, scene)
    r = S * rng.uniform(0.025, 0.06) * (0.6 + 0.9 * sev)
    A = _blob(rng, S, cx, cy, r, rng.uniform(1.0, 1.6), 0.25, 1.2)
    xx, yy = _grid(S)
    # Inside: deep shadow, lighter on the far wall that faces the light.
    wall = np.clip(((xx - cx) * 0.7 + (yy - cy) * 0.7) / r, 0, 1)
    mean = img.reshape(-1, img.shape[2]).mean(0)
    grain = 1 + 0.35 * _smooth_noise(rng, S, S / 3)[..., None]  # torn fibres/dirt at the bottom
    dark = mean * (0.08 + 0.25 * wall[..., None]) * grain
    depth = 0.45 + 0.55 * sev  # a shallow pit still shows some of the surface
    dark = img * (1 - depth) + dark * depth
    rim = np.clip(_blob(rng, S, cx, cy, r * 1.25, 1.0, 0.2, 1.5) - A, 0, 1) * 0.5
    target = np.where((A >= rim)[..., None], dark, np.clip(img * 1.25, 0, 1))
    A, M = _weight_to_mask(scene, np.maximum(A, rim))
    return _blend(img, A, target), M


def _d_contamination(scene, rng, sev):
    S, img = scene["S"], scene["img"]
    cx, cy = _pick(rng, scene)
    r = S * rng.uniform(0.02, 0.06) * (0.6 + 0.9 * sev)
    A = _blob(rng, S, cx, cy, r, rng.uniform(1.0, 2.5), 0.45, 1.0)
    col = _palette(rng, img.shape[2] == 1)
    tex = 1 + 0.12 * _smooth_noise(rng, S, S / 3)[..., None]
    A, M = _weight_to_mask(scene, A * (0.3 + 0.7 * sev))  # thin film .. opaque lump
    return _blend(img, A, np.clip(col * tex, 0, 1)), M


def _d_color(scene, rng, sev):
    S, img = scene["S"], scene["img"]
    cx, cy = _pick(rng, scene)
    r = S * rng.uniform(0.035, 0.10) * (0.7 + 0.7 * sev)
    A = _blob(rng, S, cx, cy, r, rng.uniform(1.0, 1.8), 0.35, 3.0)
    amt = 0.12 + 0.45 * sev
    if img.shape[2] == 1:  # discolouration of grey material: darker tarnish or bleached spot
        gain = np.array([1 - amt if rng.random() < 0.7 else 1 + 0.7 * amt], np.float32)
    else:  # a hue/intensity shift: per-channel gains in a random direction
        d = rng.normal(0, 1, 3)
        gain = (1 + amt * d / np.linalg.norm(d)).astype(np.float32)
    A, M = _weight_to_mask(scene, A)
    return _blend(img, A, np.clip(img * gain, 0, 1)), M


def _d_thread(scene, rng, sev):
    S, img = scene["S"], scene["img"]
    k = S / 256.0
    pts = _walk(rng, _pick(rng, scene, 0.2), rng.uniform(0, 2 * np.pi), S * rng.uniform(0.2, 0.55),
                3 * k, 0.18)
    pts -= (pts.mean(0) - pts[0]) * 0.5  # centre the fibre near the picked point
    A = _draw_lines(S, [pts], [k * rng.uniform(1.0, 2.0)])
    A = cv2.GaussianBlur(A, (0, 0), 0.45 * k)
    col = _palette(rng, img.shape[2] == 1)
    A, M = _weight_to_mask(scene, A * (0.5 + 0.5 * sev))
    return _blend(img, A, col * (1 + 0.1 * _smooth_noise(rng, S, S / 4)[..., None])), M


def _d_cut(scene, rng, sev):
    """Texture: a slit through the material (carpet 'cut'). Object: a chip broken off its edge."""
    S, img = scene["S"], scene["img"]
    k = S / 256.0
    if "hexnut" in scene:
        P, R = scene["hexnut"]
        ang = rng.uniform(0, 2 * np.pi)
        rr = P["a"] * rng.uniform(0.95, 1.1)
        cx, cy = P["c"][0] + rr * np.cos(ang), P["c"][1] + rr * np.sin(ang)
        B = _blob(rng, S, cx, cy, S * rng.uniform(0.03, 0.07) * (0.6 + 0.6 * sev), 1.3, 0.35, 0.8)
        alpha2 = R["alpha"] * (1 - B)
        # The fresh fracture surface is rough and bright along the new edge.
        edge = np.clip(cv2.GaussianBlur(B, (0, 0), 1.0 * k) - B, 0, 1)
        obj = np.clip(R["obj"] + 0.3 * edge[..., None], 0, 1)
        new = _blend(R["bg"], alpha2, obj)
        M = (np.abs(new - img).max(2) > 1.0 / 255) & (B > 0)
        return new, M
    pts = _arc(rng, _pick(rng, scene), S * rng.uniform(0.08, 0.25), rng.uniform(-0.5, 0.5))
    A = _draw_lines(S, [pts], [k * rng.uniform(2.0, 5.0) * (0.6 + 0.6 * sev)])
    A = cv2.GaussianBlur(A, (0, 0), 0.7 * k)
    A, M = _weight_to_mask(scene, A)
    return _blend(img, A, img * (0.5 - 0.4 * sev)), M


def _d_glue(scene, rng, sev):
    S, img = scene["S"], scene["img"]
    cx, cy = _pick(rng, scene)
    r = S * rng.uniform(0.045, 0.11) * (0.7 + 0.6 * sev)
    A = _blob(rng, S, cx, cy, r, rng.uniform(1.0, 2.0), 0.35, 2.5)
    grey = img.shape[2] == 1
    film = np.array([0.55] if grey else [0.72, 0.66, 0.45], np.float32)
    # Dried glue fills the texture: detail is smoothed and veiled by a glossy film.
    smooth = cv2.GaussianBlur(img, (0, 0), 2.5 * S / 256).reshape(img.shape)
    lumps = 0.06 * _smooth_noise(rng, S, S / r)[..., None]
    target = np.clip(0.5 * smooth + 0.5 * film + lumps, 0, 1)
    A, M = _weight_to_mask(scene, A * (0.4 + 0.55 * sev))
    return _blend(img, A, target), M


def _d_metal_contamination(scene, rng, sev):
    S, img = scene["S"], scene["img"]
    cx, cy = _pick(rng, scene)
    r = S * rng.uniform(0.015, 0.04) * (0.7 + 0.6 * sev)
    A = _blob(rng, S, cx, cy, r, rng.uniform(1.0, 2.5), 0.5, 0.8)
    xx, yy = _grid(S)
    ang = rng.uniform(0, 2 * np.pi)
    ca, sa = float(np.cos(ang)), float(np.sin(ang))
    grad = ((xx - cx) * ca + (yy - cy) * sa) / r  # a flake reflects light from one side
    target = np.clip(0.6 + 0.25 * grad + 0.05 * _smooth_noise(rng, S, S / 2), 0.2, 1)[..., None]
    A, M = _weight_to_mask(scene, A * (0.6 + 0.4 * sev))
    return _blend(img, A, target.astype(np.float32)), M


def _d_bent(scene, rng, sev):
    """A local dent: pixels are pushed sideways by a Gaussian displacement field."""
    S, img = scene["S"], scene["img"]
    if "hexnut" in scene:
        P, R = scene["hexnut"]
        ang = rng.uniform(0, 2 * np.pi)
        cx, cy = float(P["c"][0] + P["a"] * np.cos(ang)), float(P["c"][1] + P["a"] * np.sin(ang))
        push = ang + np.pi + rng.normal(0, 0.3)  # inward, like a blow on the edge
    else:
        cx, cy = _pick(rng, scene)
        push = rng.uniform(0, 2 * np.pi)
    R_ = S * rng.uniform(0.05, 0.10)
    amp = R_ * (0.15 + 0.45 * sev)
    xx, yy = _grid(S)
    w = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (R_ / 2) ** 2)).astype(np.float32)
    dx, dy = float(amp * np.cos(push)) * w, float(amp * np.sin(push)) * w
    new = cv2.remap(img, (xx - dx).astype(np.float32), (yy - dy).astype(np.float32),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    new = new.reshape(img.shape)
    moved = amp * w > 0.5  # px
    M = moved & (np.abs(new - img).max(2) > 1.0 / 255)
    # Close the gaps between changed edges so the mask is the dented area, like MVTec's.
    M = cv2.morphologyEx(M.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)) > 0
    return new, M & moved


def _d_broken(scene, rng, sev):
    S, P = scene["S"], scene["mesh"]
    # A wire snapped between two crossings; pick one that crosses the middle of the image.
    u0 = (S / 2 * np.cos(P["th"]) + S / 2 * np.sin(P["th"])) / P["p"] + P["phase"][0]
    v0 = (-S / 2 * np.sin(P["th"]) + S / 2 * np.cos(P["th"])) / P["p"] + P["phase"][1]
    fam = int(rng.integers(2))
    along, across = (v0, u0) if fam == 0 else (u0, v0)
    span = S / P["p"] * 0.35
    wire = int(np.floor(across + 0.5 + rng.uniform(-span, span)))
    start = along + rng.uniform(-span, span)
    gap = (fam, wire, start, start + rng.uniform(0.3, 0.6) + 1.2 * sev)
    new = _render_mesh(P, S, gaps=[gap])
    M = np.abs(new - scene["img"]).max(2) > 1.0 / 255
    return new, M


def _d_faulty_imprint(scene, rng, sev):
    S = scene["S"]
    P, R = scene["tablet"]
    ink = R["ink"]
    mode = rng.integers(3)
    idx = np.flatnonzero(ink.ravel() >= 0.5 * ink.max())  # relative: tiny images blur the print
    kk = idx[rng.integers(len(idx))]
    cx, cy = float(kk % S), float(kk // S)
    if mode == 0:  # part of the print missing
        B = _blob(rng, S, cx, cy, S * rng.uniform(0.02, 0.05) * (0.6 + 0.7 * sev), 1.0, 0.3, 1.0)
        ink2 = ink * (1 - B)
    elif mode == 1:  # smeared print
        B = _blob(rng, S, cx, cy, S * rng.uniform(0.04, 0.07), 1.0, 0.3, 3.0)
        sm = cv2.GaussianBlur(ink, (0, 0), 1.5 + 2 * sev)
        shift = np.float32([[1, 0, rng.normal(0, 3)], [0, 1, rng.normal(0, 3)]])
        sm = cv2.warpAffine(sm, shift, (S, S))
        ink2 = np.maximum(ink, (0.4 + 0.5 * sev) * sm * B)
    else:  # a stray stroke of ink
        pts = _arc(rng, (cx, cy), S * rng.uniform(0.04, 0.12), rng.uniform(-1, 1))
        ink2 = np.maximum(ink, (0.5 + 0.5 * sev) * _draw_lines(S, [pts], [S / 256 * 2.5]))
    ink2 = ink2 * (R["alpha"] > 0.99)
    new = _compose_tablet(P, R, ink2)
    M = np.abs(new - scene["img"]).max(2) > 1.0 / 255
    return new, M


def _d_flip(scene, rng, sev):
    S = scene["S"]
    P, R = scene["hexnut"]
    R2 = _render_hexnut(P, S, flip=True)
    new = _blend(R2["bg"], R2["alpha"], R2["obj"])
    return new, np.maximum(R["alpha"], R2["alpha"]) > 0.5


_DEFECTS = {
    "scratch": _d_scratch, "crack": _d_crack, "hole": _d_hole, "contamination": _d_contamination,
    "color": _d_color, "thread": _d_thread, "cut": _d_cut, "glue": _d_glue,
    "metal_contamination": _d_metal_contamination, "bent": _d_bent, "broken": _d_broken,
    "faulty_imprint": _d_faulty_imprint, "flip": _d_flip,
}
_RENDER = {
    "brick": _render_brick, "grass": _render_grass, "gravel": _render_gravel,
    "mesh": _render_mesh_scene, "tablet": _render_tablet_scene, "hexnut": _render_hexnut_scene,
    "concrete": _render_concrete,
}


# ----------------------------------------------------------------------------------------------
# Public sample functions

def _to_output(img_u8, category):
    return img_u8[..., 0] if category in GREYSCALE_CATEGORIES else img_u8


def render_normal(category, seed, split, index, image_size=256):
    """One defect-free image (H x W uint8, or H x W x 3 RGB) for split 'train' or 'test_good'."""
    rng = _rng(seed, category, split, index)
    scene = _RENDER[category](rng, image_size)
    light = _sample_light(rng, image_size, scene["img"].shape[2])
    return _to_output(_finish(scene["img"], light), category)


def place_defect(scene, rng, kind, normal, finish, what="the image"):
    """Draw one visible defect of ``kind`` on ``scene`` -> (uint8 image, bool mask).

    ``scene`` holds ``S`` and the float image ``img`` (S x S x C in [0, 1]), optionally ``region`` (where
    a defect may land) and ``shiny``; ``normal`` is the defect-free uint8 image and ``finish`` turns a
    float image into uint8. Outside the mask the result equals ``normal``. A defect that lands off the
    region or rounds away is redrawn.
    """
    for _ in range(30):
        sev = rng.uniform(0.15, 1.0)  # barely visible .. obvious
        new, M = _DEFECTS[kind](scene, rng, sev)
        out = np.where(M[..., None], finish(new), normal)
        if M.sum() >= 4:
            diff = np.abs(out.astype(np.int16) - normal.astype(np.int16)).max(2)[M].mean()
            if diff >= _MIN_MEAN_DIFF:
                return out, M
    raise RuntimeError(f"could not place a visible {kind} defect on {what}")


def render_defect(category, seed, index, image_size=256):
    """Defective test image number `index` -> dict(image, normal, mask, kind).

    `normal` is the same scene without the defect (same pose, lighting and noise); outside
    `mask` the two are identical, inside it they differ. Kinds take turns by index.
    """
    kinds = DEFECT_KINDS[category]
    kind = kinds[index % len(kinds)]
    rng = _rng(seed, category, "test_defect", index)
    S = image_size
    scene = _RENDER[category](rng, S)
    scene["S"] = S
    light = _sample_light(rng, S, scene["img"].shape[2])
    normal = _finish(scene["img"], light)
    out, M = place_defect(scene, rng, kind, normal, lambda a: _finish(a, light), f"{category} #{index}")
    return dict(image=_to_output(out, category), normal=_to_output(normal, category),
                mask=(M.astype(np.uint8) * 255), kind=kind)


# ----------------------------------------------------------------------------------------------
# Writing the tree

def _write_png(path, img):
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    # Fixed, fast compression level (3 or more doubles the write time for 3% smaller files).
    # cv2 writes no timestamps, so equal arrays give equal bytes.
    # Encoded in memory and written by Python: any path works (cv2.imwrite crashes on a name that is not
    # UTF-8); the bytes are those imwrite would write.
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise UserError(f"could not encode {path}")
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def _readme(category, seed, image_size, n_train, n_test_good, per_kind):
    kinds = ", ".join(f"{k} {n}" for k, n in per_kind.items() if n)
    kind_type = "texture" if category in TEXTURE_CATEGORIES else "object"
    colour = "greyscale" if category in GREYSCALE_CATEGORIES else "RGB"
    src = {"brick": "skimage.data.brick()", "grass": "skimage.data.grass()",
           "gravel": "skimage.data.gravel()", "concrete": "skimage.data.gravel()"}.get(category, "procedural rendering")
    return (
        f"SYNTHETIC data, not MVTec AD. Category '{category}' ({kind_type}, {colour} PNG, "
        f"{image_size}x{image_size}).\n"
        f"Generated by shared_data.synthetic with seed={seed}: train/good {n_train}, "
        f"test/good {n_test_good}, defective: {kinds}.\n"
        f"Normal images: {src} with random pose, scale and lighting. Defects are drawn on the\n"
        f"image; ground_truth masks (0/255) mark exactly where: outside a mask every pixel\n"
        f"equals the defect-free image.\n"
        f"Regenerate: python -m shared_data.synthetic --data_dir <root> --categories {category} "
        f"--seed {seed} --image_size {image_size} --n_train {n_train} "
        f"--n_test_good {n_test_good} --n_test_defect {sum(per_kind.values())}\n")


def _write_category(dst, category, seed, S, n_train, n_test_good, n_test_defect):
    kinds = DEFECT_KINDS[category]
    per_kind = {k: len(range(i, n_test_defect, len(kinds))) for i, k in enumerate(kinds)}
    for sub in ["train/good", "test/good"] + [f"test/{k}" for k, n in per_kind.items() if n] + \
               [f"ground_truth/{k}" for k, n in per_kind.items() if n]:
        os.makedirs(os.path.join(dst, sub))
    for i in range(n_train):
        _write_png(os.path.join(dst, "train", "good", f"{i:03d}.png"),
                   render_normal(category, seed, "train", i, S))
    for i in range(n_test_good):
        _write_png(os.path.join(dst, "test", "good", f"{i:03d}.png"),
                   render_normal(category, seed, "test_good", i, S))
    for i in range(n_test_defect):
        d = render_defect(category, seed, i, S)
        j = i // len(kinds)  # number within its kind, like MVTec's per-folder 000, 001, ...
        _write_png(os.path.join(dst, "test", d["kind"], f"{j:03d}.png"), d["image"])
        _write_png(os.path.join(dst, "ground_truth", d["kind"], f"{j:03d}_mask.png"), d["mask"])
    with open(os.path.join(dst, "readme.txt"), "w", encoding="utf-8") as f:
        f.write(_readme(category, seed, S, n_train, n_test_good, per_kind))


def _check_args(categories, seed, image_size, counts):
    if isinstance(categories, str):
        categories = [categories]
    cats = []
    for c in categories:
        cats += [x for x in str(c).split(",") if x]  # accept 'a b' and 'a,b'
    if not cats or cats == ["all"]:
        cats = list(SYNTHETIC_CATEGORIES)
    bad = [c for c in cats if c not in SYNTHETIC_CATEGORIES]
    if bad:
        hint = ""
        if any(c in MVTEC_CATEGORIES for c in bad):
            hint = " (MVTec AD's own categories come from: python -m shared_data.download)"
        raise UserError(f"unknown synthetic category {', '.join(map(repr, bad))}; "
                        f"choose from {', '.join(SYNTHETIC_CATEGORIES)}{hint}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {seed!r}")
    if not isinstance(image_size, (int, np.integer)) or not 32 <= image_size <= 4096:
        raise UserError(f"--image_size must be an integer from 32 to 4096, got {image_size!r}")
    for name, n in counts.items():
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise UserError(f"--{name} must be a positive integer, got {n!r}")
    return list(dict.fromkeys(cats))


def generate(data_dir, categories=None, seed=0, image_size=256, n_train=None, n_test_good=None,
             n_test_defect=None, force=False):
    """Write `<data_dir>/<category>/` for each category and return those directories.

    An existing category directory is kept (and reported) unless `force`, which replaces it.
    Each category is written to a temporary directory and renamed into place, so an interrupted
    run never leaves a half-written category behind.
    """
    given = {"n_train": n_train, "n_test_good": n_test_good, "n_test_defect": n_test_defect}
    counts = {k: DEFAULT_COUNTS[k] if v is None else v for k, v in given.items()}
    cats = _check_args(categories or [], seed, image_size, counts)
    root = os.path.abspath(os.fspath(data_dir))
    try:
        make_dirs(root)
    except OSError as e:
        raise UserError(f"cannot create --data_dir {root}: {e.strerror}") from None
    out = []
    for cat in cats:
        final = os.path.join(root, cat)
        out.append(final)
        if os.path.exists(final) and not force:
            print(f"{final} exists, skipped (use --force to regenerate)")
            continue
        t0 = time.time()
        tmp = make_temp_dir(cat, root)
        try:
            _write_category(tmp, cat, int(seed), int(image_size), **counts)
            if os.path.exists(final):
                old = make_temp_dir(f"{cat}-old", root)
                os.rename(final, os.path.join(old, cat))  # move aside, then swap in
                os.rename(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        n = sum(counts.values())
        print(f"wrote {final}: {n} images ({counts['n_train']} train, {counts['n_test_good']} "
              f"test good, {counts['n_test_defect']} defective) in {time.time() - t0:.1f}s")
    return out


def main(argv=None):
    ap = ArgumentParser(
        prog="python -m shared_data.synthetic",
        description="Write a synthetic dataset in MVTec AD layout (offline stand-in for MVTec AD).")
    ap.add_argument("--data_dir", required=True,
                    help="root folder; categories go in <data_dir>/<category>")
    ap.add_argument("--categories", nargs="+", default=["all"],
                    help="names (space or comma separated) or 'all': "
                         + ", ".join(SYNTHETIC_CATEGORIES))
    ap.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    ap.add_argument("--image_size", type=int, default=256, help="square side in px (default 256)")
    ap.add_argument("--n_train", type=int, default=DEFAULT_COUNTS["n_train"],
                    help="train/good images per category")
    ap.add_argument("--n_test_good", type=int, default=DEFAULT_COUNTS["n_test_good"],
                    help="test/good images per category")
    ap.add_argument("--n_test_defect", type=int, default=DEFAULT_COUNTS["n_test_defect"],
                    help="defective test images per category, shared out over its kinds in turn")
    ap.add_argument("--force", action="store_true", help="replace existing category folders")
    a = ap.parse_args(argv)
    generate(a.data_dir, a.categories, a.seed, a.image_size, a.n_train, a.n_test_good,
             a.n_test_defect, a.force)
    return 0


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
