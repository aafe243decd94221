"""Tests for textrnn.collate: padding, lengths, masks and length buckets."""

from __future__ import annotations

import random

import pytest
import torch

from textrnn.collate import bucket_batches, lengths_to_mask, pad_nested, pad_sequences


def test_pad_sequences_values_lengths_dtype() -> None:
    ids, lengths = pad_sequences([[5, 6, 7], [8], [], [9, 10]], pad_id=0)
    assert ids.dtype == lengths.dtype == torch.long
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0], [9, 10, 0]]
    assert lengths.tolist() == [3, 1, 0, 2]


def test_pad_sequences_custom_pad_and_tensor_input() -> None:
    ids, lengths = pad_sequences([torch.tensor([1, 2]), torch.tensor([3])], pad_id=-1)
    assert ids.tolist() == [[1, 2], [3, -1]]
    assert lengths.tolist() == [2, 1]


def test_pad_sequences_max_len_truncates() -> None:
    ids, lengths = pad_sequences([[1, 2, 3, 4], [5, 6], [7]], max_len=3)
    assert ids.tolist() == [[1, 2, 3], [5, 6, 0], [7, 0, 0]]
    assert lengths.tolist() == [3, 2, 1]
    # max_len bigger than the longest does not widen the batch.
    assert pad_sequences([[1, 2]], max_len=10)[0].shape == (1, 2)
    with pytest.raises(ValueError):
        pad_sequences([[1]], max_len=-1)


def test_pad_sequences_edge_cases() -> None:
    ids, lengths = pad_sequences([])
    assert ids.shape == (0, 0) and lengths.shape == (0,)
    ids, lengths = pad_sequences([[], []])
    assert ids.shape == (2, 0) and lengths.tolist() == [0, 0]
    with pytest.raises(ValueError, match="flat sequence"):
        pad_sequences([[[1, 2]]])  # type: ignore[list-item]


def test_pad_nested_story_of_sentences() -> None:
    stories = [[[1, 2], [3]], [[4, 5, 6]], []]
    ids, counts = pad_nested(stories, pad_id=0)
    assert ids.shape == (3, 2, 3) and ids.dtype == torch.long
    assert counts.tolist() == [2, 1, 0]
    assert ids[0].tolist() == [[1, 2, 0], [3, 0, 0]]
    assert ids[1].tolist() == [[4, 5, 6], [0, 0, 0]]
    assert ids[2].eq(0).all()
    # Every real word sits where it was, and nothing else is non-pad.
    assert int((ids != 0).sum()) == 6


def test_pad_nested_custom_pad() -> None:
    ids, counts = pad_nested([[[7], []]], pad_id=9)
    assert ids.tolist() == [[[7], [9]]]
    assert counts.tolist() == [2]


def test_lengths_to_mask() -> None:
    mask = lengths_to_mask(torch.tensor([3, 1, 0, 2]))
    assert mask.dtype == torch.bool
    assert mask.tolist() == [
        [True, True, True],
        [True, False, False],
        [False, False, False],
        [True, True, False],
    ]
    assert lengths_to_mask(torch.tensor([2]), max_len=4).tolist() == [[True, True, False, False]]
    assert lengths_to_mask(torch.tensor([], dtype=torch.long)).shape == (0, 0)


def test_mask_agrees_with_padding() -> None:
    seqs = [[3, 4, 5, 6], [7], [8, 9]]
    ids, lengths = pad_sequences(seqs, pad_id=0)
    mask = lengths_to_mask(lengths, max_len=ids.shape[1])
    assert mask.shape == ids.shape
    assert (ids != 0).equal(mask)  # no real id is 0 here, so the two must agree
    assert mask.sum(dim=1).equal(lengths)


def _flatten(batches: list[list[int]]) -> list[int]:
    return [i for batch in batches for i in batch]


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize(("n", "batch_size", "multiplier"), [(0, 4, 2), (1, 4, 2), (103, 8, 3)])
def test_bucket_batches_covers_every_index_once(
    shuffle: bool, n: int, batch_size: int, multiplier: int
) -> None:
    rng = random.Random(n)
    lengths = [rng.randint(1, 50) for _ in range(n)]
    g = torch.Generator().manual_seed(0)
    batches = bucket_batches(
        lengths, batch_size, shuffle, generator=g, bucket_size_multiplier=multiplier
    )
    flat = _flatten(batches)
    assert sorted(flat) == list(range(n))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert sum(len(b) < batch_size for b in batches) <= 1  # only one short batch


def test_bucket_batches_have_low_length_spread() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(1, 100) for _ in range(2000)]
    batch_size = 16
    g = torch.Generator().manual_seed(0)
    batches = bucket_batches(lengths, batch_size, shuffle=True, generator=g)

    def mean_spread(groups: list[list[int]]) -> float:
        spreads = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in groups]
        return sum(spreads) / len(spreads)

    order = list(range(len(lengths)))
    rng.shuffle(order)
    random_batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    # Random batches of 16 from U(1, 100) span ~85; bucketed ones span ~1.
    assert mean_spread(random_batches) > 70
    assert mean_spread(batches) < 5
    # Longest first within each batch.
    for b in batches:
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)


def test_bucket_batches_deterministic_per_seed() -> None:
    rng = random.Random(1)
    lengths = [rng.randint(1, 30) for _ in range(200)]

    def run(seed: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(seed)
        return bucket_batches(lengths, 8, shuffle=True, generator=g, bucket_size_multiplier=5)

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_bucket_batches_without_shuffle_is_fixed() -> None:
    lengths = [1, 5, 2, 6, 3, 7, 4]
    batches = bucket_batches(lengths, batch_size=3, shuffle=False)
    assert batches == [[5, 3, 1], [6, 4, 2], [0]]
    assert bucket_batches(lengths, batch_size=3, shuffle=False) == batches
    # One batch per chunk: sorting cannot cross chunk boundaries.
    chunked = bucket_batches(lengths, batch_size=2, shuffle=False, bucket_size_multiplier=1)
    assert chunked == [[1, 0], [3, 2], [5, 4], [6]]


def test_bucket_batches_shuffle_changes_batch_order() -> None:
    lengths = list(range(100))
    g = torch.Generator().manual_seed(0)
    shuffled = bucket_batches(lengths, 10, shuffle=True, generator=g, bucket_size_multiplier=100)
    fixed = bucket_batches(lengths, 10, shuffle=False, bucket_size_multiplier=100)
    # With one chunk the batch contents are the same; only their order moves.
    assert sorted(map(sorted, shuffled)) == sorted(map(sorted, fixed))
    assert shuffled != fixed


@pytest.mark.parametrize(
    "kwargs", [{"batch_size": 0}, {"batch_size": 2, "bucket_size_multiplier": 0}]
)
def test_bucket_batches_rejects_bad_sizes(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        bucket_batches([1, 2, 3], shuffle=False, **kwargs)
