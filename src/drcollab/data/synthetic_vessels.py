"""A branching, tapering retinal vessel tree and neovascular tufts for the synthetic fundus.

Each vessel is a steered random walk: its heading relaxes towards a target direction (an AR(1)
process, solved in closed form with numpy) plus smooth noise, so the temporal arcades leave the
disc vertically and bend around the macula. Branches spawn along a vessel with thinner width and
recurse. Drawing is supersampled (see :data:`SUPERSAMPLE`) into uint8 coverage layers.
"""

from __future__ import annotations

import cv2
import numpy as np

from drcollab.data.synthetic_anatomy import SUPERSAMPLE, EyeGeometry

Walk = tuple[np.ndarray, np.ndarray]  # points (K, 2) in pixels, widths (K,) in pixels
_SHIFT = 4  # cv2 fixed-point bits for sub-pixel line ends
_SMOOTH = np.hanning(9) / np.hanning(9).sum() * 1.5  # low-pass on heading noise: gentle meanders, no kinks


def _wrap(angle: float) -> float:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _walk(
    rng: np.random.Generator, geo: EyeGeometry, start: np.ndarray, heading: float, target: float,
    steer: float, length: float, width: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One vessel path: points ``(K, 2)``, headings ``(K,)`` and tapering widths ``(K,)``."""
    step = 3.0 * geo.scale
    k = max(2, int(length / step))
    keep = (1 - steer) ** np.arange(1, k + 1)  # closed-form AR(1): d_j = keep_j (d_0 + sum_i n_i / keep_i)
    noise = np.convolve(rng.normal(0.0, 0.05, k + 8), _SMOOTH, mode="valid")  # (K,) smooth heading changes
    theta = target + keep * (_wrap(heading - target) + np.cumsum(noise / keep))  # (K,)
    pts = start + np.cumsum(step * np.stack([np.cos(theta), np.sin(theta)], 1), axis=0)  # (K, 2)
    widths = width * np.linspace(1.0, rng.uniform(0.3, 0.5), k)
    # Stop where the vessel leaves the FOV or reaches the avascular fovea.
    out_fov = np.hypot(*(pts - geo.centre).T) > geo.radius * 0.99
    in_fovea = np.hypot(*(pts - geo.fovea).T) < geo.radius * 0.07
    stop = np.flatnonzero(out_fov | in_fovea)
    end = stop[0] if stop.size else k
    pts = np.concatenate([start[None], pts[:end]])
    return pts, np.concatenate([theta[:1], theta[:end]]), np.concatenate([[width], widths[:end]])


def _grow(
    rng: np.random.Generator, geo: EyeGeometry, start: np.ndarray, heading: float, target: float,
    steer: float, length: float, width: float, out: list[Walk],
) -> None:
    """Grow a vessel and, recursively, its side branches until they get thinner than ~0.6 px."""
    pts, theta, widths = _walk(rng, geo, start, heading, target, steer, length, width)
    out.append((pts, widths))
    k = len(pts)
    if k < 8:
        return
    n_branches = rng.poisson(length / (0.35 * geo.radius))
    side = rng.choice([-1, 1])
    for j in np.sort(rng.integers(int(0.1 * k), int(0.9 * k), n_branches)):
        side = -side
        child_width = widths[j] * rng.uniform(0.5, 0.75)
        if child_width < 0.6 * geo.scale:
            continue
        child_heading = theta[j] + side * rng.uniform(0.5, 1.2)
        child_length = length * rng.uniform(0.3, 0.6)
        child_target = child_heading - side * rng.uniform(0.0, 0.6)
        _grow(rng, geo, pts[j], child_heading, child_target, 0.03, child_length, child_width, out)


def vessel_tree(rng: np.random.Generator, geo: EyeGeometry) -> tuple[list[Walk], list[Walk]]:
    """Veins and arteries leaving the disc: two temporal arcades, nasal vessels, small macular twigs."""
    veins: list[Walk] = []
    arteries: list[Walk] = []
    disc = np.asarray(geo.disc, np.float64)
    t = geo.temporal
    temporal_angle = 0.0 if t > 0 else np.pi
    for up in (-1, 1):  # superior (y up is negative) and inferior arcades
        for walks, width, offset in ((veins, 0.024, 0.0), (arteries, 0.017, rng.uniform(-0.25, 0.25))):
            heading = np.arctan2(up * 1.0, t * rng.uniform(0.15, 0.4)) + offset
            target = _wrap(temporal_angle + t * up * rng.uniform(0.1, 0.3))
            length = geo.radius * rng.uniform(1.3, 1.6)
            root = disc + rng.normal(0, 0.15 * geo.disc_radius, 2)  # vessels leave the cup, not one point
            _grow(rng, geo, root, heading, target, 0.035, length, width * geo.radius, walks)
        for walks, width in ((veins, 0.015), (arteries, 0.011)):  # nasal vessels
            heading = _wrap(temporal_angle + np.pi - t * up * rng.uniform(0.3, 1.0))
            length = geo.radius * rng.uniform(0.7, 1.0)
            root = disc + rng.normal(0, 0.15 * geo.disc_radius, 2)
            _grow(rng, geo, root, heading, heading, 0.02, length, width * geo.radius, walks)
    for _ in range(rng.integers(2, 4)):  # thin direct branches towards the macula
        heading = _wrap(temporal_angle + rng.uniform(-0.5, 0.5))
        _grow(rng, geo, disc, heading, heading, 0.02, geo.radius * 0.4, 0.007 * geo.radius, arteries)
    return veins, arteries


def neovascular_tufts(rng: np.random.Generator, geo: EyeGeometry, count: int) -> list[Walk]:
    """Fine tortuous closed loops (proliferative DR), mostly at the disc margin (NVD), some elsewhere (NVE)."""
    tufts: list[Walk] = []
    for i in range(count):
        if i == 0 or rng.random() < 0.5:  # NVD: straddling the disc margin
            angle = rng.uniform(0, 2 * np.pi)
            dist = geo.disc_radius * rng.uniform(0.8, 1.5)
            centre = np.asarray(geo.disc) + dist * np.array([np.cos(angle), np.sin(angle)])
        else:  # NVE: out along the arcades
            angle = rng.uniform(0, 2 * np.pi)
            dist = geo.radius * rng.uniform(0.3, 0.7)
            centre = np.asarray(geo.centre) + dist * np.array([np.cos(angle), np.sin(angle)])
        size = geo.scale * rng.uniform(6, 13)
        for _ in range(rng.integers(4, 8)):  # overlapping wiggly loops form the tuft
            phi = np.linspace(0, 2 * np.pi, 40)
            waves = np.sin(rng.integers(2, 8, 3)[:, None] * phi + rng.uniform(0, 2 * np.pi, 3)[:, None])  # (3, 40)
            harmonics = np.array([0.3, 0.2, 0.12]) @ waves
            r = size * rng.uniform(0.4, 1.0) * (1 + harmonics)
            c = centre + rng.normal(0, size * 0.4, 2)
            loop = c + np.stack([r * np.cos(phi), r * np.sin(phi)], 1)  # (40, 2)
            tufts.append((loop, np.full(len(loop), 0.9 * geo.scale)))
    return tufts


def draw_walks(walks: list[Walk], size: int) -> np.ndarray:
    """Coverage layer ``(size * SUPERSAMPLE,) * 2`` uint8 with every walk drawn at its (tapering) width."""
    big = size * SUPERSAMPLE
    layer = np.zeros((big, big), np.uint8)
    for pts, widths in walks:
        fixed = np.round(pts * SUPERSAMPLE * (1 << _SHIFT)).astype(np.int32)  # (K, 2) fixed point
        thick = np.maximum(1, np.round(widths * SUPERSAMPLE)).astype(int)
        cuts = np.flatnonzero(np.diff(thick)) + 1  # runs of equal thickness share one polylines call
        for a, b in zip([0, *cuts], [*cuts, len(thick)], strict=True):
            run = fixed[a : min(b + 1, len(fixed))]
            if len(run) >= 2:
                cv2.polylines(layer, [run], False, 255, int(thick[a]), cv2.LINE_AA, _SHIFT)
    return layer
