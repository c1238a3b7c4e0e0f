"""EyePACS reader on the real 256-px copy (``eyepacs_root``) and on a tiny layout: grades and patients."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from fake_layouts import make_eyepacs

from drcollab.data.eyepacs import eyepacs_patient, read_eyepacs


def test_real_counts_and_patients(eyepacs_root: Path) -> None:
    records = read_eyepacs(eyepacs_root)
    assert len(records) == 2825
    assert sorted(Counter(r.grade for r in records).items()) == [(0, 1000), (1, 476), (2, 1044), (3, 173), (4, 132)]
    assert all(r.name.startswith(f"{r.group}_") and r.group.isdigit() for r in records)
    assert max(Counter(r.group for r in records).values()) == 2  # one photo per eye


def test_tiny_layout_groups_both_eyes(tmp_path: Path) -> None:
    records = read_eyepacs(make_eyepacs(tmp_path / "eyepacs"))
    assert [(r.name, r.group) for r in records] == [("10_left", "10"), ("10_right", "10"), ("13_left", "13")]


@pytest.mark.parametrize(
    ("name", "patient"),
    [("10_left", "10"), ("10_right", "10"), ("44_Left", "44"), ("a_b_right", "a_b"), ("10", ""), ("10_up", ""),
     ("_left", "")],
)
def test_patient_of_a_name(name: str, patient: str) -> None:
    assert eyepacs_patient(name) == patient
