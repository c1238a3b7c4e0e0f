"""Validation folds: stratified by grade, even, independent of reader order, a patient's images in one fold, and
IDRiD's folds (no patient ids) exactly as they were before records carried patients."""

from collections import Counter
from pathlib import Path

import pytest

from drcollab.data.eyepacs import read_eyepacs
from drcollab.data.folds import fold_ids, split_records
from drcollab.data.idrid import read_idrid_grading, read_idrid_segmentation
from drcollab.data.records import Record

# fold_ids(records, 5, seed=0) of IDRiD's training split in name order, as assigned before records carried patients:
# the reference validation fold 0 of every IDRiD run.
IDRID_GRADING_FOLDS = (
    "0043043001404221012242433332434033130201030022241103234014310404241341344222301124123102003233041002"
    "4433033343443044011331140424032200234034414020222042003341223033214342113413403431023314001122012303"
    "4414230340030203143110013030300243444312203334220202034031114044101104220021330111141043032014411331"
    "2142303341241221420212110024320130110113213010304212141211024131244242230202243124112413441423222222"
    "4441242410113"
)
IDRID_SEGMENTATION_FOLDS = "413012440231323240224204101404334130223010124003113231"


def records(grades):
    return [Record(f"img{i:03d}", Path(f"img{i:03d}.png"), grade=g) for i, g in enumerate(grades)]


def test_folds_are_stratified_and_even():
    recs = records([0] * 20 + [1] * 5 + [2] * 15 + [3] * 10 + [4] * 10)
    folds = fold_ids(recs, 5, seed=0)
    sizes = Counter(folds.tolist())
    assert set(sizes.values()) == {12}
    for grade, count in [(0, 20), (1, 5), (2, 15), (3, 10), (4, 10)]:
        per_fold = Counter(f for f, r in zip(folds, recs, strict=True) if r.grade == grade)
        assert sum(per_fold.values()) == count
        assert max(per_fold.values()) - min(per_fold.get(k, 0) for k in range(5)) <= 1, grade


def test_folds_ignore_reader_order_but_follow_the_seed():
    recs = records([0, 1, 2, 3, 4] * 4)
    a = dict(zip([r.name for r in recs], fold_ids(recs, 4, seed=7), strict=True))
    rev = recs[::-1]
    b = dict(zip([r.name for r in rev], fold_ids(rev, 4, seed=7), strict=True))
    assert a == b
    c = dict(zip([r.name for r in recs], fold_ids(recs, 4, seed=8), strict=True))
    assert a != c


def test_split_holds_out_one_fold():
    recs = records([0, 1, 2, 3, 4] * 4)
    train, val = split_records(recs, 4, 1, seed=0)
    assert len(val) == 5 and len(train) == 15
    assert not {r.name for r in train} & {r.name for r in val}
    assert split_records(recs, 4, None, seed=0) == (recs, [])
    with pytest.raises(ValueError, match="val_fold"):
        split_records(recs, 4, 4, seed=0)


def test_idrid_folds_are_unchanged(idrid_root: Path) -> None:
    for records, want in [(read_idrid_grading(idrid_root), "".join(IDRID_GRADING_FOLDS)),
                          (read_idrid_segmentation(idrid_root), IDRID_SEGMENTATION_FOLDS)]:
        folds = dict(zip([r.name for r in records], fold_ids(records, 5, seed=0).tolist(), strict=True))
        assert "".join(str(folds[name]) for name in sorted(folds)) == want


def test_a_patients_images_share_a_fold_and_the_highest_grade_stratifies_them():
    recs = [Record(f"{p}_{eye}", Path(f"{p}_{eye}.png"), grade=(p + (eye == "left")) % 5, group=str(p))
            for p in range(40) for eye in ("left", "right")]
    for seed in range(5):
        folds = fold_ids(recs, 4, seed)
        for p in range(40):
            assert folds[2 * p] == folds[2 * p + 1]
        assert set(Counter(folds.tolist()).values()) == {20}
        top = Counter((max(recs[2 * p].grade, recs[2 * p + 1].grade), folds[2 * p]) for p in range(40))
        for grade in (1, 2, 3, 4):  # 8, 8, 8 and 16 patients: 2, 2, 2 and 4 in each fold
            assert {top[grade, f] for f in range(4)} == {4 if grade == 4 else 2}


def test_too_few_patients_for_the_folds():
    recs = [Record(f"x{i}", Path(f"x{i}.png"), grade=0, group=str(i // 3)) for i in range(9)]
    with pytest.raises(ValueError, match="cannot make 4 folds from 9 images of 3 patients"):
        fold_ids(recs, 4, seed=0)


def test_eyepacs_patients_stay_in_one_fold(eyepacs_root: Path) -> None:
    records = read_eyepacs(eyepacs_root)
    folds = fold_ids(records, 5, seed=0)
    seen: dict[str, set[int]] = {}
    for record, fold in zip(records, folds.tolist(), strict=True):
        seen.setdefault(record.group, set()).add(fold)
    assert all(len(f) == 1 for f in seen.values())
    assert sum(Counter(r.group for r in records)[g] == 2 for g in seen) > 100  # both eyes of many patients
