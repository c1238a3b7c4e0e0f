"""Draw docs/img/attention_pseudo_masks.png: what stage 2's pseudo masks look like next to G's masks.

For one synthetic test image: the ground truth, G's lesion probabilities before stage 2 (the
stage-1 bundle), G's after it and the up-sampled attention maps (the pseudo masks of ``joint.semi``)
of the stage-2 bundle, one row per lesion.

    .venv/bin/python docs/scripts/attention_figure.py --before runs/bench_semi/seed0/pretrain/run/model \\
        --bundle runs/bench_semi/seed0/semi/run/model --data runs/bench_semi/data/test
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from drcollab.constants import LESION_NAMES, LESIONS  # noqa: E402
from drcollab.data.generic import read_generic  # noqa: E402
from drcollab.data.io import load_sample  # noqa: E402
from drcollab.data.preprocess import preprocess  # noqa: E402
from drcollab.data.transforms import image_to_tensor  # noqa: E402
from drcollab.inference.bundle import load_bundle  # noqa: E402
from drcollab.training.pseudo import pseudo_masks  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True, help="after stage 2 (attention grader)")
    parser.add_argument("--before", type=Path, required=True, help="the stage-1 bundle it started from")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--grade", type=int, default=3, help="show the first test image of this grade")
    parser.add_argument("--out", type=Path, default=Path("docs/img/attention_pseudo_masks.png"))
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    record = next(r for r in read_generic(args.data) if r.grade == args.grade and r.has_masks)
    sample = load_sample(record)
    pre = preprocess(sample.image, sample.masks, bundle.preprocess)
    x = image_to_tensor(pre.image)[None]  # (1, 3, S, S)
    with torch.inference_mode():
        before = torch.sigmoid(load_bundle(args.before).generator(x))  # (1, L, S, S)
        masks = torch.sigmoid(bundle.generator(x))  # (1, L, S, S)
        pseudo = pseudo_masks(bundle.grader(x, masks).attention, masks)  # (1, L, S, S), the paper's soft maps
    fig, axes = plt.subplots(len(LESIONS), 5, figsize=(12.5, 10.5))
    titles = ["image", "ground truth", "G before stage 2", "G after stage 2", "its pseudo masks (attention α)"]
    for row, lesion in enumerate(LESIONS):
        panels = [pre.image, pre.masks[row], before[0, row].numpy(), masks[0, row].numpy(), pseudo[0, row].numpy()]
        for col, panel in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(panel, cmap=None if col == 0 else "magma", vmin=0, vmax=1 if col else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=10)
        axes[row, 0].set_ylabel(f"{lesion} ({LESION_NAMES[lesion]})", fontsize=9)
    fig.suptitle(f"{record.name} (grade {record.grade}): probabilities 0 (black) to 1 (yellow)", fontsize=11)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
