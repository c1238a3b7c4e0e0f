"""Healthy-eye anatomy for the synthetic fundus: retina, optic disc, macula, vessels, camera effects.

Everything is painted in float32 RGB in [0, 1] before illumination; :func:`finish` then applies
vignetting and uneven illumination, cuts the circular field of view (FOV) and adds blur and noise.
Lengths are written "at 512 px" and scaled by ``size / 512``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

COARSE = 4  # smooth fields are computed on a grid this many times coarser, then upsampled
SUPERSAMPLE = 2  # vessels are drawn at 2x and area-averaged, so thin vessels get fractional width and contrast


@dataclass(frozen=True)
class EyeGeometry:
    """Where the landmarks of one synthetic eye lie, in pixels (x right, y down)."""

    size: int
    centre: tuple[float, float]  # FOV centre
    radius: float  # FOV radius
    disc: tuple[float, float]  # optic disc centre
    disc_radius: float
    fovea: tuple[float, float]
    temporal: int  # +1 when the fovea lies right of the disc (right eye), -1 otherwise

    @property
    def scale(self) -> float:
        return self.size / 512


def sample_geometry(rng: np.random.Generator, size: int) -> EyeGeometry:
    """Draw a macula-centred eye: disc about 2.5 disc diameters nasal of the fovea."""
    radius = size * float(rng.uniform(0.45, 0.475))
    slack = size / 2 - radius
    cx, cy = (float(v) for v in size / 2 + rng.uniform(-slack, slack, 2) * 0.8)
    temporal = int(rng.choice([-1, 1]))
    disc = (cx - temporal * radius * float(rng.uniform(0.52, 0.64)), cy - radius * float(rng.uniform(-0.02, 0.08)))
    fovea = (cx + temporal * radius * float(rng.uniform(0.0, 0.08)), cy + radius * float(rng.uniform(-0.03, 0.05)))
    disc_radius = radius * float(rng.uniform(0.13, 0.16))
    return EyeGeometry(size, (cx, cy), radius, disc, disc_radius, fovea, temporal)


def cell_centres(size: int, cells: int) -> np.ndarray:
    """Pixel coordinate of each of ``cells`` grid cells spanning ``size`` pixels (``cv2.resize``'s convention)."""
    return (np.arange(cells, dtype=np.float32) + 0.5) * (size / cells) - 0.5


def radial_grid(geo: EyeGeometry, point: tuple[float, float], cells: int | None = None) -> np.ndarray:
    """Distance from ``point`` of every pixel, or of every cell of a coarse ``cells x cells`` grid; float32."""
    coords = cell_centres(geo.size, cells or geo.size)
    return np.sqrt((coords[None, :] - point[0]) ** 2 + (coords[:, None] - point[1]) ** 2)


def smooth_field(rng: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """Low-frequency noise with unit-ish amplitude: a ``cells x cells`` grid upsampled bicubically."""
    grid = rng.standard_normal((cells, cells, channels)).astype(np.float32)
    field = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return field.reshape(size, size, channels)  # (size, size, C)


def _upsample(field: np.ndarray, size: int) -> np.ndarray:
    """Resize a coarse ``(s, s, C)`` field to ``(size, size, C)``."""
    out = cv2.resize(field, (size, size), interpolation=cv2.INTER_LINEAR)
    return out.reshape(size, size, field.shape[2])


def paint_retina(rng: np.random.Generator, geo: EyeGeometry) -> np.ndarray:
    """Orange-red fundus background with choroidal texture, macula and fovea. Returns ``(S, S, 3)``.

    The smooth parts (tint, macula, fovea) are computed on a 4x coarser grid and upsampled.
    """
    s, low = geo.size, geo.size // COARSE
    base = np.array([rng.uniform(0.74, 0.88), rng.uniform(0.30, 0.42), rng.uniform(0.08, 0.2)], np.float32)
    colour = base * (1 + 0.06 * smooth_field(rng, low, 5, 3))  # (s, s, 3) slow colour drift across the retina
    colour *= 1 + 0.035 * smooth_field(rng, low, 24)  # choroidal mottling
    dist = radial_grid(geo, geo.fovea, low)[..., None]
    macula = np.exp(-((dist / (0.2 * geo.radius)) ** 2))
    fovea = np.exp(-((dist / (0.045 * geo.radius)) ** 2))
    colour *= 1 - macula * np.array([0.2, 0.3, 0.15], np.float32) * rng.uniform(0.7, 1.2)
    colour *= 1 - fovea * np.array([0.25, 0.35, 0.2], np.float32)
    texture = cv2.GaussianBlur(rng.random((s, s), np.float32) - 0.5, (0, 0), 1.6 * geo.scale + 0.3)
    return _upsample(colour, s) * (1 + 0.28 * texture[..., None])  # (S, S, 3)


def paint_disc(rng: np.random.Generator, geo: EyeGeometry, image: np.ndarray) -> None:
    """Blend a bright yellowish optic disc with a paler cup and a soft glow into ``image``, in place."""
    rx, ry = geo.disc_radius, geo.disc_radius * rng.uniform(1.0, 1.12)
    half = int(2.2 * ry) + 2  # the glow fades out well inside this window
    x0, y0 = max(int(geo.disc[0]) - half, 0), max(int(geo.disc[1]) - half, 0)
    crop = image[y0 : int(geo.disc[1]) + half, x0 : int(geo.disc[0]) + half]  # a view: edits land in image
    xs = np.arange(x0, x0 + crop.shape[1], dtype=np.float32)[None, :]
    ys = np.arange(y0, y0 + crop.shape[0], dtype=np.float32)[:, None]
    d = np.sqrt(((xs - geo.disc[0]) / rx) ** 2 + ((ys - geo.disc[1]) / ry) ** 2)
    edge = 0.08
    rim = np.clip((1 + edge - d) / (2 * edge), 0, 1)[..., None]  # (h, w, 1): 1 inside the disc
    glow = np.exp(-((np.maximum(d - 1, 0) / 0.35) ** 2))[..., None] * 0.25
    cup_x, cup_y = geo.disc[0] + geo.temporal * rx * 0.2, geo.disc[1]
    cup = np.exp(-((((xs - cup_x) / (0.45 * rx)) ** 2 + ((ys - cup_y) / (0.5 * ry)) ** 2) ** 2))[..., None]
    disc_colour = np.array([1.0, rng.uniform(0.68, 0.8), rng.uniform(0.25, 0.4)], np.float32)
    cup_colour = np.array([1.0, 0.88, 0.6], np.float32)
    alpha = np.maximum(rim * rng.uniform(0.8, 0.95), glow)
    crop *= 1 - alpha
    crop += alpha * (disc_colour * (1 - cup * 0.6) + cup_colour * cup * 0.6)


def paint_vessel_layers(image: np.ndarray, veins: np.ndarray, arteries: np.ndarray) -> None:
    """Darken ``image`` in place under the (supersampled, uint8) vein and artery coverage layers."""
    s = image.shape[0]
    for layer, factor in ((arteries, (0.9, 0.68, 0.78)), (veins, (0.78, 0.48, 0.6))):
        cover = cv2.resize(layer, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255
        image *= 1 - cover * (1 - np.asarray(factor, np.float32))


def fov_alpha(geo: EyeGeometry) -> np.ndarray:
    """Soft-edged FOV, ``(S, S)`` float32: 1 inside, 0 outside, about 1.5 px of ramp at 512."""
    ramp = 1.5 * geo.scale + 0.5
    return np.clip((geo.radius - radial_grid(geo, geo.centre)) / ramp + 0.5, 0, 1)


def finish(rng: np.random.Generator, geo: EyeGeometry, image: np.ndarray) -> np.ndarray:
    """Camera effects: vignetting, uneven illumination, FOV cut-out, blur and noise. Returns uint8 ``(S, S, 3)``."""
    s, low = geo.size, geo.size // COARSE
    r = radial_grid(geo, geo.centre, low)[..., None] / geo.radius  # (s, s, 1)
    falloff = np.array([0.35, 0.55, 0.6], np.float32) * rng.uniform(0.7, 1.2)
    vignette = 1 - falloff * r ** rng.uniform(2.5, 4.0)  # (s, s, 3): the rim darkens and reddens
    angle = rng.uniform(0, 2 * np.pi)
    cells = cell_centres(s, low)
    dx, dy = (cells - geo.centre[0]) / geo.radius, (cells - geo.centre[1]) / geo.radius
    ramp = dx[None, :] * np.cos(angle) + dy[:, None] * np.sin(angle)  # (s, s) linear light gradient
    light = 1 + rng.uniform(0.0, 0.15) * ramp[..., None] + 0.07 * smooth_field(rng, low, 4)
    gain = _upsample((vignette * light * rng.uniform(0.85, 1.1)).astype(np.float32), s)
    image *= gain * fov_alpha(geo)[..., None]
    image = cv2.GaussianBlur(image, (0, 0), 0.6 * geo.scale + 0.2)
    image += (rng.random(image.shape, np.float32) - 0.5) * (4 / 255)  # sensor noise
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
