"""One config entry per dataset (``DatasetSpec``) and the dispatch to its reader (``read_records``).

Example (YAML, as in a training config)::

    - {format: idrid-seg, root: data/IDRiD}
    - {format: eyepacs, root: data/kaggle, split: test}
    - {format: messidor, root: data/Messidor}
    - {format: messidor2, root: data/Messidor-2, share: 0.3}

``share`` (``data.image`` only) is the fraction of each epoch's samples drawn from the source
(``training/sampling.py``).
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
from drcollab.data.messidor2 import MESSIDOR2_DEFAULTS, read_messidor2
from drcollab.data.records import Record, ScanReport

Format = Literal["idrid-seg", "idrid-grade", "eyepacs", "messidor", "messidor2", "generic"]
SPLIT_FORMATS = ("idrid-seg", "idrid-grade", "eyepacs")  # formats whose root holds several splits
TABLE_FORMATS = ("eyepacs", "messidor2")  # formats whose label table and image folder may be renamed


class DatasetSpec(StrictModel):
    """Where a dataset lives and how to read it."""

    format: Format = Field(description="Layout of the dataset; see the modules of drcollab.data.")
    root: Path = Field(description="Dataset folder (for IDRiD: the folder holding 'A. Segmentation').")
    split: Literal["train", "test"] = Field(
        "train", description="Official split (IDRiD, EyePACS); Messidor and generic roots hold one set."
    )
    labels: Path | None = Field(
        None,
        description="EyePACS and Messidor-2 only: labels CSV relative to root; default trainLabels.csv (EyePACS "
        "train), retinopathy_solution.csv (EyePACS test), messidor_data.csv (Messidor-2).",
    )
    images: Path | None = Field(
        None, description="EyePACS and Messidor-2 only: image folder relative to root; default train/ (EyePACS "
        "train), test/ (EyePACS test), IMAGES/ (Messidor-2)."
    )
    share: float | None = Field(
        None, gt=0, le=1, description="data.image only: the fraction of each epoch's samples drawn from this source; "
        "give every data.image source one, summing to 1, or none (every image equally often)."
    )

    @model_validator(mode="after")
    def _fields_fit_format(self) -> DatasetSpec:
        if self.split != "train" and self.format not in SPLIT_FORMATS:
            raise ValueError(f"format {self.format!r} has no splits: point root at the folder of the set you want")
        if (self.labels is not None or self.images is not None) and self.format not in TABLE_FORMATS:
            raise ValueError(f"'labels' and 'images' apply to formats {', '.join(TABLE_FORMATS)} only, not "
                             f"{self.format!r}")
        return self


def read_records(spec: DatasetSpec, report: ScanReport | None = None) -> list[Record]:
    """Read the records of one dataset; ``report`` counts them and names the images a reader leaves out
    (Messidor-2's ungradable photos).

    Raises:
        DataError: from the format's reader, naming the file at fault.
    """
    records = _read(spec, report)
    if report is not None:
        report.kept += len(records)
    return records


def _read(spec: DatasetSpec, report: ScanReport | None) -> list[Record]:
    if spec.format == "idrid-seg":
        return read_idrid_segmentation(spec.root, spec.split)
    if spec.format == "idrid-grade":
        return read_idrid_grading(spec.root, spec.split)
    if spec.format == "eyepacs":
        labels, images = EYEPACS_DEFAULTS[spec.split]
        return read_eyepacs(spec.root, spec.labels or labels, spec.images or images)
    if spec.format == "messidor":
        return read_messidor(spec.root)
    if spec.format == "messidor2":
        labels, images = MESSIDOR2_DEFAULTS
        return read_messidor2(spec.root, spec.labels or labels, spec.images or images, report)
    return read_generic(spec.root)
