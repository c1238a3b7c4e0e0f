"""Parametrise the shared model tester: every ``case`` argument runs once per row of the class's ``cases``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    cls = metafunc.cls
    if "case" in metafunc.fixturenames and cls is not None and hasattr(cls, "cases"):
        ids = [f"{i}-{'x'.join(map(str, shape))}" for i, (_, shape, _) in enumerate(cls.cases)]
        metafunc.parametrize("case", cls.cases, ids=ids)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run model tests on one intra-op thread, restoring the setting afterwards.

    Tiny tensors gain nothing from a second thread, and on a loaded 2-core machine OpenMP's
    spin-waiting made the convergence tests over 10x slower with two threads than with one.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
