"""Turn lists of token ids into padded tensors, lengths, masks and batches.

These are the only tensor builders the data pipeline needs; every task's
collate function is a few calls to them. Everything is batch-first::

    seqs = [[5, 6, 7], [8], []]      pad_sequences(seqs)  ->  ids (B=3, T=3)
                                      [[5, 6, 7],
                                       [8, 0, 0],            lengths = [3, 1, 0]
                                       [0, 0, 0]]
                                      lengths_to_mask(lengths) -> True where real

Padding uses ``pad_id`` (0 by default, which is ``<pad>`` in a
:class:`textrnn.vocab.Vocab`). Models must ignore padded positions through
``lengths`` or the mask, never by looking for the pad id.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

IGNORE_INDEX = -100  # a target the loss skips (torch's cross_entropy default): unknown answers


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The one random stream that shuffles epoch ``epoch`` of a run seeded with ``seed``.

    Every batcher draws its order from here, so no (seed, epoch) pair shares another's
    order (``seed + epoch`` would make seed 1, epoch 0 shuffle like seed 0, epoch 1), and
    the order never depends on the global RNG state.

    >>> a, b = epoch_generator(1, 0), epoch_generator(0, 1)
    >>> torch.equal(torch.randperm(10, generator=a), torch.randperm(10, generator=b))
    False
    """
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _as_ids(seq: Sequence[int]) -> torch.Tensor:
    """One sequence of ids as a 1-D long tensor; rejects nested input."""
    ids = torch.as_tensor(seq, dtype=torch.long)  # (T,)
    if ids.dim() != 1:
        raise ValueError(f"expected a flat sequence of ids, got shape {tuple(ids.shape)}")
    return ids


def pad_sequences(
    seqs: Sequence[Sequence[int]], pad_id: int = 0, max_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad variable-length id sequences into one tensor.

    Args:
        seqs: ``B`` sequences of token ids (lists or 1-D tensors); empty ones
            are allowed and get length 0.
        pad_id: the id written into padded positions.
        max_len: if given, truncate every sequence to at most this many ids
            (keeping the start).

    Returns:
        ``(ids, lengths)``: ids ``(B, T)`` long with
        ``T = max(lengths)``, and lengths ``(B,)`` long.

    Raises:
        ValueError: if ``max_len`` is negative.

    >>> ids, lengths = pad_sequences([[5, 6, 7], [8], []])
    >>> ids
    tensor([[5, 6, 7],
            [8, 0, 0],
            [0, 0, 0]])
    >>> lengths
    tensor([3, 1, 0])
    >>> pad_sequences([[1, 2, 3, 4], [5]], pad_id=9, max_len=2)[0]
    tensor([[1, 2],
            [5, 9]])
    """
    if max_len is not None and max_len < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    rows = [_as_ids(s)[:max_len] for s in seqs]
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)  # (B,)
    T = int(lengths.max()) if rows else 0
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)  # (B, T)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = row
    return ids, lengths


def pad_nested(
    seqs: Sequence[Sequence[Sequence[int]]], pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch of sentence lists (e.g. bAbI stories) into a 3-D tensor.

    Both the number of sentences and the words per sentence are padded::

        story 0: [[1, 2], [3]]      ->  [[1, 2], [3, 0]]      sentence_counts = [2,
        story 1: [[4, 5, 6]]        ->  [[4, 5, 6], [0, 0, 0]]                     1]

    Args:
        seqs: ``B`` items, each a list of sentences of token ids.
        pad_id: the id written into padded positions.

    Returns:
        ``(ids, sentence_counts)``: ids ``(B, S, W)`` long where ``S`` is the
        most sentences in an item and ``W`` the longest sentence, and
        sentence_counts ``(B,)`` long. Word positions inside a real sentence
        are padded with ``pad_id`` too; with ``pad_id`` reserved for padding,
        ``ids != pad_id`` is the word mask.

    >>> ids, counts = pad_nested([[[1, 2], [3]], [[4, 5, 6]], []])
    >>> ids.shape, counts
    (torch.Size([3, 2, 3]), tensor([2, 1, 0]))
    >>> ids[0]
    tensor([[1, 2, 0],
            [3, 0, 0]])
    """
    sentence_counts = torch.tensor([len(item) for item in seqs], dtype=torch.long)  # (B,)
    S = int(sentence_counts.max()) if len(seqs) else 0
    W = max((len(sentence) for item in seqs for sentence in item), default=0)
    ids = torch.full((len(seqs), S, W), pad_id, dtype=torch.long)  # (B, S, W)
    for b, item in enumerate(seqs):
        for s, sentence in enumerate(item):
            ids[b, s, : len(sentence)] = _as_ids(sentence)
    return ids, sentence_counts


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Boolean mask that is True at real (non-padded) positions.

    Args:
        lengths: ``(B,)`` integer tensor of sequence lengths.
        max_len: width ``T`` of the mask; defaults to ``lengths.max()``.

    Returns:
        ``(B, T)`` bool, ``mask[b, t] = t < lengths[b]``.

    >>> lengths_to_mask(torch.tensor([3, 1, 0]))
    tensor([[ True,  True,  True],
            [ True, False, False],
            [False, False, False]])
    >>> lengths_to_mask(torch.tensor([1]), max_len=3)
    tensor([[ True, False, False]])
    """
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    positions = torch.arange(max_len, device=lengths.device)  # (T,)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)


def bucket_batches(
    lengths: Sequence[int],
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None = None,
    bucket_size_multiplier: int = 50,
) -> list[list[int]]:
    """Group example indices into batches of similar length, to waste little padding.

    ::

        indices --(shuffle)--> chunks of batch_size * bucket_size_multiplier
                --sort each chunk by length--> split into batches
                --(shuffle batch order)--> list of batches

    Sorting only within chunks keeps some randomness in which examples meet
    in a batch; sorting the whole dataset would give the same batches every
    epoch. Within a batch indices go longest first, which also suits
    ``pack_padded_sequence(enforce_sorted=True)``.

    Args:
        lengths: the length of each example; index ``i`` is example ``i``.
        batch_size: examples per batch; only the last batch can be smaller.
        shuffle: shuffle examples before chunking and batches afterwards
            (training); otherwise the result is a fixed function of
            ``lengths`` (evaluation).
        generator: random source for shuffling; the same seed gives the same
            batches. ``None`` uses torch's global generator.
        bucket_size_multiplier: chunk size in batches; larger groups lengths
            more tightly but shuffles less.

    Returns:
        Batches of indices; every index in ``range(len(lengths))`` appears
        exactly once.

    Raises:
        ValueError: if ``batch_size`` or ``bucket_size_multiplier`` is < 1.

    >>> bucket_batches([1, 5, 2, 6, 3, 7], batch_size=2, shuffle=False)
    [[5, 3], [1, 4], [2, 0]]
    >>> g = torch.Generator().manual_seed(0)
    >>> batches = bucket_batches([1, 5, 2, 6, 3, 7], batch_size=4, shuffle=True, generator=g)
    >>> sorted(i for batch in batches for i in batch)
    [0, 1, 2, 3, 4, 5]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if bucket_size_multiplier < 1:
        raise ValueError(f"bucket_size_multiplier must be >= 1, got {bucket_size_multiplier}")
    n = len(lengths)
    if shuffle:
        order = torch.randperm(n, generator=generator).tolist()
    else:
        order = list(range(n))
    chunk_size = batch_size * bucket_size_multiplier
    batches = []
    for start in range(0, n, chunk_size):
        # sorted() is stable, so equal lengths keep their (shuffled) order.
        chunk = sorted(order[start : start + chunk_size], key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    if shuffle:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches
