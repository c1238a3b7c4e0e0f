"""Diabetic-retinopathy lesions for the synthetic fundus: how many per grade, where, and how they look.

Each lesion type is drawn into its own alpha layer ``(S, S)`` in [0, 1]; a lesion's mask is exactly
``alpha > 0.5`` minus what a later-painted lesion covers, so masks agree with the colours. Sharp
lesions (MA, HE, EX) have a hard core of alpha >= 0.64 and a soft halo below 0.5; cotton-wool spots
(SE) are blurred ellipses whose mask is their brighter inner part. Alpha is zero outside the FOV and
on the optic disc, whatever the placement drew. Sizes are "at 512 px".
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from drcollab.constants import LESIONS
from drcollab.data.synthetic_anatomy import EyeGeometry, fov_alpha

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel centres and radii
PAINT_ORDER = ("SE", "HE", "MA", "EX")  # later lesions cover earlier ones (and take their pixels)
# MA/HE darken the local retina by a per-channel factor; EX/SE blend towards an absolute colour.
_DARKEN = {"MA": (0.62, 0.33, 0.42), "HE": (0.7, 0.38, 0.48)}
_COLOUR = {"EX": (1.0, 0.9, 0.42), "SE": (0.9, 0.77, 0.6)}


@dataclass(frozen=True)
class Lesion:
    """One painted lesion primitive: its type, centre ``(x, y)`` and radius, in pixels."""

    kind: str
    centre: tuple[float, float]
    radius: float


@dataclass(frozen=True)
class Burden:
    """How many lesions of each type an image gets (EX counts clusters of dots)."""

    ma: int = 0
    he_per_quadrant: tuple[int, int, int, int] = (0, 0, 0, 0)
    ex_clusters: int = 0
    se: int = 0
    nv_tufts: int = 0


def sample_burden(rng: np.random.Generator, grade: int) -> Burden:
    """Lesion counts that match the international DR scale for ``grade``.

    0: nothing; 1: microaneurysms only; 2: MA plus some HE/EX/SE in at most three quadrants;
    3: many HE in all four quadrants; 4: like 3 plus neovascular tufts (which no mask labels).
    """
    if grade == 0:
        return Burden()
    if grade == 1:
        return Burden(ma=int(rng.integers(1, 7)))
    if grade == 2:
        he = np.zeros(4, int)
        quadrants = rng.choice(4, size=rng.integers(1, 4), replace=False)
        np.add.at(he, rng.choice(quadrants, size=rng.integers(0, 7)), 1)
        ex = int(rng.integers(1, 3)) if rng.random() < 0.55 else 0
        se = int(rng.integers(1, 3)) if rng.random() < 0.35 else 0
        if he.sum() + ex + se == 0:  # moderate NPDR needs more than microaneurysms
            he[quadrants[0]] = int(rng.integers(1, 4))
        return Burden(int(rng.integers(3, 13)), tuple(int(v) for v in he), ex, se)
    low, p_ex, p_se = (4, 0.7, 0.6) if grade == 3 else (5, 0.8, 0.7)
    he = tuple(int(v) for v in rng.integers(low, low + 5, 4))
    ex = int(rng.integers(1, 4)) if rng.random() < p_ex else 0
    se = int(rng.integers(1, 4)) if rng.random() < p_se else 0
    ma = int(rng.integers(8, 25)) if grade == 3 else int(rng.integers(10, 30))
    return Burden(ma, he, ex, se, nv_tufts=int(rng.integers(1, 4)) if grade == 4 else 0)


def _allowed(geo: EyeGeometry, pts: np.ndarray, radius: float) -> np.ndarray:
    """Which points ``(N, 2)`` keep a lesion of ``radius`` inside the FOV and off the optic disc."""
    in_fov = np.hypot(*(pts - geo.centre).T) < 0.92 * geo.radius - radius
    off_disc = np.hypot(*(pts - geo.disc).T) > 1.35 * geo.disc_radius + radius
    return in_fov & off_disc


def place(
    rng: np.random.Generator, geo: EyeGeometry, n: int, radius: float, quadrant: int | None = None
) -> np.ndarray:
    """``n`` uniform random lesion centres ``(n, 2)``, optionally in one quadrant (0 TL, 1 TR, 2 BL, 3 BR)."""
    found = np.zeros((0, 2))
    while len(found) < n:
        r = geo.radius * np.sqrt(rng.random(4 * n + 16))
        a = rng.uniform(0, 2 * np.pi, r.size)
        pts = np.asarray(geo.centre) + np.stack([r * np.cos(a), r * np.sin(a)], 1)  # (M, 2)
        ok = _allowed(geo, pts, radius)
        if quadrant is not None:
            ok &= ((pts[:, 0] >= geo.centre[0]).astype(int) + 2 * (pts[:, 1] >= geo.centre[1])) == quadrant
        found = np.vstack([found, pts[ok]])
    return found[:n]


def _ellipse(layer: np.ndarray, c: np.ndarray, axes: tuple[float, float], angle: float, value: float) -> None:
    centre = tuple(int(v) for v in np.round(c * (1 << _SHIFT)))
    ax = tuple(max(1 << _SHIFT, int(round(v * (1 << _SHIFT)))) for v in axes)
    cv2.ellipse(layer, centre, ax, float(np.degrees(angle)), 0, 360, float(value), -1, cv2.LINE_8, _SHIFT)


def _draw_ma(rng: np.random.Generator, geo: EyeGeometry, n: int, layer: np.ndarray, out: list[Lesion]) -> None:
    for c in place(rng, geo, n, 3 * geo.scale):
        r = max(1.0, rng.uniform(1.0, 3.0) * geo.scale)
        _ellipse(layer, c, (r, r), 0.0, rng.uniform(0.8, 1.0))
        out.append(Lesion("MA", (float(c[0]), float(c[1])), r))


def _draw_he(rng: np.random.Generator, geo: EyeGeometry, burden: Burden, layer: np.ndarray, out: list[Lesion]) -> None:
    big = 1.4 if sum(burden.he_per_quadrant) > 12 else 1.0
    for q, count in enumerate(burden.he_per_quadrant):
        for c in place(rng, geo, count, 12 * geo.scale, quadrant=q):
            value = rng.uniform(0.8, 1.0)
            if rng.random() < 0.35:  # flame haemorrhage: a fan of streaks along the nerve fibres (radial from the disc)
                along = np.arctan2(c[1] - geo.disc[1], c[0] - geo.disc[0]) + rng.normal(0, 0.2)
                r = rng.uniform(5, 11) * geo.scale * big
                base = c - 0.5 * r * np.array([np.cos(along), np.sin(along)])
                for angle in along + rng.uniform(-0.3, 0.3, 4):
                    half = 0.5 * r * rng.uniform(0.7, 1.0)
                    mid = base + half * np.array([np.cos(angle), np.sin(angle)])
                    _ellipse(layer, mid, (half, rng.uniform(1.0, 2.2) * geo.scale), angle, value)
            else:  # dot-blot haemorrhage: a few overlapping ellipses
                r = rng.uniform(2.5, 7) * geo.scale * big
                for _ in range(rng.integers(2, 6)):
                    offset = rng.normal(0, 0.4 * r, 2)
                    _ellipse(layer, c + offset, tuple(r * rng.uniform(0.45, 0.9, 2)), rng.uniform(0, np.pi), value)
            out.append(Lesion("HE", (float(c[0]), float(c[1])), float(r)))


def _draw_ex(rng: np.random.Generator, geo: EyeGeometry, clusters: int, layer: np.ndarray, out: list[Lesion]) -> None:
    for _ in range(clusters):  # clusters gather around the macula, some beyond one disc diameter (DME 1)
        a, d = rng.uniform(0, 2 * np.pi), geo.radius * rng.uniform(0.12, 0.6)
        centre = np.asarray(geo.fovea) + d * np.array([np.cos(a), np.sin(a)])
        n = int(rng.integers(6, 30))
        dots = centre + rng.normal(0, geo.radius * rng.uniform(0.03, 0.09), (n, 2))  # (n, 2)
        radii = rng.uniform(0.8, 3.0, n) * geo.scale * np.where(rng.random(n) < 0.1, 1.8, 1.0)
        for c, r in zip(dots, radii, strict=True):
            if _allowed(geo, c[None], r)[0]:
                _ellipse(layer, c, (r, r * rng.uniform(0.6, 1.0)), rng.uniform(0, np.pi), rng.uniform(0.75, 1.0))
                out.append(Lesion("EX", (float(c[0]), float(c[1])), float(r)))


def _draw_se(rng: np.random.Generator, geo: EyeGeometry, n: int, layer: np.ndarray, out: list[Lesion]) -> None:
    for c in place(rng, geo, n, 20 * geo.scale):
        r = rng.uniform(7, 15) * geo.scale
        pad = int(3 * r) + 2
        x0, y0 = int(c[0]) - pad, int(c[1]) - pad
        patch = np.zeros((2 * pad, 2 * pad), np.float32)  # a local crop: each spot gets its own blur
        local = c - (x0, y0)
        across = np.arctan2(c[1] - geo.disc[1], c[0] - geo.disc[0]) + np.pi / 2
        _ellipse(patch, local, (r, r * rng.uniform(0.5, 0.8)), across + rng.normal(0, 0.3), 1.0)
        _ellipse(patch, local + rng.normal(0, 0.4 * r, 2), (0.6 * r, 0.5 * r), rng.uniform(0, np.pi), 1.0)
        fluff = cv2.GaussianBlur(rng.random(patch.shape, np.float32), (0, 0), 0.15 * r + 0.5)  # ragged edges
        patch = cv2.GaussianBlur(patch, (0, 0), 0.35 * r) * rng.uniform(1.3, 1.6) * (1 + 4 * (fluff - 0.5))
        top, left = max(y0, 0), max(x0, 0)  # clip the crop to the image
        view = layer[top : y0 + 2 * pad, left : x0 + 2 * pad]
        patch = patch[top - y0 : top - y0 + view.shape[0], left - x0 : left - x0 + view.shape[1]]
        np.maximum(view, np.clip(patch, 0, 0.68), out=view)
        out.append(Lesion("SE", (float(c[0]), float(c[1])), float(r)))


def paint_lesions(
    rng: np.random.Generator, geo: EyeGeometry, burden: Burden, image: np.ndarray
) -> tuple[np.ndarray, list[Lesion]]:
    """Paint every lesion of ``burden`` into ``image`` ``(S, S, 3)`` in place.

    Returns:
        Masks ``(L, S, S)`` bool in :data:`LESIONS` order, and the painted lesions.
    """
    s = geo.size
    cores = {k: np.zeros((s, s), np.float32) for k in LESIONS}
    lesions: list[Lesion] = []
    _draw_ma(rng, geo, burden.ma, cores["MA"], lesions)
    _draw_he(rng, geo, burden, cores["HE"], lesions)
    mottle = cv2.resize(rng.random((s // 8, s // 8), np.float32), (s, s), interpolation=cv2.INTER_LINEAR)
    cores["HE"] *= 0.8 + 0.2 * mottle  # uneven blood density; stays above the 0.5 mask threshold
    _draw_ex(rng, geo, burden.ex_clusters, cores["EX"], lesions)
    _draw_se(rng, geo, burden.se, cores["SE"], lesions)
    allowed = (fov_alpha(geo) > 0.5).astype(np.uint8)  # (S, S)
    disc = tuple(int(round(v)) for v in geo.disc)
    cv2.circle(allowed, disc, int(np.ceil(1.2 * geo.disc_radius)), 0, -1)  # the disc (a slightly tall ellipse)
    masks = {k: np.zeros((s, s), bool) for k in LESIONS}
    for kind in PAINT_ORDER:
        core = cores[kind]
        if not core.any():
            continue
        halo = 2.0 if kind == "HE" else 0.8  # soft rim below the mask threshold
        alpha = core if kind == "SE" else np.maximum(core, 0.45 * cv2.GaussianBlur(core, (0, 0), halo * geo.scale))
        alpha *= allowed
        a = alpha[..., None]  # (S, S, 1)
        if kind in _DARKEN:
            image *= 1 - a * (1 - np.asarray(_DARKEN[kind], np.float32))
        else:
            image *= 1 - a
            image += a * np.asarray(_COLOUR[kind], np.float32) * rng.uniform(0.92, 1.05)
        masks[kind] = alpha > 0.5
        for earlier in PAINT_ORDER[: PAINT_ORDER.index(kind)]:  # what this lesion covers hides the earlier ones
            masks[earlier] &= ~masks[kind]
    return np.stack([masks[k] for k in LESIONS]), lesions


def dme_risk(masks: np.ndarray, geo: EyeGeometry) -> int:
    """IDRiD's risk of macular edema read off the painted hard exudates ``masks`` ``(L, S, S)``.

    0: no hard exudate pixel; 2: an exudate pixel within one disc diameter (``2 * disc_radius``) of the macula's
    centre (the fovea); 1: exudates, all farther away.
    """
    ys, xs = np.nonzero(masks[LESIONS.index("EX")])
    if xs.size == 0:
        return 0
    nearest = float(np.hypot(xs - geo.fovea[0], ys - geo.fovea[1]).min())
    return 2 if nearest <= 2 * geo.disc_radius else 1
