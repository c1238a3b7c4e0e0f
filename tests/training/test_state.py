import random

import numpy as np
import torch

from drcollab.training.state import load_into, read_state, save_state


def make():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    return model, torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))


def train_steps(model, opt, n):
    for _ in range(n):
        loss = model(torch.randn(8, 3)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_state_round_trip_continues_identically(tmp_path):
    model, opt = make()
    train_steps(model, opt, 3)
    random.seed(5)
    np.random.seed(5)  # noqa: NPY002 (the legacy global stream is part of the saved state)
    path = save_state(tmp_path / "last.safetensors", {"net": model}, {"net": opt}, {"position": {"step": 3}})
    train_steps(model, opt, 2)
    expected = [p.detach().clone() for p in model.parameters()]
    after = (random.random(), np.random.rand())  # noqa: NPY002

    fresh, fresh_opt = make()
    tensors, meta = read_state(path)
    load_into(tensors, meta, {"net": fresh}, {"net": fresh_opt})
    train_steps(fresh, fresh_opt, 2)
    assert meta["position"] == {"step": 3}
    for a, b in zip(expected, fresh.parameters(), strict=True):
        assert torch.equal(a, b)
    assert (random.random(), np.random.rand()) == after  # noqa: NPY002
    assert path.with_suffix(".json").is_file()
    assert not list(tmp_path.glob(".*tmp"))
