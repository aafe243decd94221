"""The Recurrent Entity Network: the cell against its equations (float64 gradcheck), the
memory loop against a plain per-example loop, and training through the QA contract."""

from __future__ import annotations

import pytest
import torch
from test_qa import toy_setup, train

from textrnn.models.entnet import EntNetCell, entnet_memory


def test_cell_follows_the_equations_and_passes_gradcheck():
    torch.manual_seed(0)
    B, M, d = 2, 3, 4
    cell = EntNetCell(d).double()
    s, h, keys = (torch.randn(*shape, dtype=torch.double, requires_grad=True)
                  for shape in ((B, d), (B, M, d), (M, d)))
    h_new, g = cell(s, h, keys)
    # the paper's equations, slot by slot
    for b in range(B):
        for j in range(M):
            gate = torch.sigmoid(s[b] @ h[b, j] + s[b] @ keys[j])
            pre = cell.U.weight @ h[b, j] + cell.V.weight @ keys[j] + cell.W.weight @ s[b]
            cand = torch.where(pre >= 0, pre, cell.phi.weight * pre)
            expect = h[b, j] + gate * cand
            assert torch.allclose(g[b, j], gate)
            assert torch.allclose(h_new[b, j], expect / expect.norm())
    assert torch.autograd.gradcheck(lambda s, h, k: cell(s, h, k)[0], (s, h, keys))


def test_memory_reads_real_sentences_only_and_matches_a_plain_loop():
    torch.manual_seed(0)
    cell = EntNetCell(4)
    keys = torch.randn(3, 4)
    sentences = torch.randn(2, 5, 4)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    h, gates = entnet_memory(cell, sentences, mask, keys, keys.expand(2, -1, -1))
    for b, n in enumerate(mask.sum(1).tolist()):
        state = keys.clone()
        for t in range(n):  # one example, no padding, as the equations say
            state, g = cell(sentences[b: b + 1, t], state.unsqueeze(0), keys)
            state = state[0]
            assert torch.allclose(gates[b, t], g[0])
        assert torch.allclose(h[b], state, atol=1e-6)
    assert (gates[1, 2:] == 0).all()


@pytest.mark.parametrize("slots", [4])
def test_entnet_learns_toy_stories_and_shows_evidence(slots):
    model, batches, *_ = toy_setup("entnet", n=128, memory_slots=slots)
    means = train(model, batches, epochs=6, lr=0.02)
    assert means[-1] < 0.9 * means[0]
    batch = next(iter(batches))
    for pred, n in zip(model.predict(batch), batch["story_lengths"].tolist(), strict=True):
        assert len(pred["attention"]) == n
        assert abs(sum(pred["attention"]) - 1) < 1e-4 if n else pred["attention"] == []
