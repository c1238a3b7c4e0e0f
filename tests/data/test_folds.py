from collections import Counter
from pathlib import Path

import pytest

from drcollab.data.folds import fold_ids, split_records
from drcollab.data.records import Record


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
