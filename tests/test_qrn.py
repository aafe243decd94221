"""The Query-Reduction Network: the unit against its equations (float64 gradcheck), the
recurrence against a plain per-example loop in both directions, the evidence weights
against the final state they claim to decompose, and training through the QA contract."""

from __future__ import annotations

import pytest
import torch
from test_qa import toy_setup, train

from textrnn.models import qrn
from textrnn.models.qrn import (
    QRNCell,
    chunked_decayed_sum,
    decayed_sum,
    qrn_layer,
    scanned_sum,
    sentence_share,
)


@pytest.mark.parametrize("compare", [True, False])
@pytest.mark.parametrize("vector_gates", [False, True])
def test_cell_follows_the_equations_and_passes_gradcheck(vector_gates, compare):
    torch.manual_seed(0)
    B, S, d = 2, 3, 4
    cell = QRNCell(d, vector_gates, compare).double()
    x, q = (torch.randn(B, S, d, dtype=torch.double, requires_grad=True) for _ in range(2))
    z, r, candidate, log_keep = cell(x, q)
    assert torch.allclose(log_keep, torch.log1p(-z))
    assert z.shape == r.shape == (B, S, d if vector_gates else 1)
    for b in range(B):
        for t in range(S):
            xq = x[b, t] * q[b, t]
            assert torch.allclose(z[b, t], torch.sigmoid(cell.W_z.weight @ xq + cell.W_z.bias))
            assert torch.allclose(r[b, t], torch.sigmoid(cell.W_r.weight @ xq + cell.W_r.bias))
            read = [x[b, t], q[b, t], xq] if compare else [x[b, t], q[b, t]]
            h = torch.tanh(cell.W_h.weight @ torch.cat(read) + cell.W_h.bias)
            assert torch.allclose(candidate[b, t], h)
    assert torch.autograd.gradcheck(lambda x, q: torch.cat(cell(x, q), -1), (x, q))


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 8])
def test_chunked_sum_equals_the_whole_sum(chunk):
    """Chunks of every size, ones that do not divide S too, give the same states and
    gradients as the whole sum, and both follow the recurrence step by step."""
    torch.manual_seed(1)
    log_keep = (-torch.rand(3, 7, 5, dtype=torch.float64) * 4).requires_grad_()
    u = torch.randn(3, 7, 5, dtype=torch.float64, requires_grad=True)
    whole, chunked = decayed_sum(log_keep, u), chunked_decayed_sum(log_keep, u, chunk)
    assert torch.allclose(chunked, whole, atol=1e-12)
    g_whole = torch.autograd.grad(whole.square().sum(), (log_keep, u))
    g_chunked = torch.autograd.grad(chunked.square().sum(), (log_keep, u))
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(g_whole, g_chunked, strict=True))
    loop = torch.zeros(3, 5, dtype=torch.float64)  # the recurrence itself, step by step
    for t in range(7):
        loop = log_keep[:, t].exp() * loop + u[:, t]
        assert torch.allclose(chunked[:, t], loop, atol=1e-12)


def test_the_scan_equals_the_parallel_form_with_its_gradients():
    torch.manual_seed(2)
    log_keep = (-torch.rand(3, 7, 5, dtype=torch.float64) * 4).requires_grad_()
    u = torch.randn(3, 7, 5, dtype=torch.float64, requires_grad=True)
    for g in (5, 1):  # vector and scalar gates
        keep = log_keep[..., :g]
        scanned, whole = scanned_sum(keep, u), decayed_sum(keep, u)
        assert torch.allclose(scanned, whole, atol=1e-12)
        g_scan = torch.autograd.grad(scanned.square().sum(), (log_keep, u))
        g_whole = torch.autograd.grad(whole.square().sum(), (log_keep, u))
        assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(g_scan, g_whole, strict=True))
    assert scanned_sum(log_keep[:, :0], u[:, :0]).shape == (3, 0, 5)  # no sentences


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("vector_gates", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_layer_matches_a_plain_loop_and_padding_changes_nothing(reverse, vector_gates,
                                                                parallel, monkeypatch):
    monkeypatch.setattr(qrn, "CHUNK", 2)  # 5 sentences: three chunks, the last one padded
    torch.manual_seed(0)
    cell = QRNCell(4, vector_gates)
    x, q = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    h, z, _ = qrn_layer(cell, x, q, mask, reverse=reverse, parallel=parallel)
    for b, n in enumerate(mask.sum(1).tolist()):
        state = torch.zeros(4)
        for t in (reversed(range(n)) if reverse else range(n)):  # one example, no padding
            z_t, r_t, cand, _ = (v[0, 0] for v in cell(x[b: b + 1, t: t + 1],
                                                       q[b: b + 1, t: t + 1]))
            state = z_t * r_t * cand + (1 - z_t) * state
            assert torch.allclose(h[b, t], state, atol=1e-6)
    assert (z[1, 2:] == 0).all()
    h.sum().backward()  # the unrolled sum has finite gradients everywhere
    assert all(torch.isfinite(p.grad).all() for p in cell.parameters())
    if not reverse:  # the last real state is carried through the padding
        assert torch.allclose(h[1, -1], h[1, 1])
    else:  # reading from the end, the padding leaves the state at 0
        assert (h[1, 2:] == 0).all()


def test_evidence_weights_decompose_the_final_state():
    torch.manual_seed(0)
    cell = QRNCell(4)
    x, q = torch.randn(3, 6, 4), torch.randn(3, 6, 4)
    mask = torch.ones(3, 6, dtype=torch.bool)
    h, z, r = qrn_layer(cell, x, q, mask)
    _, _, candidate, _ = cell(x, q)
    w = sentence_share(z, r)  # (B, S)
    assert torch.allclose((w.unsqueeze(-1) * candidate).sum(1), h[:, -1], atol=1e-6)


def test_qrn_learns_toy_stories_and_shows_evidence_per_layer():
    model, batches, *_ = toy_setup("qrn", n=128, qrn_layers=2)
    means = train(model, batches, epochs=6, lr=0.02)
    assert means[-1] < 0.9 * means[0]
    batch = next(iter(batches))
    for pred, n in zip(model.predict(batch), batch["story_lengths"].tolist(), strict=True):
        assert len(pred["hops"]) == 2 and len(pred["attention"]) == n
        assert abs(sum(pred["attention"]) - 1) < 1e-4 if n else pred["attention"] == []


def test_two_readers_add_their_scores_and_each_has_its_own_loss():
    model, batches, *_ = toy_setup("qrn", n=64, qrn_layers=2, qrn_hops=2)
    net, batch = model.net, next(iter(batches))
    model.train()  # the memory's random noise in its time index: the same draws each call
    torch.manual_seed(1)
    (qrn_logits, memory_logits), evidence = net.answers(batch)
    torch.manual_seed(1)
    logits, attention = model(batch)
    assert torch.allclose(logits, qrn_logits + memory_logits)
    assert attention.shape == (batch["story"].shape[0], 2 + 2, batch["story"].shape[1])
    assert torch.allclose(attention, evidence)
    ce = torch.nn.functional.cross_entropy
    want = sum(ce(part, batch["answer"]) for part in (logits, qrn_logits, memory_logits))
    torch.manual_seed(1)
    assert torch.allclose(model.loss(batch), want)
    model.eval()  # evaluation: the summed scores' loss alone
    with torch.no_grad():
        assert torch.allclose(model.loss(batch), ce(model(batch)[0], batch["answer"]))


def test_two_readers_learn_and_end_linear_start_on_a_stall():
    model, batches, *_ = toy_setup("qrn", n=128, qrn_layers=2, qrn_hops=2)
    assert model.linear_start_active
    means = train(model, batches, epochs=6, lr=0.02)
    assert means[-1] < 0.9 * means[0]
    assert not model.on_evaluate({"val_loss": 1.0}) and model.linear_start_active
    assert model.on_evaluate({"val_loss": 2.0}) and not model.linear_start_active
    pred = model.predict(next(iter(batches)))[0]
    assert len(pred["hops"]) == 2 + 2  # the QRN's layers, then the memory's hops


def test_the_memory_ends_linear_start_on_its_own_validation_loss():
    model, batches, *_ = toy_setup("qrn", n=64, qrn_layers=2, qrn_hops=2)
    metrics = model.evaluate(batches)
    assert metrics["linear_start"] == 1.0
    ce = torch.nn.functional.cross_entropy
    model.eval()  # no random noise in the memory's time index, as in evaluate
    with torch.no_grad():
        parts = [model.net.answers(b)[0] for b in batches]
        answers = torch.cat([b["answer"] for b in batches])
        for k, name in enumerate(("qrn", "memory")):
            want = ce(torch.cat([p[k] for p in parts]), answers)
            assert abs(metrics[f"val_loss_{name}"] - want.item()) < 1e-5
    # the sum's loss falls (the QRN learning) while the memory's own stalls: LS ends
    assert not model.on_evaluate({"val_loss": 1.0, "val_loss_memory": 2.0})
    assert model.on_evaluate({"val_loss": 0.5, "val_loss_memory": 2.5})
    assert not model.linear_start_active and "linear_start" not in model.evaluate(batches)
