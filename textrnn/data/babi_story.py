"""One bAbI story as it is written: numbered statements, and questions that cite them.

Shared by the generators of :mod:`textrnn.data.babi_worlds` and
:mod:`textrnn.data.babi_puzzles`; see :mod:`textrnn.data.babi_gen` for the kinds.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

NUMBERS = ("none", "one", "two", "three")  # bAbI task 7 spells counts out
MOVE_VERBS = ("moved to", "went to", "journeyed to", "travelled to", "went back to")


class Story:
    """The lines of one story: ``say`` numbers a statement, ``ask`` writes a question.

    Args:
        space_before_tab: bAbI tasks 1-16 write ``"Where is Mary? \\tbathroom\\t1"``,
            tasks 17-20 ``"...square?\\tyes\\t1 2"``; the files copy each.

    >>> story = Story()
    >>> story.say("Mary moved to the bathroom.")
    1
    >>> story.ask("Where is Mary?", "bathroom", [1])
    >>> story.lines
    ['1 Mary moved to the bathroom.', '2 Where is Mary? \\tbathroom\\t1']
    """

    def __init__(self, space_before_tab: bool = True) -> None:
        self.lines: list[str] = []
        self.questions = 0
        self._tab = " \t" if space_before_tab else "\t"

    def say(self, text: str) -> int:
        """Add a statement; return its line id."""
        line_id = len(self.lines) + 1
        self.lines.append(f"{line_id} {text}")
        return line_id

    def ask(self, question: str, answer: str, support: Sequence[int]) -> None:
        """Add a question with its answer and the ids of its supporting statements."""
        line_id = len(self.lines) + 1
        self.lines.append(f"{line_id} {question}{self._tab}{answer}\t{' '.join(map(str, support))}")
        self.questions += 1


# A kind's generator writes one story of at most ``questions`` questions (at least one).
StoryMaker = Callable[[random.Random, int], Story]
