"""Draw ``docs/img/idrid_preprocessing.png``: one IDRiD image raw vs preprocessed, with its four lesion masks.

Usage::

    .venv/bin/python docs/scripts/preprocessing_figure.py [--idrid PATH] [--image IDRiD_03] [--out PATH]
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from drcollab.config import PreprocessConfig  # noqa: E402
from drcollab.constants import LESION_COLOURS, LESION_NAMES, LESIONS  # noqa: E402
from drcollab.data.io import load_sample  # noqa: E402
from drcollab.data.preprocess import preprocess  # noqa: E402
from drcollab.data.records import Record  # noqa: E402
from drcollab.viz import overlay_masks  # noqa: E402

SEG = "A. Segmentation"
MASK_DIRS = ("1. Microaneurysms", "2. Haemorrhages", "3. Hard Exudates", "4. Soft Exudates")
REPO = Path(__file__).resolve().parents[2]


def idrid_record(root: Path, name: str) -> Record:
    gt = root / SEG / "2. All Segmentation Groundtruths/a. Training Set"
    masks = tuple(
        p if (p := gt / folder / f"{name}_{lesion}.tif").is_file() else None
        for folder, lesion in zip(MASK_DIRS, LESIONS, strict=True)
    )
    image = root / SEG / "1. Original Images/a. Training Set" / f"{name}.jpg"
    return Record(name=name, image_path=image, mask_paths=masks)


def draw(record: Record, size: int, zoom: tuple[int, int, int]) -> plt.Figure:
    """Four panels: raw with FOV circle and crop square, normalised, masks overlaid, a zoomed detail."""
    sample = load_sample(record)
    out = preprocess(sample.image, sample.masks, PreprocessConfig(size=size))
    g = out.geometry
    h, w = sample.image.shape[:2]
    f = 800 / w  # the raw panel is shown 800 px wide
    raw = cv2.resize(sample.image, (800, round(h * f)), interpolation=cv2.INTER_AREA)
    overlay = overlay_masks(out.image, out.masks, alpha=0.85)
    zy, zx, zs = zoom

    fig, axes = plt.subplots(1, 4, figsize=(16, 4.6), gridspec_kw={"width_ratios": [w / h, 1, 1, 1]})
    axes[0].imshow(raw)
    axes[0].add_patch(plt.Circle(((g.centre[0] + 0.5) * f, (g.centre[1] + 0.5) * f), g.radius * f, fill=False, ec="c"))
    x0, y0, x1, _ = g.box
    axes[0].add_patch(Rectangle((x0 * f, y0 * f), (x1 - x0) * f, (x1 - x0) * f, fill=False, ec="m", ls="--"))
    axes[0].set_xlim(0, raw.shape[1])
    axes[0].set_ylim(max(raw.shape[0], (g.box[3]) * f) + 5, min(0, g.box[1] * f) - 5)
    axes[0].set_facecolor("0.85")  # the crop square is padded where it leaves the image
    axes[0].set_title(f"raw {w}x{h}: FOV circle (cyan), crop square (magenta)", fontsize=9)
    axes[1].imshow(out.image)
    axes[1].set_title(f"cropped, {size}x{size}, normalised (sigma = r/30)", fontsize=9)
    axes[2].imshow(overlay)
    axes[2].add_patch(Rectangle((zx, zy), zs, zs, fill=False, ec="w", lw=1))
    axes[2].set_title("ground-truth masks at output size", fontsize=9)
    axes[3].imshow(overlay[zy : zy + zs, zx : zx + zs], interpolation="nearest")
    axes[3].set_title(f"detail {zs}x{zs} px (white box)", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(color=np.array(LESION_COLOURS[k]) / 255, label=f"{k} {LESION_NAMES[k]}") for k in LESIONS]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, fontsize=9)
    fig.suptitle(f"{record.name}: field-of-view crop, resize and contrast normalisation", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idrid", type=Path, default=Path(os.environ.get("DRCOLLAB_IDRID", "/work/shared/data/IDRiD")))
    parser.add_argument("--image", default="IDRiD_03")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--zoom", type=int, nargs=3, default=[713, 257, 200], metavar=("Y", "X", "SIDE"))
    parser.add_argument("--out", type=Path, default=REPO / "docs/img/idrid_preprocessing.png")
    args = parser.parse_args()
    record = idrid_record(args.idrid, args.image)
    if not record.image_path.is_file():
        parser.error(f"{record.image_path}: not found (set --idrid)")
    fig = draw(record, args.size, tuple(args.zoom))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.open(buf).convert("RGB").save(args.out, optimize=True)  # RGB without alpha: ~0.7 MB
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
