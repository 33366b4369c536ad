"""Deterministic data order and latents, split over processes and accumulation rounds.

Everything random in a training step is a pure function of ``(seed, step)``:

- real images: the run reads an endless stream of per-epoch permutations (epoch ``e`` uses
  ``numpy.random.default_rng([seed, e])``); global batch ``i`` is stream positions
  ``[i*B, (i+1)*B)``;
- latents and fake labels: drawn for the whole global batch from a generator seeded by
  ``(seed, step, phase)``.

A global batch of ``B`` is cut into ``world_size * accumulate`` micro-batches; micro-batch
``a * world_size + rank`` is processed by ``rank`` in accumulation round ``a``. So a run with
``W`` processes and ``A`` rounds sees exactly the same micro-batches as one process with
``W * A`` rounds, and resuming at step ``s`` needs nothing but ``s`` to continue the same order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


def _seed(*parts: int) -> int:
    return int(np.random.default_rng(list(parts)).integers(2**62))


class GlobalBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Endless batch sampler: yields this rank's micro-batches of dataset indices.

    Args:
        n: dataset length.
        batch_size: global batch size ``B``.
        seed: data-order seed.
        rank, world_size: this process and how many there are.
        accumulate: accumulation rounds per global batch.
        start_batch: global batches already consumed (resume).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        accumulate: int = 1,
        start_batch: int = 0,
    ):
        if n < 1:
            raise ValueError(f"dataset length n={n} must be >= 1")
        parts = world_size * accumulate
        if batch_size % parts:
            raise ValueError(
                f"batch_size={batch_size} is not divisible by world_size*accumulate={parts}"
            )
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size, self.accumulate = rank, world_size, accumulate
        self.micro = batch_size // parts
        self.start_batch = start_batch
        self._cached: tuple[int, np.ndarray] | None = None

    def _perm(self, epoch: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        return self._cached[1]

    def global_batch(self, i: int) -> list[int]:
        """Dataset indices of global batch ``i`` (all ranks, all rounds)."""
        start, stop = i * self.batch_size, (i + 1) * self.batch_size
        out: list[int] = []
        pos = start
        while pos < stop:
            epoch, offset = divmod(pos, self.n)
            take = min(stop - pos, self.n - offset)
            out.extend(self._perm(epoch)[offset : offset + take].tolist())
            pos += take
        return out

    def micro_batch(self, i: int, round_: int) -> list[int]:
        """This rank's indices of global batch ``i`` in accumulation round ``round_``."""
        part = round_ * self.world_size + self.rank
        return self.global_batch(i)[part * self.micro : (part + 1) * self.micro]

    def __iter__(self) -> Iterator[list[int]]:
        i = self.start_batch
        while True:
            batch = self.global_batch(i)
            for a in range(self.accumulate):
                part = a * self.world_size + self.rank
                yield batch[part * self.micro : (part + 1) * self.micro]
            i += 1


def stream(seed: int, step: int, phase: int, salt: int) -> torch.Generator:
    """A CPU generator that is a pure function of ``(seed, step, phase, salt)``."""
    return torch.Generator().manual_seed(_seed(seed, step, phase, salt))


def latents(
    seed: int,
    step: int,
    phase: int,
    batch_size: int,
    z_dim: int,
    num_classes: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Global-batch latents ``z [B, z_dim]`` ~ N(0, I) and labels ``[B]`` uniform over classes
    (None when unconditional), a pure function of ``(seed, step, phase)``; on the CPU."""
    g = stream(seed, step, phase, 7919)
    z = torch.randn(batch_size, z_dim, generator=g)
    y = torch.randint(num_classes, (batch_size,), generator=g) if num_classes > 0 else None
    return z, y


def chunk(t: torch.Tensor | None, part: int, parts: int) -> torch.Tensor | None:
    """Micro-batch ``part`` of ``parts`` equal slices of ``t`` along dim 0."""
    if t is None:
        return None
    m = t.shape[0] // parts
    return t[part * m : (part + 1) * m]
