import numpy as np
import pytest

from drcollab.training.sampling import EpochSampler, balanced_weights


def indices(sampler: EpochSampler) -> list[int]:
    return [i for i, _ in sampler]


def test_epoch_order_depends_only_on_seed_and_epoch():
    a, b = EpochSampler(20, seed=3), EpochSampler(20, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert indices(a) != indices(b)
    assert sorted(indices(a)) == list(range(20))


def test_resume_mid_epoch_replays_the_rest():
    full = EpochSampler(20, seed=1, batch_size=4)
    full.set_epoch(5)
    resumed = EpochSampler(20, seed=1, batch_size=4)
    resumed.set_epoch(5, start_batch=2)
    assert list(resumed) == list(full)[8:]
    assert len(resumed) == 12


@pytest.mark.parametrize("n, world, batch", [(10, 2, 2), (11, 3, 2), (7, 2, 1)])
def test_ranks_share_an_epoch_evenly(n, world, batch):
    parts = []
    for rank in range(world):
        s = EpochSampler(n, seed=0, rank=rank, world_size=world, batch_size=batch, drop_last=True)
        s.set_epoch(0)
        parts.append(indices(s))
    assert len({len(p) for p in parts}) == 1
    assert len(parts[0]) % batch == 0
    flat = [i for p in parts for i in p]
    assert len(flat) == len(set(flat))  # no index twice in one epoch when drop_last cuts


def test_augmentation_seed_differs_for_repeated_draws():
    w = balanced_weights([0] * 9 + [1], num_classes=2)
    s = EpochSampler(10, seed=0, weights=w)
    s.set_epoch(0)
    pairs = list(s)
    drawn = [i for i, _ in pairs]
    assert 2 <= drawn.count(9) <= 9  # the rare class is drawn about half the time
    seeds = [seed for i, seed in pairs if i == drawn[0]]
    assert len(set(seeds)) == len(seeds)


def test_balanced_weights_equalise_classes():
    w = balanced_weights([0, 0, 0, 1, 2, 2], num_classes=5)
    labels = np.array([0, 0, 0, 1, 2, 2])
    totals = [w[labels == c].sum() for c in range(3)]
    assert np.allclose(totals, 1.0)


def test_too_small_for_one_batch_says_so():
    s = EpochSampler(3, seed=0, world_size=2, batch_size=2, drop_last=True)
    with pytest.raises(ValueError, match="smaller than one global batch"):
        s.num_batches()
