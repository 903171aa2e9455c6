"""Procedural radiograph-like images: the project's embedded default dataset.

Real fracture datasets need a download, a licence click-through and gigabytes of disk, which
makes them useless for smoke tests, CI and first runs. This module draws small greyscale
"X-rays" of long bones instead, so that ``fracture-train`` works out of the box and every
part of the pipeline (splits, caching, augmentation, models, sweeps) can be exercised on data
that behaves roughly like the real thing.

The images are physically motivated rather than realistic: the brightness is
``1 - exp(-attenuation)`` of a projected soft-tissue limb plus one or two hollow bones (bright
cortical walls around a darker medullary cavity, flared epiphyses), followed by exposure
(gain, gamma), blur and noise. The fractured class adds a crack, a gap or a displaced /
angulated distal fragment, with a strength that ranges from obvious to subtle.

The task is kept deliberately *not* trivial: both classes contain structures that look a bit
like fractures (nutrient canals crossing one cortex, growth plates, an overlapping second bone,
skin-fold streaks), so a small CNN trained from scratch needs a few epochs to separate them
and does not reach a perfect score at once. That makes the data set useful for checking that
training curves, early stopping and model comparison actually do something.

Rendering is deterministic given the generator passed in; :mod:`.store` derives one per
image and writes the dataset folder.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from fracture_lit.data.synthetic.bones import Bone, fracture_site, random_bone, second_bone

__all__ = ["GENERATOR_VERSION", "render_radiograph"]

#: Bump whenever the rendered pixels change, so stale folders are detected instead of reused.
GENERATOR_VERSION = "1.1"

_SS = 2  # supersampling factor: draw at 2x, then INTER_AREA down for anti-aliasing.

# Speed: a bone is drawn in its own axis-aligned frame and pasted onto the canvas with one
# cv2.warpAffine. Fracture pieces are separate patches with their own (displaced)
# transform. Soft tissue is smooth, so it is computed on a coarse grid and upsampled;
# exposure and noise are applied after downscaling. This keeps a 128 px image at a few
# milliseconds without giving up the 2x supersampling of the thin structures.


def _paste(canvas: np.ndarray, patch: np.ndarray, m: np.ndarray) -> None:
    """Add ``patch`` onto ``canvas`` through the 3x3 affine ``m`` (patch px -> canvas px)."""
    n = canvas.shape[0]
    warped = cv2.warpAffine(
        patch,
        m[:2].astype(np.float64),
        (n, n),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    canvas += warped


@lru_cache(maxsize=8)
def _grid(n: int, step: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of an n x n grid whose pixel k sits at canvas position (k + .5) * step - .5."""
    ax = (np.arange(n, dtype=np.float32) + 0.5) * step - 0.5
    yy, xx = np.meshgrid(ax, ax, indexing="ij")
    yy.setflags(write=False)
    xx.setflags(write=False)
    return xx, yy


def _ramp(x: np.ndarray) -> np.ndarray:
    """Anti-aliased step: 0 for x < -0.5 px, 1 for x > 0.5 px."""
    return np.clip(x + 0.5, 0.0, 1.0)


def _line(d: np.ndarray, width: float) -> np.ndarray:
    """Gaussian line profile over the signed distance ``d`` (1 on the line)."""
    return np.exp(-((d * (1.0 / width)) ** 2))


def _cols(u: np.ndarray, lo: float, hi: float) -> slice:
    """Column slice of a patch whose u-samples fall in [lo, hi] (for local edits)."""
    a = int(np.searchsorted(u, lo, side="left"))
    b = int(np.searchsorted(u, hi, side="right"))
    return slice(a, max(a, b))


def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int], amp: float
) -> np.ndarray:
    """Low-frequency random field: a tiny random grid upsampled bicubically to ``shape``."""
    small = rng.normal(0.0, amp, size=cells).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _nuisances(
    rng: np.random.Generator, bone: Bone, u: np.ndarray, v: np.ndarray, patch: np.ndarray
) -> None:
    """Darken fracture look-alikes into ``patch`` in place; drawn for both classes alike."""
    r, half = bone.radius, 0.5 * bone.length
    if rng.random() < 0.55:  # nutrient canal: short oblique dark line through one cortex
        sign = rng.choice([-1.0, 1.0])
        uc = rng.uniform(-0.35, 0.35) * bone.length
        ang = rng.uniform(0.25, 0.8) * rng.choice([-1.0, 1.0])  # oblique to the axis
        depth, width = rng.uniform(0.2, 0.6), rng.uniform(1.0, 2.0)
        sl = _cols(u, uc - 3 * r, uc + 3 * r)
        across = sign * v - r * bone.k_shaft  # 0 at the inner surface of that cortex
        d = ((u[sl] - uc) * math.sin(ang))[None, :] - (across * math.cos(ang))[:, None]
        band = _ramp((across + 0.2 * r * bone.k_shaft) / 2.0)[:, None]
        patch[:, sl] *= 1.0 - depth * _line(d, width) * band
    if rng.random() < 0.6:  # growth plate: wavy dark line across the epiphysis
        pos = half - bone.end_len * rng.uniform(0.4, 0.8)
        amp, freq = rng.uniform(0.5, 3.0), rng.uniform(0.1, 0.3)
        depth, width = rng.uniform(0.3, 0.7), rng.uniform(1.2, 2.5)
        wave = (amp * np.sin(v * freq))[:, None]
        for end in (-1.0, 1.0):
            sl = _cols(u, end * pos - amp - 4 * width, end * pos + amp + 4 * width)
            d = (end * u[sl] - pos)[None, :] + wave
            patch[:, sl] *= 1.0 - depth * _line(d, width)
    if rng.random() < 0.25:  # faint transverse density line (growth-arrest line)
        uc = rng.uniform(-0.3, 0.3) * bone.length
        depth, width = rng.uniform(0.08, 0.25), rng.uniform(1.0, 2.5)
        patch *= 1.0 - depth * _line(u - uc, width)[None, :]


def _fracture(
    rng: np.random.Generator,
    bone: Bone,
    u: np.ndarray,
    v: np.ndarray,
    patch: np.ndarray,
    u0: float,
    sev: float,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Break ``patch`` at ``u0`` with a crack, a gap or a displaced distal fragment.

    ``sev`` in [0, 1] scales how obvious it is. Returns the pieces as
    (patch, 3x3 patch->canvas affine) pairs to be pasted.
    """
    r = bone.radius
    base_m = bone.patch_matrix(u, v)
    beta = rng.uniform(-0.6, 0.6)  # 0 = transverse, larger = oblique
    cb, sb = math.cos(beta), math.sin(beta)
    # jagged fracture surface: piecewise-linear zig-zag, rougher when severe
    knots = np.arange(float(v[0]), float(v[-1]) + r * 0.3, r * rng.uniform(0.15, 0.35))
    amp = r * (0.03 + 0.2 * sev)
    zig = np.interp(v, knots, rng.uniform(-amp, amp, size=len(knots))).astype(np.float32)
    jag = -v * sb + zig

    # comminution: extra fracture lines near the main one, more likely when severe
    for _ in range(rng.binomial(2, 0.6 * sev)):
        uc = u0 + r * rng.uniform(-1.2, 1.2)
        b2 = rng.uniform(-0.9, 0.9)
        sl2 = _cols(u, uc - 2.5 * r, uc + 2.5 * r)
        d = ((u[sl2] - uc) * math.cos(b2))[None, :] - (v * math.sin(b2))[:, None]
        patch[:, sl2] *= 1.0 - rng.uniform(0.5, 0.9) * _line(d, r * rng.uniform(0.08, 0.15))

    kind = rng.choice(3, p=[0.3, 0.3, 0.4])
    reach = (float(np.abs(jag).max()) + 1.5 * r + 20.0) / cb
    sl = _cols(u, u0 - reach, u0 + reach)

    def side(cols: slice) -> np.ndarray:
        """Signed distance to the jagged fracture line: < 0 proximal, > 0 distal."""
        return ((u[cols] - u0) * cb)[None, :] + jag[:, None]

    if kind == 0:  # crack, complete or through one cortex only
        depth = 0.7 + 0.3 * sev
        width = r * (rng.uniform(0.1, 0.15) + 0.3 * sev)
        crack = _line(side(sl), width)
        if rng.random() < 0.25 * (1.0 - sev):
            sign = rng.choice([-1.0, 1.0])
            into = r * rng.uniform(0.6, 1.4)  # from one edge inward
            crack = crack * _ramp((sign * v - (r - into)) / 3.0)[:, None]
        patch[:, sl] *= 1.0 - depth * crack
        return [(patch, base_m)]
    gap = r * (rng.uniform(0.25, 0.35) + 1.2 * sev)
    if kind == 1:  # clean gap separating two pieces
        s = side(sl)
        patch[:, sl] *= _ramp(-s - gap / 2) + _ramp(s - gap / 2)
        return [(patch, base_m)]
    # displaced / angulated distal fragment; a negative gap overlaps (impaction)
    gap = gap * rng.uniform(-0.2, 0.6)
    shift_v = r * (0.4 + 1.4 * sev) * rng.choice([-1.0, 1.0])
    shift_u = r * rng.uniform(-0.25, 0.25)
    rot = math.radians(5.0 + 25.0 * sev * rng.uniform(0.5, 1.0)) * rng.choice([-1.0, 1.0])
    s = side(sl)
    prox = patch[:, : sl.stop].copy()
    prox[:, sl] *= _ramp(-s - gap / 2)
    dist = patch[:, sl.start :].copy()
    dist[:, : sl.stop - sl.start] *= _ramp(s - gap / 2)
    # bone frame -> displaced bone frame: rotate about (u0, 0), then shift
    cr, sr = math.cos(rot), math.sin(rot)
    move = np.array(
        [
            [cr, -sr, u0 - u0 * cr + shift_u],
            [sr, cr, -u0 * sr + shift_v],
            [0.0, 0.0, 1.0],
        ]
    )
    c, s_ = math.cos(bone.angle), math.sin(bone.angle)
    to_img = np.array([[c, -s_, bone.cx], [s_, c, bone.cy], [0.0, 0.0, 1.0]])
    from_patch = np.array([[1.0, 0.0, float(u[sl.start])], [0.0, 1.0, float(v[0])], [0, 0, 1.0]])
    return [(prox, base_m), (dist, to_img @ move @ from_patch)]


def render_radiograph(rng: np.random.Generator, fractured: bool, size: int = 128) -> np.ndarray:
    """Draw one radiograph-like image of a limb with one or two long bones.

    ``fractured`` adds a crack, gap or displaced fragment to the main bone. The fracture
    is drawn from its own stream, split off ``rng`` first, so the same ``rng`` state renders
    the same limb, pose, nuisances, exposure and noise for both classes: only the fracture
    (and the soft-tissue swelling around it) differs. Returns a ``uint8`` array of shape
    ``(size, size)``.
    """
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    n = size * _SS
    frac_rng = np.random.default_rng(rng.integers(0, 2**63))

    main = random_bone(rng, n)
    u0 = sev = 0.0  # fracture site and severity, drawn below when fractured
    # Soft tissue is smooth: compute it on a 4x coarser grid and upsample.
    coarse = n // 4
    gx, gy = _grid(coarse, n / coarse)
    c, s = math.cos(main.angle), math.sin(main.angle)
    tu = (gx - main.cx) * c + (gy - main.cy) * s
    tv = (gy - main.cy) * c - (gx - main.cx) * s
    width = main.radius * rng.uniform(2.2, 3.8)
    w_local = width * (
        1.0 + 0.18 * np.sin(tu * rng.uniform(0.005, 0.02) + rng.uniform(0, 2 * math.pi))
    )
    tissue = np.sqrt(np.clip(1.0 - (tv / w_local) ** 2, 0.0, 1.0))
    if rng.random() < 0.45:  # a second soft-tissue mass (muscle belly, other limb)
        bx, by = n * rng.uniform(0.1, 0.9, size=2)
        ax_a, ax_b = n * rng.uniform(0.15, 0.4), n * rng.uniform(0.1, 0.25)
        ang = rng.uniform(0, math.pi)
        ca, sa = math.cos(ang), math.sin(ang)
        ex = ((gx - bx) * ca + (gy - by) * sa) / ax_a
        ey = ((gy - by) * ca - (gx - bx) * sa) / ax_b
        tissue = tissue + rng.uniform(0.3, 0.8) * np.sqrt(np.clip(1.0 - ex * ex - ey * ey, 0, 1))
    if fractured:  # soft-tissue swelling (haematoma) around the fracture site
        u0 = fracture_site(frac_rng, main, n)
        sev = frac_rng.random() ** 0.3  # 0 subtle .. 1 obvious; skewed towards clear
        swell = frac_rng.uniform(0.05, 0.15) + 0.6 * sev
        reach = main.radius * frac_rng.uniform(1.5, 3.5)
        bulge = np.sqrt(np.clip(1.0 - (tv / (w_local * 1.15)) ** 2, 0.0, 1.0))
        tissue = tissue + swell * np.exp(-(((tu - u0) / reach) ** 2)) * bulge
    tissue = tissue * (1.0 + _smooth_field(rng, tissue.shape, (5, 5), 0.12))
    mu_tissue = rng.uniform(0.3, 0.6)
    atten = cv2.resize(
        (mu_tissue * tissue).astype(np.float32), (n, n), interpolation=cv2.INTER_LINEAR
    )

    # Bones: main (possibly broken) and an optional neighbour.
    bones = np.zeros((n, n), np.float32)
    second = second_bone(rng, main, n) if rng.random() < 0.4 else None
    mu_bone = rng.uniform(0.5, 1.0)
    axes = main.patch_axes(n, margin=0.15 * n)
    assert axes is not None  # the main bone is centred on the canvas
    u, v = axes
    patch = main.thickness(u, v)
    patch *= 1.0 + _smooth_field(rng, patch.shape, (4, 16), 0.06)  # density texture
    _nuisances(rng, main, u, v, patch)
    if fractured:
        pieces = _fracture(frac_rng, main, u, v, patch, u0, sev)
    else:
        pieces = [(patch, main.patch_matrix(u, v))]
    if second is not None and (axes2 := second.patch_axes(n)) is not None:
        u2, v2 = axes2
        patch2 = second.thickness(u2, v2)
        patch2 *= 1.0 + _smooth_field(rng, patch2.shape, (4, 16), 0.06)
        _nuisances(rng, second, u2, v2, patch2)
        pieces.append((patch2, second.patch_matrix(u2, v2)))
    for piece, m in pieces:
        _paste(bones, piece, m)
    atten += mu_bone * bones

    # Skin folds / positioning-aid edges: faint straight dark streaks across the image.
    n_streaks = rng.poisson(0.6)
    if n_streaks:
        streaks = np.zeros((n, n), np.float32)
        for _ in range(n_streaks):
            ang = rng.uniform(0, math.pi)
            px, py = n * rng.uniform(0.2, 0.8, size=2)
            dx, dy = 2 * n * math.cos(ang), 2 * n * math.sin(ang)
            p1 = (round((px - dx) * 16), round((py - dy) * 16))
            p2 = (round((px + dx) * 16), round((py + dy) * 16))
            thick = int(rng.integers(1, 5))
            cv2.line(streaks, p1, p2, float(rng.uniform(0.04, 0.15)), thick, cv2.LINE_8, 4)
        atten -= cv2.GaussianBlur(streaks, (0, 0), 1.0)

    # Optics: blur, then area-downsample (the anti-aliasing step of the supersampling).
    atten = cv2.GaussianBlur(atten, (0, 0), rng.uniform(0.4, 1.8))
    atten = cv2.resize(atten, (size, size), interpolation=cv2.INTER_AREA)

    # Exposure: film response, contrast, fog, beam non-uniformity, gain and gamma.
    # Normalise by the brightness of a cortex under full soft tissue (not by the image max,
    # which a fracture would change): intact and fractured renders share their exposure.
    k = rng.uniform(0.8, 1.4)
    img = 1.0 - np.exp(-np.maximum(atten, 0.0) * k)
    img *= rng.uniform(0.75, 0.95) / (1.0 - math.exp(-k * (mu_tissue + 0.8 * mu_bone)))
    fog = rng.uniform(0.02, 0.12)
    img = fog + (1.0 - fog) * img
    xx, yy = _grid(size)
    heel_dir = rng.uniform(0, 2 * math.pi)
    heel = 1.0 + rng.uniform(-0.12, 0.12) * (
        (xx / size - 0.5) * math.cos(heel_dir) + (yy / size - 0.5) * math.sin(heel_dir)
    )
    img = np.clip(img * heel * rng.uniform(0.95, 1.05), 0.0, 1.0) ** rng.uniform(0.7, 1.4)

    # Noise: quantum (signal dependent), electronic, and correlated film grain.
    noise = rng.standard_normal((size, size), dtype=np.float32)
    grain = cv2.GaussianBlur(rng.standard_normal((size, size), dtype=np.float32), (0, 0), 0.8)
    img = (
        img
        + noise * (rng.uniform(0.005, 0.025) + rng.uniform(0.0, 0.02) * np.sqrt(img))
        + grain * rng.uniform(0.0, 0.04)
    )
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
