"""The geometry of a synthetic limb: long bones in canvas pixels, and where one breaks.

A bone is drawn in its own axis-aligned frame (columns = along the axis, rows = across),
where its radius profile is a 1-D function of the column; :mod:`.render` pastes it onto the
canvas with one affine warp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Bone", "fracture_site", "random_bone", "second_bone"]


@dataclass
class Bone:
    """Geometry of one long bone in canvas pixels (supersampled canvas, index coordinates)."""

    cx: float
    cy: float
    angle: float  # radians, direction of the long axis
    length: float
    radius: float  # outer radius of the shaft
    k_shaft: float  # inner / outer radius in the shaft (cortex thickness)
    k_epi: float  # inner / outer radius at the ends (thin cortex)
    marrow: float  # relative density of the medullary cavity
    cancellous: float  # relative density of the epiphysis interior
    flare: float  # relative widening at the ends
    end_len: float  # length of the flared end region

    def to_image(self, u: float, v: float) -> tuple[float, float]:
        """Bone frame (u along the axis, v across) -> canvas coordinates."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        return self.cx + u * c - v * s, self.cy + u * s + v * c

    def to_bone(self, x: float, y: float) -> tuple[float, float]:
        """Canvas coordinates -> bone frame."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        dx, dy = x - self.cx, y - self.cy
        return dx * c + dy * s, dy * c - dx * s

    @property
    def max_radius(self) -> float:
        return self.radius * (1.0 + self.flare)

    def thickness(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Projected thickness (in shaft radii) on the grid ``v[:, None] x u[None, :]``.

        A hollow tube seen from the side is brightest just inside its outer edge, which gives
        radiographs their two bright cortical lines around a darker medullary cavity. The
        ends flare (epiphysis), have a thin cortex filled with cancellous bone, and are domed.
        """
        half = 0.5 * self.length
        au = np.abs(u)
        t = np.clip((au - (half - self.end_len)) / self.end_len, 0.0, 1.0)
        sm = t * t * (3.0 - 2.0 * t)
        ro = self.radius * (1.0 + self.flare * sm)
        cap = self.max_radius * 0.9
        ct = np.clip((au - (half - cap)) / cap, 0.0, 1.0)
        ro = ro * np.sqrt(1.0 - ct * ct)
        ri = ro * (self.k_shaft + (self.k_epi - self.k_shaft) * sm)
        keep = (1.0 - (self.marrow + (self.cancellous - self.marrow) * sm)) * (1.0 / self.radius)
        v2 = (v * v)[:, None]
        outer = np.sqrt(np.maximum((ro * ro)[None, :] - v2, 0.0))
        inner = np.sqrt(np.maximum((ri * ri)[None, :] - v2, 0.0))
        return outer * (1.0 / self.radius) - keep[None, :] * inner

    def patch_axes(self, n: int, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray] | None:
        """Sample positions (u, v) of the bone-frame patch that covers the visible canvas.

        ``margin`` widens the covered canvas region (for fragments that are moved later).
        Returns ``None`` when the bone misses the canvas entirely.
        """
        uc, _ = self.to_bone((n - 1) / 2, (n - 1) / 2)
        reach = 0.72 * n + margin
        lo = math.floor(max(-0.5 * self.length - 2.0, uc - reach))
        hi = math.ceil(min(0.5 * self.length + 2.0, uc + reach))
        if hi <= lo:
            return None
        w = math.ceil(self.max_radius + 3.0)
        return (
            np.arange(lo, hi + 1, dtype=np.float32),
            np.arange(-w, w + 1, dtype=np.float32),
        )

    def patch_matrix(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """3x3 affine from patch pixel (column, row) to canvas coordinates."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        u0, v0 = float(u[0]), float(v[0])
        x0, y0 = self.to_image(u0, v0)
        return np.array([[c, -s, x0], [s, c, y0], [0.0, 0.0, 1.0]])


def random_bone(rng: np.random.Generator, n: int, **over: float) -> Bone:
    length = over.pop("length", n * rng.uniform(0.8, 1.4))
    params = dict(
        cx=n * rng.uniform(0.35, 0.65),
        cy=n * rng.uniform(0.35, 0.65),
        # Limbs are laid along the detector, so bones run roughly vertically. Free rotation
        # made the task far too slow to learn for a small CNN trained from scratch.
        angle=math.pi / 2 + rng.normal(0.0, 0.12),
        length=length,
        radius=n * rng.uniform(0.08, 0.12),
        k_shaft=rng.uniform(0.6, 0.78),
        k_epi=rng.uniform(0.82, 0.92),
        marrow=rng.uniform(0.0, 0.12),
        cancellous=rng.uniform(0.35, 0.6),
        flare=rng.uniform(0.2, 0.7),
        end_len=length * rng.uniform(0.12, 0.2),
    )
    params.update(over)
    return Bone(**params)


def second_bone(rng: np.random.Generator, main: Bone, n: int) -> Bone:
    """A neighbour bone (radius/ulna, tibia/fibula), sometimes overlapping or crossing."""
    base = random_bone(rng, n, length=n * rng.uniform(0.5, 1.2))
    if rng.random() < 0.25:
        dang = rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.6)  # crossing
    else:
        dang = rng.normal(0.0, 0.06)
    radius = main.radius * rng.uniform(0.55, 1.0)
    off = (main.radius + radius) * rng.uniform(0.6, 1.6) * rng.choice([-1.0, 1.0])
    cx, cy = main.to_image(rng.uniform(-0.3, 0.3) * main.length, off)
    base.cx, base.cy, base.angle, base.radius = cx, cy, main.angle + dang, radius
    return base


def fracture_site(rng: np.random.Generator, bone: Bone, n: int) -> float:
    """Position along the shaft for the fracture, kept well inside the visible canvas."""
    half = 0.5 * bone.length - 1.2 * bone.end_len
    best, best_d = 0.0, float("inf")
    for _ in range(12):
        u0 = rng.uniform(-half, half)
        x, y = bone.to_image(u0, 0.0)
        d = max(abs(x - n / 2), abs(y - n / 2))
        if d < 0.3 * n:
            return u0
        if d < best_d:
            best, best_d = u0, d
    return best
