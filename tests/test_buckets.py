"""Length-bucketed batching: every example once, little padding, a new seeded shuffle per epoch."""

from __future__ import annotations

import random

import pytest
import torch

from textrnn.data.buckets import BucketBatches, token_budget_batches


@pytest.fixture
def lengths() -> list[int]:
    rng = random.Random(0)
    return [rng.choice([rng.randint(3, 40), rng.randint(100, 900)]) for _ in range(1000)]


def _flat(batches):
    return sorted(i for batch in batches for i in batch)


def test_every_example_once_and_batch_sizes(lengths):
    batches = BucketBatches(lengths, collate=list, batch_size=32, shuffle=True, seed=1)
    plan = list(batches)
    assert _flat(plan) == list(range(len(lengths)))
    assert max(len(b) for b in plan) == 32 and len(plan) == len(batches)
    assert sum(len(b) < 32 for b in plan) <= 1  # chunks of 50 batches: only the last is short


def test_buckets_pad_far_less_than_random_batches(lengths):
    bucketed = BucketBatches(lengths, collate=list, batch_size=32, shuffle=True, seed=1)
    rng = random.Random(0)
    order = rng.sample(range(len(lengths)), len(lengths))
    random_batches = [order[i:i + 32] for i in range(0, len(order), 32)]
    real = sum(lengths)
    random_padded = sum(len(b) * max(lengths[i] for i in b) for b in random_batches)
    assert bucketed.padding_fraction() < 0.1 < 1 - real / random_padded


def test_each_epoch_reshuffles_reproducibly(lengths):
    a = BucketBatches(lengths, collate=list, batch_size=16, shuffle=True, seed=3)
    b = BucketBatches(lengths, collate=list, batch_size=16, shuffle=True, seed=3)
    first = list(a)
    assert list(a) == first  # re-iterating an epoch gives the same batches
    a.set_epoch(1)
    b.set_epoch(1)
    second = list(a)
    assert second != first and second == list(b)
    a.set_epoch(0)
    assert list(a) == first
    other_seed = BucketBatches(lengths, collate=list, batch_size=16, shuffle=True, seed=4)
    assert list(other_seed) != first


def test_unshuffled_batches_are_fixed_and_sorted_within(lengths):
    batches = list(BucketBatches(lengths, collate=list, batch_size=8))
    assert batches == list(BucketBatches(lengths, collate=list, batch_size=8))
    for batch in batches:
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)


def test_token_budget_caps_rows_times_longest(lengths):
    g = torch.Generator().manual_seed(0)
    plan = token_budget_batches(lengths, batch_size=64, max_tokens=4000, shuffle=True,
                                generator=g)
    assert _flat(plan) == list(range(len(lengths)))
    for batch in plan:
        width = max(lengths[i] for i in batch)
        assert len(batch) <= 64 and (len(batch) * width <= 4000 or len(batch) == 1)
    sizes = {lengths[b[0]] < 50: len(b) for b in plan}
    assert sizes[True] > sizes[False]  # short texts come in bigger batches
    lone = token_budget_batches([50, 5000, 50], batch_size=8, max_tokens=100, shuffle=False)
    assert lone == [[1], [0, 2]]  # a text over the budget is a batch of its own


def test_collate_gets_the_indices_and_errors():
    batches = BucketBatches([2, 9, 4], collate=lambda idx: {"n": len(idx), "idx": idx},
                            batch_size=2)
    assert list(batches) == [{"n": 2, "idx": [1, 2]}, {"n": 1, "idx": [0]}]
    with pytest.raises(ValueError, match="batch_size"):
        BucketBatches([1], collate=list, batch_size=0)
    with pytest.raises(ValueError, match="max_tokens"):
        token_budget_batches([1], batch_size=1, max_tokens=0, shuffle=False)
