"""Where a run's validation data comes from: a named file, a file beside the training
data, or a hold-out from the training data's end. One rule for every task.

Vocabularies are built after this split, from the training part only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TypeVar

from textrnn.errors import DataError

T = TypeVar("T")
VALID_FRACTION = 0.1  # held out from the end of the training data when there is no valid file


def holdout(
    items: Sequence[T], path: str | PathLike[str], fraction: float = VALID_FRACTION,
    what: str = "examples",
) -> tuple[list[T], list[T]]:
    """Split ``items`` into (train, valid): the last ``fraction`` (at least one) is held out.

    Contiguous, not shuffled: at most one story, document or text straddles the cut.

    Raises:
        DataError: naming ``path`` when fewer than two items leave nothing to train on.

    >>> holdout(list(range(20)), "f.txt")
    ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17], [18, 19])
    >>> holdout([1], "f.txt", what="lines")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    textrnn.errors.DataError: f.txt: need at least 2 lines to hold some out ...
    """
    cut = len(items) - max(1, int(len(items) * fraction))
    if cut < 1:
        raise DataError(f"need at least 2 {what} to hold some out for validation "
                        "(or pass --valid)", path=path)
    return list(items[:cut]), list(items[cut:])


def validation_file(
    data: str | PathLike[str], valid: str | PathLike[str] | None = None,
    sibling: str | None = None,
) -> Path | None:
    """The validation file of a run trained on ``data``: ``valid`` if given, else the file
    named ``sibling`` beside ``data`` if it exists and is not ``data`` itself, else None
    (then the caller holds some of ``data`` out).

    >>> validation_file("data/train.tsv", "other.tsv")
    PosixPath('other.tsv')
    >>> validation_file("no/such/train.tsv", sibling="valid.tsv") is None
    True
    """
    if valid:
        return Path(valid)
    if sibling is None:
        return None
    beside = Path(data).with_name(sibling)
    if beside.is_file() and beside.resolve() != Path(data).resolve():
        return beside
    return None


@dataclass
class Written:
    """One split file that a ``prepare_*`` function wrote, and what it holds.

    Every ``prepare_*`` returns ``dict[str, Written]`` (split name -> file), so
    ``textrnn data <name>`` prints them all the same way.

    >>> print(Written(Path("d/train.txt"), {"sentences": 3, "tokens": 12}, "BIO2").describe())
    d/train.txt (3 sentences, 12 tokens; BIO2)
    """

    path: Path
    counts: dict[str, int] = field(default_factory=dict)  # e.g. {"pairs": 11425}
    note: str = ""  # anything else a user should know about the file

    def describe(self) -> str:
        """``path (n things, m others; note)``."""
        parts = ", ".join(f"{n} {what}" for what, n in self.counts.items())
        detail = "; ".join(p for p in (parts, self.note) if p)
        return f"{self.path} ({detail})" if detail else str(self.path)
