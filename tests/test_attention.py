"""Attention scores and weights: masked padding, weights summing to 1, the papers' equations."""

from __future__ import annotations

import pytest
import torch

from textrnn.attention import Attention


@pytest.mark.parametrize("score", ["dot", "general", "additive"])
def test_attention_masks_padding_and_averages_values(score):
    torch.manual_seed(0)
    att = Attention(score, 6)
    query, keys = torch.randn(2, 3, 6), torch.randn(2, 5, 6)  # (B, T, H), (B, S, H)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])  # (B, S)
    context, weights = att(query, att.project_keys(keys), keys, mask)
    assert weights.shape == (2, 3, 5) and context.shape == (2, 3, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))
    assert torch.all(weights[1, :, 2:] == 0)
    torch.testing.assert_close(context, weights @ keys)
    # Padding is invisible: the short row alone gives the same numbers.
    alone, w_alone = att(query[1:], att.project_keys(keys[1:, :2]), keys[1:, :2], mask[1:, :2])
    torch.testing.assert_close(alone, context[1:])
    torch.testing.assert_close(w_alone, weights[1:, :, :2])


def test_attention_scores_follow_their_equations():
    torch.manual_seed(1)
    h_t, h_s = torch.randn(1, 1, 4), torch.randn(1, 3, 4)  # one query, three keys
    dot = Attention("dot", 4)
    torch.testing.assert_close(dot.scores(h_t, dot.project_keys(h_s))[0, 0], h_s[0] @ h_t[0, 0])
    gen = Attention("general", 4)
    W = gen.W_a.weight  # (H, H)
    torch.testing.assert_close(gen.scores(h_t, gen.project_keys(h_s))[0, 0],
                               (h_s[0] @ W.T) @ h_t[0, 0])
    add = Attention("additive", 4, attention_size=5)
    manual = torch.stack([add.v_a(torch.tanh(add.W_a(h_t[0, 0]) + add.U_a(h_s[0, s])))[0]
                          for s in range(3)])
    torch.testing.assert_close(add.scores(h_t, add.project_keys(h_s))[0, 0], manual)
    with pytest.raises(ValueError, match="score must be one of"):
        Attention("cosine", 4)
