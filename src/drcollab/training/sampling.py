"""Deterministic, resumable, distributed sampling.

The order of an epoch is a pure function of ``(seed, epoch)``, so a run resumed in the middle of
an epoch replays exactly the batches it had not seen yet, on any number of processes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


def balanced_weights(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """Per-sample weights so that every present class is drawn equally often."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return 1.0 / counts[labels]


def share_weights(sources: Sequence[int], shares: Sequence[float], within: np.ndarray | None = None) -> np.ndarray:
    """Per-sample weights that draw source ``k`` with probability ``shares[k]``, whatever its size.

    Args:
        sources: The source index of each sample.
        shares: Each source's share of the draws (they sum to 1).
        within: Relative weights of the samples inside their source (e.g. :func:`balanced_weights` per source);
            default equal.

    Raises:
        ValueError: a source with a share but no sample to draw.
    """
    sources = np.asarray(sources, dtype=np.int64)
    within = np.ones(len(sources)) if within is None else np.asarray(within, dtype=np.float64)
    totals = np.bincount(sources, weights=within, minlength=len(shares))  # (K,)
    empty = [k for k in range(len(shares)) if totals[k] <= 0]
    if empty:
        raise ValueError(f"source {empty[0]} has a share of the draws ({shares[empty[0]]}) but no image to draw")
    return np.asarray(shares, dtype=np.float64)[sources] * within / totals[sources]


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, augmentation_seed)`` for this rank's share of a seeded permutation of ``range(n)``.

    The augmentation seed depends on ``(seed, epoch, position in the epoch)``, so a sample's random
    crop/flip/rotation is the same whatever the worker count, process count or resumption point.

    Args:
        n: Dataset size.
        seed: Run seed; the epoch order depends only on ``(seed, epoch)``.
        shuffle: Permute (True) or keep the natural order (False, for validation).
        weights: Optional per-sample weights: draw ``n`` indices with replacement (class-balanced sampling).
        rank: This process's rank; ``world_size`` ranks each get every ``world_size``-th index.
        world_size: Number of processes. The epoch is padded by repetition so all ranks get equal counts.
        batch_size: Per-process batch size; with ``drop_last`` the epoch is cut to whole global batches.
        drop_last: Drop the incomplete last batch (training) or keep it (validation).
    """

    def __init__(
        self,
        n: int,
        seed: int,
        shuffle: bool = True,
        weights: np.ndarray | None = None,
        rank: int = 0,
        world_size: int = 1,
        batch_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        if n <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.n, self.seed, self.shuffle, self.weights = n, seed, shuffle, weights
        self.rank, self.world_size, self.batch_size, self.drop_last = rank, world_size, batch_size, drop_last
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch, skipping the first ``start_batch`` batches already trained on."""
        self.epoch, self.start_batch = epoch, start_batch

    def _global_order(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.weights is not None:
            p = self.weights / self.weights.sum()
            return rng.choice(self.n, size=self.n, replace=True, p=p)
        return rng.permutation(self.n) if self.shuffle else np.arange(self.n)

    def _rank_indices(self) -> np.ndarray:
        """``(k, 2)`` array of (index, position-in-epoch) for this rank."""
        order = self._global_order()
        order = np.stack([order, np.arange(len(order))], axis=1)  # (n, 2)
        per_rank = -(-len(order) // self.world_size)  # ceil
        if self.drop_last:
            per_rank = (len(order) // self.world_size // self.batch_size) * self.batch_size
            if per_rank == 0:
                raise ValueError(
                    f"dataset of {self.n} images is smaller than one global batch "
                    f"({self.batch_size} x {self.world_size} processes): lower the batch size"
                )
        total = per_rank * self.world_size
        order = order[np.arange(total) % len(order)]  # pads by repeating from the start when needed
        return order[self.rank : total : self.world_size]

    def num_batches(self) -> int:
        """Batches per epoch for this rank, before skipping."""
        return -(-len(self._rank_indices()) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rows = self._rank_indices()[self.start_batch * self.batch_size :]
        for index, position in rows.tolist():
            yield index, sample_seed(self.seed, self.epoch, position)

    def __len__(self) -> int:
        return max(0, len(self._rank_indices()) - self.start_batch * self.batch_size)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """Seed of one sample's augmentation: independent of worker count, process count and resumption."""
    return int(np.random.default_rng([seed, epoch, index]).integers(2**31 - 1))

