"""Attention over an encoded source: scores, masked softmax weights, and the context vector.

For decoder states (queries) ``h_t`` and encoder states (keys = values) ``h̄_s``::

    dot        score(h_t, h̄_s) = h_tᵀ h̄_s                          Luong et al. (2015)
    general    score(h_t, h̄_s) = h_tᵀ W_a h̄_s                      Luong et al. (2015)
    additive   score(h_t, h̄_s) = v_aᵀ tanh(W_a h_t + U_a h̄_s)      Bahdanau et al. (2015)

    a_t(s) = softmax_s(score(h_t, h̄_s))   over real source positions only
    c_t    = Σ_s a_t(s) h̄_s

Padded source positions get the lowest score before the softmax (:func:`masked_softmax`),
so their weight is exactly 0 and a sentence's context does not depend on how much padding its
batch has. The key projections (``W_a h̄_s``, ``U_a h̄_s``) depend only on the
source, so :meth:`Attention.project_keys` computes them once per sentence and
the decoder reuses them at every step.

Luong, Pham and Manning (2015), "Effective Approaches to Attention-based Neural
Machine Translation"; Bahdanau, Cho and Bengio (2015), "Neural Machine
Translation by Jointly Learning to Align and Translate".
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

SCORES = ("dot", "general", "additive")


def masked_softmax(scores: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """Softmax over the True entries of ``mask``; masked entries (and all-masked rows) get 0.

    Args:
        scores: (..., S) float.
        mask: bool, broadcastable to ``scores``; True where an entry is real.

    Returns:
        Same shape as ``scores``; each row with a real entry sums to 1.

    >>> masked_softmax(torch.tensor([[1.0, 1.0, 5.0]]), torch.tensor([[True, True, False]]))
    tensor([[0.5000, 0.5000, 0.0000]])
    """
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # exp() of it is exactly 0
    return torch.softmax(scores, dim=dim) * mask  # the *mask zeroes rows with no real entry


class Attention(nn.Module):
    """Score queries against keys, mask the padding, and average the values.

    Args:
        score: ``"dot"``, ``"general"`` or ``"additive"``.
        hidden_size: H, the width of queries, keys and values.
        attention_size: A, the width of the additive score's hidden layer
            (default H; unused by the other scores).
    """

    def __init__(self, score: str, hidden_size: int, attention_size: int | None = None) -> None:
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        self.score = score
        A = attention_size or hidden_size
        if score == "general":
            self.W_a = nn.Linear(hidden_size, hidden_size, bias=False)
        elif score == "additive":
            self.W_a = nn.Linear(hidden_size, A, bias=False)  # query side
            self.U_a = nn.Linear(hidden_size, A, bias=True)  # key side
            self.v_a = nn.Linear(A, 1, bias=False)

    def project_keys(self, keys: Tensor) -> Tensor:
        """The part of the score that depends on the source alone.

        Args:
            keys: (B, S, H) encoder states h̄_s.

        Returns:
            (B, S, H) for dot (the keys) and general (``W_a h̄_s``), (B, S, A) for
            additive (``U_a h̄_s``).
        """
        if self.score == "general":
            return self.W_a(keys)  # (B, S, H)
        if self.score == "additive":
            return self.U_a(keys)  # (B, S, A)
        return keys  # (B, S, H)

    def scores(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        """Unnormalised scores of every query against every source position.

        Args:
            query: (B, T, H) decoder states h_t.
            projected_keys: what :meth:`project_keys` returned, (B, S, H or A).

        Returns:
            (B, T, S) float.
        """
        if self.score == "additive":
            q = self.W_a(query)  # (B, T, A)
            hidden = torch.tanh(q.unsqueeze(2) + projected_keys.unsqueeze(1))  # (B, T, S, A)
            return self.v_a(hidden).squeeze(-1)  # (B, T, S)
        return torch.bmm(query, projected_keys.transpose(1, 2))  # (B, T, S)

    def forward(self, query: Tensor, projected_keys: Tensor, values: Tensor,
                mask: Tensor) -> tuple[Tensor, Tensor]:
        """Attend from each query to the real source positions.

        Args:
            query: (B, T, H) decoder states.
            projected_keys: (B, S, H or A), from :meth:`project_keys`.
            values: (B, S, H) encoder states averaged into the context.
            mask: (B, S) bool, True at real source positions (each row has at least one).

        Returns:
            context: (B, T, H), ``c_t = Σ_s a_t(s) h̄_s``.
            weights: (B, T, S), ``a_t(s)``; 0 at padded positions, rows sum to 1.
        """
        scores = self.scores(query, projected_keys)  # (B, T, S)
        weights = masked_softmax(scores, mask.unsqueeze(1))  # (B, T, S)
        return torch.bmm(weights, values), weights  # (B, T, H), (B, T, S)
