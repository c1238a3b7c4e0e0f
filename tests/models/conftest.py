"""Parametrise the shared model tester: every ``case`` argument runs once per row of the class's ``cases``."""

from __future__ import annotations

import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    cls = metafunc.cls
    if "case" in metafunc.fixturenames and cls is not None and hasattr(cls, "cases"):
        ids = [f"{i}-{'x'.join(map(str, shape))}" for i, (_, shape, _) in enumerate(cls.cases)]
        metafunc.parametrize("case", cls.cases, ids=ids)


