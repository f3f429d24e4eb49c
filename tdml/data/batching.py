"""Epoch orderings shared by every loader: seeded, re-seeded per epoch, reproducible."""

from __future__ import annotations

import torch

# Batch key of every loader: the position of each window (or sample) in its split, so a
# frozen teacher's outputs computed once can be looked up per step (tdml.teacher_cache).
INDEX = "index"


class EpochOrder:
    """Yields index batches; with ``shuffle`` the permutation of epoch e depends only on
    (seed, e), so two runs with the same seed see the same batches. The last partial
    batch is kept."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int):
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self._epoch = 0

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self._epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        self._epoch += 1
        for i in range(0, self.n, self.batch_size):
            yield order[i:i + self.batch_size]
