"""A tiny bAbI-format training file of two people and two places, for tests that build a
QA model through :func:`textrnn.pipelines.qa.build` and need only a few seconds."""

from __future__ import annotations

from pathlib import Path


def write_two_people(path: Path, stories: int = 40) -> Path:
    """Write ``stories`` two-sentence stories ("Mary went to the garden. John moved to the
    office.", names and places swapped in turn), each asked where both people are."""
    lines = []
    for k in range(stories):
        a, b = ("mary", "john") if k % 2 else ("john", "mary")
        p, q = ("garden", "office") if k % 3 else ("office", "garden")
        lines += [f"1 {a.title()} went to the {p}.", f"2 {b.title()} moved to the {q}.",
                  f"3 Where is {a}?\t{p}\t1", f"4 Where is {b}?\t{q}\t2"]
    path.write_text("\n".join(lines) + "\n")
    return path
