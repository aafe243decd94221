"""List answers through entity slots: "What is Mary carrying?" -> "kite,lamp".

A list answer (bAbI 8, "apple,football") is one answer class, so a list of words the
model never saw has no class, and a story of the user's own things could never be
answered with two of them. With entity slots, every set of 2 to L slots is an answer
class of its own (its *list class*), so ``{@ent2, @ent5}`` stands for the words those
slots read in this story. The model scores a list class from the scores of its
slots (:class:`textrnn.models.qa_lists.ListAnswers`), so nothing about lists is learnt
per combination.

A set has no order and an answer string does: a list class is written out in the
order its words were first mentioned in the story (slot number order in the reading
that numbers slots by first mention). That is the order of bAbI's own lists in 612
of the 637 two- and three-item answers of qa8's en-10k training set (66 of 67 in
its test set); an answer in another order has no list class (it counts as wrong).

List classes come after the answer vocabulary: class ``A + c`` is row ``c`` of
:func:`list_table`, ``A`` = ``len(answer_vocab)``.
"""

from __future__ import annotations

from functools import cache
from itertools import combinations

import torch

LONGEST = 3  # the longest list with a class of its own (bAbI's lists have 1 to 3 items)


def list_table(slots: int, longest: int) -> torch.Tensor:
    """Every set of 2 to ``longest`` of the slots ``0 .. slots-1``, one row each,
    padded with -1; (C, longest) long.

    >>> list_table(3, 3)
    tensor([[ 0,  1, -1],
            [ 0,  2, -1],
            [ 1,  2, -1],
            [ 0,  1,  2]])
    """
    rows = [list(c) + [-1] * (longest - n) for n in range(2, longest + 1)
            for c in combinations(range(slots), n)]
    return torch.tensor(rows, dtype=torch.long).view(-1, longest)


def bits(slot_sets: torch.Tensor) -> torch.Tensor:
    """Each row of slot numbers (-1 = none) as the bit mask ``Σ 2^slot``; (...,) long.

    >>> bits(torch.tensor([[0, 2, -1], [1, -1, -1]]))
    tensor([5, 2])
    """
    present = slot_sets >= 0
    return torch.where(present, 1 << slot_sets.clamp(min=0), 0).sum(-1)


def list_lookup(table: torch.Tensor, slots: int) -> torch.Tensor:
    """Bit mask of a slot set -> its row of ``table``, -1 for a set without one;
    (2**slots,) long."""
    lookup = torch.full((1 << slots,), -1, dtype=torch.long)
    lookup[bits(table)] = torch.arange(len(table))
    return lookup


def list_ranks(answer: str, entities: list[str], longest: int) -> list[int]:
    """Where each item of a list answer stands among the example's entities (first
    mention first), when the answer is such a list, in that order; else [].

    >>> list_ranks("milk,kite", ["mary", "milk", "kite"], 3)
    [1, 2]
    >>> list_ranks("kite,milk", ["mary", "milk", "kite"], 3)  # not first-mention order
    []
    >>> list_ranks("milk", ["mary", "milk"], 3), list_ranks("milk,box", ["milk"], 3)
    ([], [])
    """
    items = answer.lower().split(",")
    if not 2 <= len(items) <= longest or not all(w in entities for w in items):
        return []
    ranks = [entities.index(w) for w in items]
    return ranks if all(a < b for a, b in zip(ranks, ranks[1:], strict=False)) else []


def list_targets(answer_list: torch.Tensor, order: torch.Tensor, lookup: torch.Tensor
                 ) -> torch.Tensor:
    """The list class of each example's answer under a numbering of the slots.

    Args:
        answer_list: (B, L) long, the answer's items as entity ranks, -1 padded (a row
            of -1 when the answer is no such list).
        order: (B, K) long, the slot number of each entity in this reading.
        lookup: from :func:`list_lookup`.

    Returns:
        (B,) long: the row of the list table, -1 where there is none.
    """
    slots = torch.where(answer_list >= 0, order.gather(1, answer_list.clamp(min=0)), -1)
    has = (answer_list >= 0).sum(-1) >= 2  # (B,)
    return torch.where(has, lookup[bits(slots)], -1)


def list_meanings(longest: int, words: list[str | None], first: int) -> dict[int, str]:
    """Answer id -> the list it stands for, for the list classes all of whose slots
    hold a word (``words[k]``: slot k's word in first-mention numbering, None = not a
    slot in this story; ``len(words)`` is the model's K); ``first`` is the id of list
    class 0 and ``longest`` the L of :func:`list_table`.

    A chat story names a few of the K slots, so only their sets are visited, not the
    whole table (286 rows at K 12, L 3) for every question.

    >>> list_meanings(3, ["mary", None, "john"], 10)
    {11: 'mary,john'}
    """
    named = [k for k, w in enumerate(words) if w is not None]
    row = _lookup(len(words), longest)  # (2**K,): slot set's bit mask -> its class
    return {first + int(row[sum(1 << k for k in chosen)]): ",".join(words[k] for k in chosen)
            for n in range(2, min(longest, len(named)) + 1)
            for chosen in combinations(named, n)}


@cache
def _lookup(slots: int, longest: int) -> torch.Tensor:
    """:func:`list_lookup` of ``list_table(slots, longest)``, made once per model shape."""
    return list_lookup(list_table(slots, longest), slots)
