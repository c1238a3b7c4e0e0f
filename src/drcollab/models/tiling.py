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

from collections.abc import Callable, Iterator

import torch

TILES_PER_CALL = 12  # windows per call of G: a batch to parallelise over, memory bounded (bench_predict_speed)
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
    fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, tile: int, overlap: int,
    tiles_per_call: int | None = None,
) -> torch.Tensor:
    """Apply a dense predictor ``fn`` tile by tile and blend the outputs.

    The windows of all images go through ``fn`` stacked along the batch axis, ``tiles_per_call`` at a time: one
    call on many small windows runs far faster than a call per window (the layers see a batch to parallelise
    over), and ``fn`` treats the samples of a batch independently (G in eval mode), so the output is the same.

    Args:
        fn: ``(N, C, t, t) -> (N, K, t, t)``, e.g. G returning logits.
        images: ``(B, C, H, W)``.
        tile: Window side in pixels (a multiple of 16 for G); an image no larger than it runs whole.
        overlap: Minimum overlap of neighbouring windows, in pixels (``0 <= overlap < tile``).
        tiles_per_call: Windows per call of ``fn`` (memory grows with it); None: :data:`TILES_PER_CALL`.

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
    windows = [(y, x) for y in ys for x in xs]
    out = norm = None
    preds = _window_outputs(fn, images, windows, th, tw, tiles_per_call or TILES_PER_CALL)
    for (y, x), pred in zip(windows, preds, strict=True):
        wy = _ramp(th, overlap, y > 0, y + th < h)  # (th,)
        wx = _ramp(tw, overlap, x > 0, x + tw < w)  # (tw,)
        weight = (wy[:, None] * wx[None, :]).to(images.device)  # (th, tw)
        if out is None:
            out = images.new_zeros((b, pred.shape[1], h, w), dtype=torch.float32)  # (B, K, H, W)
            norm = images.new_zeros((h, w), dtype=torch.float32)  # (H, W)
        out[:, :, y : y + th, x : x + tw] += pred * weight
        norm[y : y + th, x : x + tw] += weight
    return out / norm


def _window_outputs(
    fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, windows: list[tuple[int, int]], th: int,
    tw: int, per_call: int,
) -> Iterator[torch.Tensor]:
    """``fn``'s float32 ``(B, K, th, tw)`` output at each window, in order: one call per window, or the windows of
    all images stacked ``per_call`` at a time (one call per window keeps the batch size symbolic for export)."""
    b = images.shape[0]
    if per_call <= 1:
        for y, x in windows:
            yield fn(images[:, :, y : y + th, x : x + tw]).float()
        return
    stacked = torch.cat([images[:, :, y : y + th, x : x + tw] for y, x in windows])  # (n * B, C, th, tw)
    chunk = max(1, per_call // b) * b  # whole windows: every image of the batch at one window
    preds = torch.cat([fn(stacked[i : i + chunk]).float() for i in range(0, len(stacked), chunk)])  # (n * B, K, ..)
    for k in range(len(windows)):
        yield preds[k * b : (k + 1) * b]
