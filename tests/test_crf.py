"""The linear-chain CRF against brute-force enumeration of every tag path."""

from __future__ import annotations

import itertools

import pytest
import torch

from textrnn.crf import CRF, FORBIDDEN, bio_allowed


def brute_force(crf: CRF, emissions: torch.Tensor, n: int):
    """Every path of length n of one sentence: (log Z, best path, score function)."""
    A, start, end = crf._scores()

    def score(path) -> torch.Tensor:
        s = start[path[0]] + end[path[-1]]
        for t, tag in enumerate(path):
            s = s + emissions[t, tag]
            if t:
                s = s + A[path[t - 1], tag]
        return s

    paths = list(itertools.product(range(crf.num_tags), repeat=n))
    scores = torch.stack([score(p) for p in paths])
    return torch.logsumexp(scores, 0), list(paths[int(scores.argmax())]), score


@pytest.fixture
def crf_batch():
    """A CRF of 4 tags, 3 sentences of lengths 4, 2 and 1 padded to 4, in float64."""
    torch.manual_seed(0)
    crf = CRF(4).double()
    with torch.no_grad():  # scores far from the uniform init, so paths differ clearly
        for p in crf.parameters():
            p.normal_(0, 1.0)
    emissions = torch.randn(3, 4, 4, dtype=torch.float64) * 2  # (B, T, K)
    lengths = torch.tensor([4, 2, 1])
    mask = torch.arange(4).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    tags = torch.randint(0, 4, (3, 4))
    return crf, emissions, mask, lengths, tags


def test_partition_score_and_viterbi_match_enumeration(crf_batch):
    crf, emissions, mask, lengths, tags = crf_batch
    log_z = crf.log_partition(emissions, mask)
    gold = crf.score(emissions, tags, mask)
    best = crf.viterbi(emissions, mask)
    for b, n in enumerate(lengths.tolist()):
        z, path, score = brute_force(crf, emissions[b, :n], n)
        torch.testing.assert_close(log_z[b], z)
        torch.testing.assert_close(gold[b], score(tags[b, :n].tolist()))
        assert best[b] == path and len(best[b]) == n
    assert (crf.nll(emissions, tags, mask) > 0).all()


def test_marginals_match_enumeration(crf_batch):
    crf, emissions, mask, lengths, _ = crf_batch
    with torch.no_grad():  # as at inference
        marginals = crf.marginals(emissions, mask)  # (B, T, K)
    for b, n in enumerate(lengths.tolist()):
        log_z, _, score = brute_force(crf, emissions[b, :n], n)
        expected = torch.zeros(n, crf.num_tags, dtype=torch.float64)
        for path in itertools.product(range(crf.num_tags), repeat=n):
            p = torch.exp(score(path) - log_z)
            for t, tag in enumerate(path):
                expected[t, tag] += p
        torch.testing.assert_close(marginals[b, :n], expected)
        assert marginals[b, n:].eq(0).all()


def test_padding_changes_nothing(crf_batch):
    """Garbage in the padded emissions and tags must not move any result."""
    crf, emissions, mask, _, tags = crf_batch
    noisy = emissions.masked_fill(~mask.unsqueeze(2), 1e3)
    noisy_tags = tags.masked_fill(~mask, 3)
    torch.testing.assert_close(crf.log_partition(noisy, mask), crf.log_partition(emissions, mask))
    torch.testing.assert_close(crf.score(noisy, noisy_tags, mask), crf.score(emissions, tags, mask))
    assert crf.viterbi(noisy, mask) == crf.viterbi(emissions, mask)


def test_gradient_matches_finite_differences(crf_batch):
    crf, emissions, mask, _, tags = crf_batch
    emissions = emissions.requires_grad_()
    assert torch.autograd.gradcheck(lambda e: crf.nll(e, tags, mask), (emissions,))


def test_probabilities_of_all_paths_sum_to_one():
    torch.manual_seed(1)
    crf = CRF(3).double()
    emissions = torch.randn(1, 3, 3, dtype=torch.float64)
    mask = torch.ones(1, 3, dtype=torch.bool)
    total = sum(
        torch.exp(-crf.nll(emissions, torch.tensor([p]), mask))
        for p in itertools.product(range(3), repeat=3)
    )
    torch.testing.assert_close(total, torch.ones(1, dtype=torch.float64))


def test_bio_constraints_bar_invalid_paths():
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    crf = CRF(len(tags), bio_allowed(tags))
    # Emissions that shout for the invalid "O I-PER I-LOC".
    emissions = torch.full((1, 3, 5), -5.0)
    emissions[0, 0, 0] = emissions[0, 1, 2] = emissions[0, 2, 4] = 5.0
    path = [tags[i] for i in crf.viterbi(emissions, torch.ones(1, 3, dtype=torch.bool))[0]]
    assert path[0] in ("O", "B-PER", "B-LOC")
    for previous, tag in zip(path, path[1:], strict=False):
        assert not tag.startswith("I-") or previous[2:] == tag[2:]
    A, start, _ = crf._scores()
    assert A[0, 2] == FORBIDDEN and A[1, 2] != FORBIDDEN and start[4] == FORBIDDEN
