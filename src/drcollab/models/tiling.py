"""Sliding-window inference with overlapping tiles, for a generator trained on crops.

A fully convolutional G trained on ``tile``-pixel crops sees a different context (and different batch-norm
statistics of its padding) when it is run on the whole, larger image. :func:`tiled_apply` runs it on
overlapping ``tile x tile`` windows instead and blends their outputs with a linear ramp: inside a tile the weight
rises from 0 at an edge shared with a neighbouring tile to 1 at ``overlap`` pixels from it, so every output pixel
is a weighted mean in which the tile that sees it most centrally dominates. Edges on the image border are not
ramped (no other tile covers them). A model whose receptive field is a single pixel (a 1x1 conv) gives exactly
its whole-image output; a U-Net differs only near tile seams.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

ALIGN = 16  # tile starts are multiples of this (G's four 2x2 poolings), so the tiles share one pooling grid


def tile_starts(length: int, tile: int, overlap: int, align: int = ALIGN) -> list[int]:
    """Start offsets along one axis: a step of ``tile - overlap`` rounded down to ``align``, the last tile flush
    with the end. One start (0) when ``length <= tile``.

    Raises:
        ValueError: when ``overlap`` leaves no step of at least ``align`` pixels.
    """
    if length <= tile:
        return [0]
    step = (tile - overlap) // align * align
    if step < 1:
        raise ValueError(f"tile {tile} with overlap {overlap} leaves no step of {align} px: use overlap <= "
                         f"{tile - align}")
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _ramp(size: int, overlap: int, ramp_start: bool, ramp_end: bool) -> torch.Tensor:
    """(size,) blending weights: rising over ``overlap`` px at a shared start, falling at a shared end."""
    pos = torch.arange(size, dtype=torch.float32) + 0.5
    w = torch.ones(size)
    if overlap > 0:
        if ramp_start:
            w = torch.minimum(w, pos / overlap)
        if ramp_end:
            w = torch.minimum(w, (size - pos) / overlap)
    return w


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, tile: int, overlap: int
) -> torch.Tensor:
    """Apply a dense predictor ``fn`` tile by tile and blend the outputs.

    Args:
        fn: ``(B, C, t, t) -> (B, K, t, t)``, e.g. G returning logits.
        images: ``(B, C, H, W)``.
        tile: Window side in pixels (a multiple of 16 for G); an image no larger than it runs whole.
        overlap: Minimum overlap of neighbouring windows, in pixels (``0 <= overlap < tile``).

    Returns:
        ``(B, K, H, W)`` float32 on the images' device.
    """
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    b, _, h, w = images.shape
    if h <= tile and w <= tile:
        return fn(images).float()
    th, tw = min(tile, h), min(tile, w)
    ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
    out = norm = None
    for y in ys:
        wy = _ramp(th, overlap, y > 0, y + th < h)  # (th,)
        for x in xs:
            wx = _ramp(tw, overlap, x > 0, x + tw < w)  # (tw,)
            weight = (wy[:, None] * wx[None, :]).to(images.device)  # (th, tw)
            pred = fn(images[:, :, y : y + th, x : x + tw]).float()  # (B, K, th, tw)
            if out is None:
                out = images.new_zeros((b, pred.shape[1], h, w), dtype=torch.float32)  # (B, K, H, W)
                norm = images.new_zeros((h, w), dtype=torch.float32)  # (H, W)
            out[:, :, y : y + th, x : x + tw] += pred * weight
            norm[y : y + th, x : x + tw] += weight
    return out / norm
