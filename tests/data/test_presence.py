"""Lesion presence implied by the labels: the ICDR/IDRiD defaults, conflicts, a custom table, real IDRiD counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from drcollab.data.idrid import read_idrid_grading
from drcollab.data.presence import ABSENT, PRESENT, UNKNOWN, PresenceConfig, lesion_presence
from drcollab.data.records import Record


def _record(grade: int | None, dme: int | None = None, scale: str = "icdr") -> Record:
    return Record(name="x", image_path=Path("x.jpg"), grade=grade, dme=dme, grade_scale=scale)


@pytest.mark.parametrize(
    ("grade", "dme", "expected"),
    [
        (0, None, (ABSENT, ABSENT, ABSENT, ABSENT)),
        (1, None, (PRESENT, ABSENT, ABSENT, ABSENT)),
        (2, None, (UNKNOWN,) * 4),
        (3, 0, (UNKNOWN, UNKNOWN, ABSENT, UNKNOWN)),  # DME 0: no hard exudate
        (4, 2, (UNKNOWN, UNKNOWN, PRESENT, UNKNOWN)),  # DME 1 or 2: hard exudates
        (2, 1, (UNKNOWN, UNKNOWN, PRESENT, UNKNOWN)),
        (0, 1, (ABSENT, ABSENT, UNKNOWN, ABSENT)),  # the labels disagree on EX
        (None, 0, (UNKNOWN, UNKNOWN, ABSENT, UNKNOWN)),
        (0, 0, (ABSENT,) * 4),  # both agree
    ],
)
def test_defaults_follow_icdr_and_the_edema_risk(grade, dme, expected) -> None:
    assert lesion_presence(_record(grade, dme)) == expected


@pytest.mark.parametrize(
    ("grade", "partial", "expected"),
    [
        (2, (1, 2), (UNKNOWN, UNKNOWN, PRESENT, UNKNOWN)),  # risk 1 or 2: hard exudates either way
        (2, (0, 1), (UNKNOWN,) * 4),  # risk 0 or 1: exudates may or may not be there
        (0, (0, 1), (ABSENT,) * 4),  # the grade alone rules them out
    ],
)
def test_a_partial_edema_label_implies_what_all_its_risks_imply(grade, partial, expected) -> None:
    record = Record(name="x", image_path=Path("x.jpg"), grade=grade, dme_partial=partial)
    assert lesion_presence(record) == expected


def test_a_conflict_between_labels_is_unknown() -> None:
    cfg = PresenceConfig(dme={0: {"EX": "absent"}, 1: {"EX": "present"}})
    assert lesion_presence(_record(0, 1), cfg) == (ABSENT, ABSENT, UNKNOWN, ABSENT)


def test_messidor_grades_imply_nothing_by_default() -> None:
    assert lesion_presence(_record(0, scale="messidor")) == (UNKNOWN,) * 4


def test_another_protocol_is_a_table_and_a_wrong_lesion_is_named() -> None:
    cfg = PresenceConfig(dr={2: {"HE": "present"}}, dme={})
    assert lesion_presence(_record(2), cfg) == (UNKNOWN, PRESENT, UNKNOWN, UNKNOWN)
    assert lesion_presence(_record(0), cfg) == (UNKNOWN,) * 4
    with pytest.raises(ValueError, match="lesion 'XX'"):
        lesion_presence(_record(2), PresenceConfig(dr={2: {"XX": "present"}}))


def test_real_idrid_training_labels(idrid_root: Path) -> None:
    """134 grade-0 images rule out every lesion, 20 grade-1 ones all but MA, 177 DME-0 ones hard exudates; the
    236 of DME 1 or 2 have hard exudates (no IDRiD label disagrees)."""
    records = read_idrid_grading(idrid_root)
    presence = [lesion_presence(r) for r in records]
    assert sum(p == (ABSENT,) * 4 for p in presence) == 134
    assert sum(p == (PRESENT, ABSENT, ABSENT, ABSENT) for p in presence) == 20
    assert Counter(p[2] for p in presence) == {ABSENT: 177, PRESENT: 236}
