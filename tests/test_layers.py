"""Layers against torch.nn.LSTM/GRU/RNN: copied weights, float64, outputs and gradients.

Ragged batches are checked against torch's packed run, the exact reference for
"final state at each sequence's own last step".
"""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textrnn.layers import GRU, LSTM, RNN, detach_state, reverse_index, segment_bounds

TOL = 1e-10
KINDS = {
    "lstm": (LSTM, nn.LSTM, {}),
    "gru": (GRU, nn.GRU, {}),
    "rnn_tanh": (RNN, nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (RNN, nn.RNN, {"nonlinearity": "relu"}),
}
B, T, I, H = 5, 9, 4, 6


# Ways of running a ragged batch: impl, then (for "fused") the ragged path and the price
# of a segment (0 cuts time at every length: the most segments).
IMPLS = {
    "fused": ("fused", "auto", None),
    "fused-one-call": ("fused", "one-call", None),
    "fused-segments": ("fused", "segments", None),
    "fused-many-segments": ("fused", "segments", 0.0),
    "cells": ("cells", "auto", None),
}


def make(kind, num_layers, bidirectional, impl, seed=0):
    ours_cls, torch_cls, kw = KINDS[kind]
    impl, ragged, overhead = IMPLS[impl]
    torch.manual_seed(seed)
    ref = torch_cls(I, H, num_layers, batch_first=True, bidirectional=bidirectional, **kw).double()
    ours = ours_cls(I, H, num_layers, bidirectional=bidirectional, impl=impl, ragged=ragged,
                    segment_overhead=overhead, **kw).double()
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def torch_run(ref, x, lengths, state):
    """Reference: packed for ragged lengths, zero outputs past the end like ours."""
    if lengths is None:
        return ref(x, state)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, s = ref(packed, state)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, s


def loss_of(out, state):
    parts = state if isinstance(state, tuple) else (state,)
    return out.sin().sum() + sum((p * p).sum() for p in parts)


def init_state(kind, num_layers, bidirectional):
    shape = (num_layers * (2 if bidirectional else 1), B, H)
    h = torch.randn(shape, dtype=torch.float64)
    return (h, torch.randn(shape, dtype=torch.float64)) if kind == "lstm" else h


def max_diff(a, b):
    if isinstance(a, tuple):
        return max(max_diff(x, y) for x, y in zip(a, b, strict=True))
    return (a - b).abs().max().item()


RAGGED = torch.tensor([9, 3, 7, 1, 5])
GRID = list(itertools.product(KINDS, [1, 2, 3], [False, True], IMPLS))
# On a GPU machine the same parity runs through cuDNN too.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("kind,num_layers,bidirectional,impl", GRID)
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("start", ["given", "zero"])
def test_layer_matches_torch(kind, num_layers, bidirectional, impl, ragged, device, start):
    """A zero start takes the one-call bidirectional path; a given state does not."""
    ours, ref = make(kind, num_layers, bidirectional, impl)
    ours, ref = ours.to(device), ref.to(device)
    lengths = RAGGED if ragged else None
    x = torch.randn(B, T, I, dtype=torch.float64, device=device, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    s0 = init_state(kind, num_layers, bidirectional)
    s0 = tuple(s.to(device) for s in s0) if isinstance(s0, tuple) else s0.to(device)
    if start == "zero":
        s0 = None

    out, state = ours(x, lengths=lengths, state=s0)
    ref_out, ref_state = torch_run(ref, x_ref, lengths, s0)
    assert out.shape == (B, T, H * (2 if bidirectional else 1))
    assert max_diff(out, ref_out) <= TOL
    assert max_diff(state, ref_state) <= TOL

    loss_of(out, state).backward()
    loss_of(ref_out, ref_state).backward()
    assert (x.grad - x_ref.grad).abs().max() <= TOL
    for (name, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        assert (p.grad - q.grad).abs().max() <= TOL, name


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("start", ["given", "zero"])
@pytest.mark.parametrize("impl", ["fused", "fused-one-call", "fused-segments",
                                  "fused-many-segments"])
def test_fused_and_cells_agree_with_empty_sequences(kind, bidirectional, start, impl):
    """Length 0 is allowed (torch's packing refuses it): zero output, state = initial state."""
    fused, _ = make(kind, 2, bidirectional, impl)
    cells, _ = make(kind, 2, bidirectional, "cells")
    x = torch.randn(B, T, I, dtype=torch.float64)
    lengths = torch.tensor([0, 4, 9, 0, 2])
    s0 = init_state(kind, 2, bidirectional)
    if start == "zero":
        s0 = tuple(torch.zeros_like(s) for s in s0) if kind == "lstm" else torch.zeros_like(s0)
    out_f, s_f = fused(x, lengths, None if start == "zero" else s0)
    out_c, s_c = cells(x, lengths, s0)
    assert max_diff(out_f, out_c) <= TOL and max_diff(s_f, s_c) <= TOL
    assert out_f[0].abs().max() == 0 and out_f[3].abs().max() == 0
    h0 = s0[0] if kind == "lstm" else s0
    h_f = s_f[0] if kind == "lstm" else s_f
    assert torch.equal(h_f[:, 0], h0[:, 0])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("impl", IMPLS)
def test_padding_never_changes_a_real_position(kind, impl):
    """Whatever sits in the padding, real outputs and final states are unchanged."""
    layer, _ = make(kind, 2, True, impl)
    x = torch.randn(B, T, I, dtype=torch.float64)
    noisy = x.clone()
    for b, n in enumerate(RAGGED.tolist()):
        noisy[b, n:] = 1e3 * torch.randn(T - n, I, dtype=torch.float64)
    out_a, s_a = layer(x, RAGGED)
    out_b, s_b = layer(noisy, RAGGED)
    assert torch.equal(out_a, out_b)
    assert max_diff(s_a, s_b) == 0.0
    # And a short sequence alone gives the same as in the padded batch.
    alone, s_alone = layer(x[1:2, :3], torch.tensor([3]))
    assert max_diff(alone[0], out_a[1, :3]) <= TOL


def test_float32_fused_matches_cells():
    torch.manual_seed(1)
    fused = LSTM(8, 16, num_layers=2, bidirectional=True)
    cells = LSTM(8, 16, num_layers=2, bidirectional=True, impl="cells")
    cells.load_state_dict(fused.state_dict())
    x = torch.randn(6, 20, 8)
    lengths = torch.tensor([20, 1, 13, 7, 20, 2])
    out_f, (h_f, c_f) = fused(x, lengths)
    out_c, (h_c, c_c) = cells(x, lengths)
    assert max_diff(out_f, out_c) < 1e-5
    assert max_diff((h_f, c_f), (h_c, c_c)) < 1e-5


def test_stacked_dropout_only_in_training():
    torch.manual_seed(0)
    layer = GRU(I, H, num_layers=2, dropout=0.5).double()
    x = torch.randn(B, T, I, dtype=torch.float64)
    layer.eval()
    a, _ = layer(x, RAGGED)
    b, _ = layer(x, RAGGED)
    assert torch.equal(a, b)
    layer.train()
    c, _ = layer(x, RAGGED)
    assert not torch.allclose(a, c)


def test_reverse_index_is_its_own_inverse():
    idx = reverse_index(torch.tensor([3, 0, 5]), 5)
    assert idx.tolist() == [[2, 1, 0, 3, 4], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]]
    assert torch.equal(idx.gather(1, idx), torch.arange(5).expand(3, 5))


def test_truncated_bptt_carries_values_and_cuts_gradients():
    torch.manual_seed(0)
    layer = LSTM(I, H).double()
    x = torch.randn(2, 2 * T, I, dtype=torch.float64, requires_grad=True)
    full, _ = layer(x)
    first, s = layer(x[:, :T])
    s = detach_state(s)
    second, _ = layer(x[:, T:], state=s)
    assert max_diff(torch.cat([first, second], 1), full) <= TOL  # values flow on
    second.sum().backward()
    assert x.grad[:, :T].abs().max() == 0  # ...but no gradient crosses the window
    assert x.grad[:, T:].abs().max() > 0


def test_bad_arguments_are_clear_errors():
    layer = LSTM(I, H)
    with pytest.raises(ValueError, match="seq_len"):
        layer(torch.randn(B, I))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 9\]"):
        layer(torch.randn(B, T, I), torch.tensor([10, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match="state"):
        layer(torch.randn(B, T, I), state=torch.zeros(1, B, H))
    with pytest.raises(ValueError, match="impl"):
        GRU(I, H, impl="cuda")
    with pytest.raises(ValueError, match="GRU and RNN"):
        LSTM(I, H, ragged="rows")  # the LSTM has no rows path
    with pytest.raises(ValueError, match="ragged must be one of"):
        GRU(I, H, ragged="packed")
    # The settings are attributes too, read at every call.
    layer.ragged = "rows"
    with pytest.raises(ValueError, match="GRU and RNN"):
        layer(torch.randn(B, T, I), RAGGED)
    layer.ragged = "packed"
    with pytest.raises(ValueError, match="ragged must be one of"):
        layer(torch.randn(B, T, I), RAGGED)


def test_ragged_settings_set_later_take_effect(monkeypatch):
    """``layer.ragged`` / ``layer.segment_overhead`` set after construction pick the path."""
    import textrnn.ragged as ragged_mod

    calls = []

    def spy(name, real):
        def run(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)
        return run

    for name in ("_rows_direction", "_fused_segments", "_fused_direction"):
        monkeypatch.setattr(ragged_mod, name, spy(name, getattr(ragged_mod, name)))
    gru, ref = make("gru", 1, False, "fused")
    x = torch.randn(B, T, I, dtype=torch.float64)
    want, _ = torch_run(ref, x, RAGGED, None)
    for ragged, overhead, path in [("auto", None, "_rows_direction"),
                                   ("segments", 0.0, "_fused_segments"),
                                   ("one-call", None, "_fused_direction")]:
        gru.ragged, gru.segment_overhead = ragged, overhead
        calls.clear()
        out, _ = gru(x, RAGGED)
        assert set(calls) == {path} and max_diff(out, want) <= TOL


def test_unsupported_fused_configuration_warns_once_and_runs_cells(monkeypatch):
    """Never a silent fallback: one warning, then the cells loop gives the same numbers."""
    import textrnn.layers as layers_mod

    fused, _ = make("gru", 1, False, "fused-segments")  # the path through _fused_call
    cells, _ = make("gru", 1, False, "cells")

    def refuse(*args, **kwargs):
        raise RuntimeError('"gru_cell" not implemented for this dtype')

    monkeypatch.setattr(fused, "_fused_call", refuse)
    monkeypatch.setattr(layers_mod, "_warned", set())
    x = torch.randn(B, T, I, dtype=torch.float64)
    with pytest.warns(UserWarning, match="fused kernel does not support"):
        out, h = fused(x, RAGGED)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call must not warn again
        out2, _ = fused(x, RAGGED)
    ref, ref_h = cells(x, RAGGED)
    assert torch.equal(out, ref) and torch.equal(h, ref_h) and torch.equal(out2, ref)


def test_other_runtime_errors_are_not_swallowed(monkeypatch):
    fused, _ = make("lstm", 1, False, "fused")

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(fused, "_fused_call", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        fused(torch.randn(B, T, I, dtype=torch.float64))


def _segments_cost(lengths, bounds, overhead):
    return sum(sum(n > a for n in lengths) * (b - a) + overhead
               for a, b in zip(bounds[:-1], bounds[1:], strict=True))


@pytest.mark.parametrize("seed", range(20))
def test_segment_bounds_are_the_cheapest_cuts(seed):
    """Against every subset of the possible cuts, on small random batches."""
    g = torch.Generator().manual_seed(seed)
    lengths = sorted(torch.randint(0, 12, (7,), generator=g).tolist(), reverse=True)
    overhead = [0.0, 1.0, 5.0, 30.0][seed % 4]
    bounds = segment_bounds(lengths, overhead)
    if lengths[0] == 0:
        assert bounds == [0]
        return
    assert bounds[0] == 0 and bounds[-1] == lengths[0] and bounds == sorted(set(bounds))
    inner = sorted({n for n in lengths if 0 < n < lengths[0]})
    best = min(
        _segments_cost(lengths, [0, *cuts, lengths[0]], overhead)
        for r in range(len(inner) + 1)
        for cuts in itertools.combinations(inner, r)
    )
    assert _segments_cost(lengths, bounds, overhead) == pytest.approx(best)
