"""Length-bucketed batches: texts of similar length share a batch, reshuffled every epoch.

A batch is padded to its own longest text, never to the longest in the set. With
IMDB reviews (10 to 2,500 words, median ~175) and short Rotten Tomatoes
sentences in one training set, random batches would be padded to ~600 steps
on average; bucketed ones waste a few percent::

    examples --(shuffle, seeded by seed and epoch)--> chunks of batch_size * multiplier
             --sort each chunk by length--> cut into batches (batch_size, and at most
               max_tokens = rows x longest row, if given) --(shuffle batch order)-->

:class:`BucketBatches` is what :func:`textrnn.train.fit` wants: a re-iterable of
batches with ``len()`` and ``set_epoch(epoch)``. It knows nothing about texts:
any task gives it the lengths and a ``collate(indices) -> batch`` function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from textrnn.collate import bucket_batches, epoch_generator


def token_budget_batches(
    lengths: Sequence[int],
    batch_size: int,
    max_tokens: int,
    shuffle: bool,
    generator: torch.Generator | None = None,
    bucket_size_multiplier: int = 50,
) -> list[list[int]]:
    """Like :func:`~textrnn.collate.bucket_batches`, but a batch also holds at most
    ``max_tokens`` padded positions (rows x its longest length; a single longer row is
    still a batch of its own), so long texts come in smaller batches.

    Returns:
        Batches of indices, longest first within a batch; every index appears once.

    >>> token_budget_batches([1, 5, 2, 6, 3, 7], batch_size=3, max_tokens=12, shuffle=False)
    [[5], [3, 1], [4, 2, 0]]
    >>> token_budget_batches([30, 2], batch_size=8, max_tokens=10, shuffle=False)
    [[0], [1]]
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    batches = []
    # One bucket_batches call with batch_size = the whole chunk gives the shuffled,
    # length-sorted chunks; cut each by both limits.
    chunk_size = batch_size * bucket_size_multiplier
    for chunk in bucket_batches(lengths, chunk_size, shuffle, generator, 1):
        batch: list[int] = []
        for i in chunk:  # longest first, so the first row of a batch sets its width
            width = lengths[batch[0]] if batch else lengths[i]
            if batch and (len(batch) == batch_size or (len(batch) + 1) * width > max_tokens):
                batches.append(batch)
                batch = []
            batch.append(i)
        if batch:
            batches.append(batch)
    if shuffle:
        order = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in order]
    return batches


class BucketBatches:
    """Re-iterable length-bucketed batches, shuffled anew (and reproducibly) every epoch.

    Args:
        lengths: the length of each example (e.g. tokens per text); index i is example i.
        collate: turns a list of example indices into one batch (a dict of tensors).
        batch_size: the most examples in a batch.
        shuffle: shuffle (training); otherwise the batches are a fixed function of
            ``lengths`` (evaluation).
        seed: with ``set_epoch``, picks the shuffle: epoch e of seed s is always the same.
        max_tokens: if given, also cap rows x longest row per batch (long texts get
            smaller batches); then ``len()`` may differ by a few batches between epochs.
        bucket_size_multiplier: how many batches' worth of examples are sorted together;
            larger pads less and shuffles less.

    >>> batches = BucketBatches([3, 1, 2, 5], collate=list, batch_size=2)
    >>> list(batches), len(batches)
    ([[3, 0], [2, 1]], 2)
    """

    def __init__(
        self,
        lengths: Sequence[int],
        collate: Callable[[list[int]], object],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        max_tokens: int | None = None,
        bucket_size_multiplier: int = 50,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths = list(lengths)
        self.collate = collate
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.max_tokens = max_tokens
        self.bucket_size_multiplier = bucket_size_multiplier
        self.epoch = 0
        self._plan: list[list[int]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s shuffle from now on (``fit`` calls this before each epoch)."""
        if epoch != self.epoch:
            self.epoch, self._plan = epoch, None

    def batches(self) -> list[list[int]]:
        """This epoch's batches, as lists of example indices."""
        if self._plan is None:
            generator = epoch_generator(self.seed, self.epoch)
            args = (self.lengths, self.batch_size)
            if self.max_tokens is None:
                self._plan = bucket_batches(*args, self.shuffle, generator,
                                            self.bucket_size_multiplier)
            else:
                self._plan = token_budget_batches(*args, self.max_tokens, self.shuffle,
                                                  generator, self.bucket_size_multiplier)
        return self._plan

    def __len__(self) -> int:
        return len(self.batches())

    def __iter__(self) -> Iterator:
        for indices in self.batches():
            yield self.collate(indices)

    def shard(self, keep: set[int] | range) -> Iterator[tuple[int, object | None]]:
        """This epoch's batches as ``(rows, batch)``, collating only the ``i``-th where
        ``i in keep``; the others come as ``(rows, None)``. One rank's share of the epoch
        under DDP (:class:`~textrnn.distributed.RoundRobin`), the other ranks' unbuilt.

        >>> batches = BucketBatches([3, 1, 2, 5], collate=list, batch_size=2)
        >>> list(batches.shard({1}))
        [(2, None), (2, [2, 1])]
        """
        for i, indices in enumerate(self.batches()):
            yield len(indices), self.collate(indices) if i in keep else None

    def padding_fraction(self) -> float:
        """The share of padded positions in this epoch's batches (0 = none)."""
        real = padded = 0
        for batch in self.batches():
            sizes = [self.lengths[i] for i in batch]
            real += sum(sizes)
            padded += len(sizes) * max(sizes, default=0)
        return 1 - real / padded if padded else 0.0
