"""Greedy and beam search: exact against exhaustive search, beam 1 = greedy, batch-independent."""

from __future__ import annotations

import itertools

import pytest
import torch

from textrnn import models
from textrnn.collate import pad_sequences
from textrnn.decode import beam_search, greedy_search, length_limits, translate_batches
from textrnn.models.seq2seq import Seq2Seq, Seq2SeqConfig

PAD, UNK, BOS, EOS = 0, 1, 2, 3
BANNED = (PAD, BOS)


def tiny_model(attention: str, tgt_vocab_size: int, seed: int = 0, cell: str = "gru") -> Seq2Seq:
    torch.manual_seed(seed)
    config = Seq2SeqConfig(src_vocab_size=12, tgt_vocab_size=tgt_vocab_size, attention=attention,
                           cell=cell, embedding_size=8, hidden_size=16, dropout=0.0)
    model = models.build("seq2seq", config, {}).eval()
    with torch.no_grad():  # sharper distributions than the default init, so searches differ
        model.out.weight.mul_(4.0)
    return model


def random_sources(n: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 9, (n,), generator=g).tolist()
    return [torch.randint(4, 12, (k,), generator=g).tolist() for k in lengths]


@torch.no_grad()
def sequence_log_probs(model: Seq2Seq, src: list[int], outputs: list[list[int]]) -> list[float]:
    """log p(ys | src) of each ys, by one teacher-forced forward pass (no decoding code)."""
    n = len(outputs)
    src_t, lengths = pad_sequences([src] * n)
    tgt_in, _ = pad_sequences([[BOS, *ys[:-1]] for ys in outputs])  # (N, T)
    tgt_out, _ = pad_sequences(outputs)  # (N, T); 0 = <pad> past each end
    logits, _ = model(src_t, lengths, tgt_in)  # (N, T, V)
    logp = torch.log_softmax(logits.float(), -1).gather(-1, tgt_out.unsqueeze(-1))[..., 0]
    return (logp * (tgt_out != PAD)).sum(1).tolist()  # (N,)


def exhaustive_best(model, src, max_len, length_penalty, allowed):
    """Score every output of at most max_len tokens: ended by <eos>, or cut at max_len."""
    words = [t for t in allowed if t != EOS]
    outputs, shown = [], []
    for n in range(max_len + 1):
        for prefix in itertools.product(words, repeat=n):
            ys = list(prefix) + ([EOS] if n < max_len else [])
            if ys:
                outputs.append(ys)
                shown.append(list(prefix))
    scores = [lp / len(ys) ** length_penalty
              for lp, ys in zip(sequence_log_probs(model, src, outputs), outputs, strict=True)]
    best = max(range(len(scores)), key=scores.__getitem__)
    return scores[best], shown[best]


@pytest.mark.parametrize("attention,length_penalty", [("general", 1.0), ("additive", 0.0),
                                                      ("none", 0.5)])
def test_beam_search_equals_exhaustive_search(attention, length_penalty):
    model = tiny_model(attention, tgt_vocab_size=6, seed=3)  # can emit <unk>, <eos>, 4, 5
    allowed = [t for t in range(6) if t not in BANNED]
    max_len = 4
    for src in ([4, 5, 6], [7, 8, 9, 10, 11]):
        score, tokens = exhaustive_best(model, src, max_len, length_penalty, allowed)
        src_t, lengths = pad_sequences([src])
        # 27 live prefixes x 4 tokens = 108 extensions at most: a beam of 128 keeps them all.
        hyp = beam_search(model, src_t, lengths, beam_size=128, bos_id=BOS, eos_id=EOS,
                          max_len=max_len, length_penalty=length_penalty, banned=BANNED)[0]
        assert hyp.tokens == tokens
        assert hyp.score == pytest.approx(score, abs=1e-5)


def test_small_beam_never_beats_exhaustive_and_finds_better_than_greedy_somewhere():
    model = tiny_model("general", tgt_vocab_size=6, seed=5)
    allowed = [t for t in range(6) if t not in BANNED]
    sources = random_sources(12, seed=1)
    src, lengths = pad_sequences(sources)
    greedy = greedy_search(model, src, lengths, bos_id=BOS, eos_id=EOS, max_len=4,
                           banned=BANNED)
    beam = beam_search(model, src, lengths, beam_size=3, bos_id=BOS, eos_id=EOS, max_len=4,
                       banned=BANNED)
    improved = 0
    for s, g, b in zip(sources, greedy, beam, strict=True):
        best, _ = exhaustive_best(model, s, 4, 1.0, allowed)
        assert b.score <= best + 1e-5
        assert b.score >= g.score - 1e-5  # the greedy path is among beam 3's candidates
        improved += b.score > g.score + 1e-6
    assert improved > 0


@pytest.mark.parametrize("attention,cell", [("general", "gru"), ("dot", "lstm"),
                                            ("none", "gru")])
def test_beam_one_equals_greedy(attention, cell):
    model = tiny_model(attention, tgt_vocab_size=30, seed=7, cell=cell)
    sources = random_sources(20, seed=2)
    src, lengths = pad_sequences(sources)
    options = dict(bos_id=BOS, eos_id=EOS, banned=BANNED, return_attention=attention != "none")
    greedy = greedy_search(model, src, lengths, **options)
    beam = beam_search(model, src, lengths, beam_size=1, **options)
    assert [h.tokens for h in greedy] == [h.tokens for h in beam]
    assert any(len(h.tokens) > 3 for h in greedy)  # not a trivial all-<eos> model
    for g, b in zip(greedy, beam, strict=True):
        assert g.log_prob == pytest.approx(b.log_prob, abs=1e-4)
        assert g.score == pytest.approx(b.score, abs=1e-4)
        if attention != "none":
            torch.testing.assert_close(g.attention, b.attention)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_translation_does_not_depend_on_the_batch(beam_size):
    model = tiny_model("additive", tgt_vocab_size=30, seed=11)
    sources = random_sources(40, seed=3)
    options = dict(bos_id=BOS, eos_id=EOS, banned=BANNED, beam_size=beam_size)
    alone = translate_batches(model, sources, batch_size=1, **options)
    together = translate_batches(model, sources, batch_size=32, **options)
    assert [h.tokens for h in alone] == [h.tokens for h in together]
    assert len({tuple(h.tokens) for h in alone}) > 5  # varied outputs, so the test can fail
    for a, t in zip(alone, together, strict=True):
        assert a.score == pytest.approx(t.score, abs=1e-4)


def test_length_limits_and_max_len():
    model = tiny_model("dot", tgt_vocab_size=30, seed=1)
    with torch.no_grad():  # never end: every output runs to its limit
        model.out.bias[EOS] = -1e4
    sources = [[4], [4, 5, 6, 7]]
    src, lengths = pad_sequences(sources)
    assert length_limits(lengths, None) == [12, 18]
    for search in (greedy_search, beam_search):
        kwargs = {"beam_size": 3} if search is beam_search else {}
        hyps = search(model, src, lengths, bos_id=BOS, eos_id=EOS, banned=BANNED, **kwargs)
        assert [len(h.tokens) for h in hyps] == [12, 18]
        hyps = search(model, src, lengths, bos_id=BOS, eos_id=EOS, banned=BANNED, max_len=5,
                      **kwargs)
        assert [len(h.tokens) for h in hyps] == [5, 5]
        assert all(BOS not in h.tokens and PAD not in h.tokens for h in hyps)


def ngrams(tokens, n):
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("eos_bias", [0.0, 8.0])  # outputs that loop; outputs that end at once
def test_no_repeat_ngram_and_min_len(beam_size, eos_bias):
    model = tiny_model("general", tgt_vocab_size=7, seed=4)  # few tokens: repeats are likely
    with torch.no_grad():
        model.out.bias[EOS] += eos_bias
    sources = random_sources(30, seed=5)
    options = dict(bos_id=BOS, eos_id=EOS, banned=BANNED, beam_size=beam_size)
    free = translate_batches(model, sources, **options)
    repeats = sum(len(set(ngrams(h.tokens, 2))) < len(ngrams(h.tokens, 2)) for h in free)
    short = sum(len(h.tokens) < 2 for h in free)
    assert (repeats > 10) if eos_bias == 0 else (short > 10)  # the constraints have work to do
    kept = translate_batches(model, sources, no_repeat_ngram=2, min_len=2, **options)
    for h in kept:
        assert len(set(ngrams(h.tokens, 2))) == len(ngrams(h.tokens, 2))
        assert len(h.tokens) >= 2
    # Off (0) is the unconstrained search.
    same = translate_batches(model, sources, no_repeat_ngram=0, min_len=0, **options)
    assert [h.tokens for h in same] == [h.tokens for h in free]


def test_tied_embeddings_share_one_matrix():
    tied, untied = (Seq2Seq(Seq2SeqConfig(src_vocab_size=12, tgt_vocab_size=30,
                                          embedding_size=8, hidden_size=16,
                                          tie_embeddings=tie)) for tie in (True, False))
    assert tied.out.weight is tied.tgt_embedding.weight and tied.out.in_features == 8
    assert untied.out.weight is not untied.tgt_embedding.weight
    assert untied.out.in_features == 16
    n_tied = sum(p.numel() for p in tied.parameters())  # parameters() counts shared ones once
    assert n_tied < sum(p.numel() for p in untied.parameters()) - 30 * 8


def test_coverage_penalty_changes_some_choices_and_needs_attention():
    options = dict(bos_id=BOS, eos_id=EOS, banned=BANNED, beam_size=4)
    sources = random_sources(30, seed=6)
    model = tiny_model("general", tgt_vocab_size=30, seed=7)
    with torch.no_grad():  # outputs that end early, leaving most of the source uncovered
        model.out.bias[EOS] += 4.0
    plain = translate_batches(model, sources, **options)
    assert [h.tokens for h in translate_batches(model, sources, coverage_penalty=0.0,
                                                **options)] == [h.tokens for h in plain]
    covered = translate_batches(model, sources, coverage_penalty=5.0, **options)
    assert any(c.tokens != p.tokens for c, p in zip(covered, plain, strict=True))
    # Longer outputs attend more, so they cover more of the source.
    assert sum(len(h.tokens) for h in covered) > 2 * sum(len(h.tokens) for h in plain)
    none = tiny_model("none", tgt_vocab_size=30, seed=7)  # no attention: no coverage
    assert [h.tokens for h in translate_batches(none, sources, coverage_penalty=5.0,
                                                **options)] == [
        h.tokens for h in translate_batches(none, sources, **options)]
