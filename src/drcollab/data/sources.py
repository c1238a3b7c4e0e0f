"""One config entry per dataset (``DatasetSpec``) and the dispatch to its reader (``read_records``).

Example (YAML, as in a training config)::

    - {format: idrid-seg, root: data/IDRiD}
    - {format: eyepacs, root: data/kaggle, split: test}
    - {format: messidor, root: data/Messidor}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from drcollab.config import StrictModel
from drcollab.data.eyepacs import EYEPACS_DEFAULTS, read_eyepacs
from drcollab.data.generic import read_generic
from drcollab.data.idrid import read_idrid_grading, read_idrid_segmentation
from drcollab.data.messidor import read_messidor
from drcollab.data.records import Record

Format = Literal["idrid-seg", "idrid-grade", "eyepacs", "messidor", "generic"]
SPLIT_FORMATS = ("idrid-seg", "idrid-grade", "eyepacs")  # formats whose root holds several splits


class DatasetSpec(StrictModel):
    """Where a dataset lives and how to read it."""

    format: Format = Field(description="Layout of the dataset; see the modules of drcollab.data.")
    root: Path = Field(description="Dataset folder (for IDRiD: the folder holding 'A. Segmentation').")
    split: Literal["train", "test"] = Field(
        "train", description="Official split (IDRiD, EyePACS); Messidor and generic roots hold one set."
    )
    labels: Path | None = Field(
        None,
        description="EyePACS only: labels CSV relative to root; default trainLabels.csv (train), "
        "retinopathy_solution.csv (test).",
    )
    images: Path | None = Field(
        None, description="EyePACS only: image folder relative to root; default train/ (train), test/ (test)."
    )

    @model_validator(mode="after")
    def _fields_fit_format(self) -> DatasetSpec:
        if self.split != "train" and self.format not in SPLIT_FORMATS:
            raise ValueError(f"format {self.format!r} has no splits: point root at the folder of the set you want")
        if (self.labels is not None or self.images is not None) and self.format != "eyepacs":
            raise ValueError(f"'labels' and 'images' apply to format 'eyepacs' only, not {self.format!r}")
        return self


def read_records(spec: DatasetSpec) -> list[Record]:
    """Read the records of one dataset.

    Raises:
        DataError: from the format's reader, naming the file at fault.
    """
    if spec.format == "idrid-seg":
        return read_idrid_segmentation(spec.root, spec.split)
    if spec.format == "idrid-grade":
        return read_idrid_grading(spec.root, spec.split)
    if spec.format == "eyepacs":
        labels, images = EYEPACS_DEFAULTS[spec.split]
        return read_eyepacs(spec.root, spec.labels or labels, spec.images or images)
    if spec.format == "messidor":
        return read_messidor(spec.root)
    return read_generic(spec.root)
