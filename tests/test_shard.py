"""Under DDP each rank builds only its own batches of an epoch (the batchers' ``shard``),
and they are exactly the ones it kept from the whole epoch before: same order, same
random draws (slot numbering, word replacement), the same steps, shares and positions.

Every batcher here has 7 rows a batch over a number of rows that leaves a short last
batch, so that with 2 and 3 ranks an epoch's last step leaves a rank without a batch.
"""

from __future__ import annotations

import random

import pytest
import torch

from textrnn.data import qa_batches
from textrnn.data.babi import parse_babi
from textrnn.data.classifier_batches import label_vocab, make_batches
from textrnn.data.conll import TaggedSentence
from textrnn.data.entities import entity_words
from textrnn.data.pairs import PairBatches
from textrnn.data.sentiment import LabeledText
from textrnn.data.tagger_batches import TaggerBatches, build_vocabs
from textrnn.data.text import StreamBatches
from textrnn.distributed import RoundRobin, shard
from textrnn.vocab import Vocab

LINES = ["1 Mary went to the garden.", "2 John moved to the office.",
         "3 Where is Mary?\tgarden\t1", "4 Is John in the garden?\tno\t2",
         "1 Sandra is hungry.", "2 Where will sandra go?\tkitchen\t1",
         "1 Daniel took the milk.", "2 Daniel went to the hallway.",
         "3 Where is the milk?\thallway\t1 2"]
WORDS = "the a good film plot was dull and very fine acting bad".split()


def qa(**options) -> qa_batches.QABatches:
    """124 questions (18 batches) with entity slots: training hides known names at random."""
    examples = parse_babi(LINES) * 31
    words, answers = qa_batches.build_vocabs(examples, entity_slots=4)
    return qa_batches.QABatches(examples, words, answers, batch_size=7, seed=3,
                                entity_slots=4, entities=frozenset(entity_words(examples)),
                                **options)


def classifier(**options):
    """50 texts of 2 to 12 words (8 batches, or more under a token budget)."""
    rng = random.Random(0)
    texts = [LabeledText(" ".join(rng.choices(WORDS, k=rng.randint(2, 12))),
                         rng.choice(["pos", "neg"])) for _ in range(50)]
    words = Vocab.from_tokens([WORDS])
    return make_batches(texts, words, label_vocab(["pos", "neg"]), 7, seed=3, **options)


def tagger(**options) -> TaggerBatches:
    """47 sentences (7 batches), with singleton replacement and word dropout."""
    rng = random.Random(1)
    sentences = []
    for i in range(47):
        tokens = [*rng.choices(WORDS, k=rng.randint(1, 9)), f"Name{i % 9}"]
        sentences.append(TaggedSentence(tokens, ["O"] * (len(tokens) - 1) + ["B-PER"]))
    vocabs = build_vocabs(sentences, lowercase=True, zero_digits=True)
    return TaggerBatches(sentences, vocabs, 7, lowercase=True, zero_digits=True,
                         max_word_chars=30, context="sentence", max_context_tokens=1500,
                         seed=3, **options)


def pairs(**options) -> PairBatches:
    """40 pairs (6 batches)."""
    rng = random.Random(2)
    ids = [([rng.randint(4, 20) for _ in range(rng.randint(1, 8))],
            [rng.randint(4, 20) for _ in range(rng.randint(1, 8))]) for _ in range(40)]
    return PairBatches(ids, 2, 3, batch_size=7, seed=3, **options)


BATCHERS = {
    "qa": lambda: qa(shuffle=True, entity_dropout=0.7),
    "qa-bucketed": lambda: qa(shuffle=True, entity_dropout=0.7, bucket=2),
    "qa-in-order": lambda: qa(),
    "classifier": lambda: classifier(shuffle=True),
    "classifier-token-budget": lambda: classifier(shuffle=True, max_batch_tokens=40),
    "tagger": lambda: tagger(shuffle=True, unk_replace=0.5, word_dropout=0.3, lm_vocab=8),
    "seq2seq": lambda: pairs(shuffle=True),
}


class Whole:
    """The batches without their ``shard``: RoundRobin collates the whole epoch and keeps
    its share, as every rank did before ``shard``."""

    def __init__(self, data) -> None:
        self.data = data

    def set_epoch(self, epoch: int) -> None:
        self.data.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        return iter(self.data)


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        same = torch.equal(a[key], b[key]) if isinstance(a[key], torch.Tensor) else a[key] == b[key]
        assert same, key


@pytest.mark.parametrize("name", sorted(BATCHERS))
def test_a_ranks_sharded_batches_are_its_share_of_the_whole_epoch(name):
    data = BATCHERS[name]()
    firsts = []
    for epoch in (0, 1):
        data.set_epoch(epoch)
        for world in (1, 2, 3):
            for rank in range(world):
                for start in (0, world + 1):  # from the start, and resumed mid-epoch
                    sharded = list(RoundRobin(data, rank, world).steps(start))
                    whole = list(RoundRobin(Whole(data), rank, world).steps(start))
                    assert len(sharded) == len(whole) > 0
                    for mine, kept in zip(sharded, whole, strict=True):
                        assert (mine.position, mine.share) == (kept.position, kept.share)
                        assert_same(mine.batch, kept.batch)
        firsts.append(next(iter(data)))
    if name != "qa-in-order":  # re-shuffled every epoch
        assert not all(torch.equal(firsts[0][k], firsts[1][k]) for k in firsts[0])


def test_ranks_deal_out_every_batch_once_and_the_last_step_fills_in():
    assert [sorted(RoundRobin([], r, 2).mine(7)) for r in range(2)] == [[0, 2, 4, 6],
                                                                       [1, 3, 5, 6]]
    assert [sorted(RoundRobin([], r, 3).mine(7, start=2)) for r in range(3)] == [
        [2, 5], [3, 6], [4, 5]]  # steps 2-4 and 5-6; rank 2 runs 5 again with share 0
    assert RoundRobin([], 1, 2).mine(3, start=3) == set()


def _count(calls: list, collate):
    def counted(*args, **kwargs):
        calls.append(args[0])
        return collate(*args, **kwargs)
    return counted


@pytest.mark.parametrize("name", ["classifier", "seq2seq", "tagger", "qa"])
def test_a_rank_collates_only_its_own_batches(name, monkeypatch):
    data, calls = BATCHERS[name](), []
    if name == "qa":  # every batch is gathered from the encoded examples
        monkeypatch.setattr(qa_batches, "_gather", _count(calls, qa_batches._gather))
    elif name == "tagger":
        data._collate = _count(calls, data._collate)
    else:
        data.collate = _count(calls, data.collate)
    data.set_epoch(1)
    n = len(data)
    whole = list(data)
    assert len(calls) == n
    for rank in range(3):
        calls.clear()
        robin = RoundRobin(data, rank, 3)
        steps = list(robin.steps())
        # its batches of the epoch, and in the last step rank 0's where it has none
        assert len(calls) == len(robin.mine(n)) == len(steps) < n / 2
        for step, i in zip(steps, sorted(robin.mine(n)), strict=True):
            assert_same(step.batch, whole[i])


def test_lm_ranks_read_their_piece_of_every_stream_without_collating_the_others(monkeypatch):
    data = StreamBatches(torch.arange(70), batch_size=2, bptt=4)  # 2 rows of 35 tokens
    monkeypatch.setattr(StreamBatches, "__iter__", lambda self: pytest.fail("iterated"))
    world, n_inputs = 3, (35 - 1) // 3  # 11 inputs a piece: windows of 4, 4, 3
    for rank in range(world):
        steps = list(shard(data, rank, world).steps())
        first = rank * n_inputs
        assert torch.equal(torch.cat([s.batch["x"] for s in steps], 1),
                           data.data[:, first : first + n_inputs])  # (B, 11)
        assert torch.equal(torch.cat([s.batch["y"] for s in steps], 1),
                           data.data[:, first + 1 : first + n_inputs + 1])
        assert [s.batch["reset"] for s in steps] == [True, False, False]
        assert all(s.share == 1.0 for s in steps)
        later = list(shard(data, rank, world).steps(start=2))  # resumed after 2 windows
        assert [s.position for s in later] == [3] and torch.equal(later[0].batch["x"],
                                                                  steps[2].batch["x"])
