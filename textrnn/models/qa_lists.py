"""Scores of the list classes (:mod:`textrnn.data.slot_lists`) from those of their slots.

A list class S (a set of 2 to L entity slots) scores

    a_S = Σ_{k ∈ S} a_k + β_{|S|}

where ``a_k`` is slot k's answer score and β a learnt bias per list length. Under a
softmax over every answer this is the choice of a set by a shared threshold: S beats
S \\ {k} exactly when a_k > β_{|S|-1} - β_{|S|} (with β_1 = 0), so the slots of the
things carried score high, the rest low, and nothing is learnt per combination of
slots (there are 286 sets of 2 or 3 of 12 slots; training sees a few of each).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from textrnn.data.slot_lists import bits, list_lookup, list_table


class ListAnswers(nn.Module):
    """Appends the list classes' scores to the answer scores.

    Args:
        slots: K, the model's entity slots (its last K answers).
        longest: L, the longest list with a class.
    """

    def __init__(self, slots: int, longest: int) -> None:
        super().__init__()
        self.slots = slots
        self.bias = nn.Parameter(torch.zeros(longest - 1))  # β_2 .. β_L
        table = list_table(slots, longest)  # (C, L)
        self.register_buffer("table", table, persistent=False)
        self.register_buffer("lookup", list_lookup(table, slots), persistent=False)
        self.register_buffer("size", (table >= 0).sum(-1), persistent=False)  # (C,)

    @property
    def count(self) -> int:
        """C, the number of list classes."""
        return len(self.table)

    def extend(self, logits: Tensor, mask: Tensor | None) -> Tensor:
        """Scores of every answer and then every list class.

        Args:
            logits: (B, A) answer scores, the slots last (already masked).
            mask: (B, A) bool, the answers this story allows (None = all).

        Returns:
            (B, A + C); a list class with a slot the story does not allow is ruled out.
        """
        slot_scores = logits[:, -self.slots:]  # (B, K)
        present = self.table >= 0  # (C, L)
        items = slot_scores[:, self.table.clamp(min=0)]  # (B, C, L)
        scores = items.masked_fill(~present, 0.0).sum(-1) + self.bias[self.size - 2]  # (B, C)
        if mask is not None:
            slot_ok = mask[:, -self.slots:][:, self.table.clamp(min=0)]  # (B, C, L)
            allowed = (slot_ok | ~present).all(-1)  # (B, C)
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        return torch.cat([logits, scores], 1)

    def to_first_reading(self, probs: Tensor, order: Tensor) -> Tensor:
        """A reading's list probabilities, (B, C), re-indexed to the classes of the
        first reading (slot k = entity k): entity k was slot ``order[b, k]``."""
        inverse = order.argsort(-1)  # (B, K): the entity that slot s stood for
        table = self.table.clamp(min=0)  # (C, L)
        entities = inverse[:, table]  # (B, C, L)
        entities = torch.where(self.table >= 0, entities, -1)
        target = self.lookup[bits(entities)]  # (B, C) a permutation of the classes
        return torch.zeros_like(probs).scatter_add(1, target, probs)
