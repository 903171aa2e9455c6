"""Training order and augmentation as pure functions of (seed, epoch, index).

A run resumed from a checkpoint only ends like the uninterrupted run when the samples it
sees next, and how they are augmented, do not depend on what happened in the process
before. So nothing here carries random state from batch to batch:

* :class:`EpochSampler` draws epoch ``e``'s order from a generator seeded with
  ``(seed, e)``, shards it across DDP ranks, and yields ``(epoch, index)`` keys; resumed
  mid-epoch it skips the batches the checkpoint already trained on;
* the dataset seeds each sample's augmentation with :func:`sample_seed` of that key, so
  the result is the same in the main process or in any DataLoader worker.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DistributedSampler

#: A training-set key: ``(epoch, index)``; evaluation sets keep plain integer indices.
SampleKey = tuple[int, int]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of one sample in one epoch (independent streams per key)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of the global RNGs (dropout, ...) for one epoch on one rank."""
    return int(np.random.SeedSequence([seed, 1_000_003, epoch, rank]).generate_state(1)[0])


class EpochSampler(DistributedSampler):
    """Seeded per-epoch shuffling (or weighted sampling) that a checkpoint can resume.

    It is a ``DistributedSampler`` so that Lightning neither replaces nor wraps it under
    DDP: each rank keeps its own shard (padded to equal length like Lightning's own), and
    Lightning calls :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        size: int,
        *,
        seed: int,
        num_replicas: int = 1,
        rank: int = 0,
        weights: Sequence[float] | None = None,
    ) -> None:
        # DistributedSampler only needs len(dataset); a range stands in for it.
        super().__init__(range(size), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        self._skip: tuple[int, int] | None = None

    def resume_at(self, epoch: int, samples_done: int) -> None:
        """Continue ``epoch`` after the first ``samples_done`` samples of this rank's shard."""
        self.set_epoch(epoch)
        self._skip = (epoch, samples_done) if samples_done > 0 else None

    def order(self, epoch: int) -> list[int]:
        """All ranks' indices for ``epoch`` (before sharding)."""
        g = torch.Generator()
        g.manual_seed(int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0]))
        n = len(self.dataset)
        if self.weights is not None:
            return torch.multinomial(self.weights, n, replacement=True, generator=g).tolist()
        return torch.randperm(n, generator=g).tolist()

    def __iter__(self) -> Iterator[SampleKey]:
        epoch = self.epoch
        indices = self.order(epoch)
        total = math.ceil(len(indices) / self.num_replicas) * self.num_replicas
        indices += indices[: total - len(indices)]
        shard = indices[self.rank : total : self.num_replicas]
        if self._skip is not None:
            skip_epoch, done = self._skip
            self._skip = None
            if skip_epoch == epoch:
                shard = shard[done:]
        return iter([(epoch, i) for i in shard])

    def __len__(self) -> int:
        return self.num_samples
