"""Sampled melodies to files a person can play: check the ABC, write it, convert it to MIDI.

A character model trained on :mod:`textrnn.data.melodies` writes tunes in the
same normalised ABC: ``X:1``, ``M:``, ``L:``, ``K:``, lines of music, and a blank
line at the end. :func:`tune_from_text` checks a sample with the corpus's own
grammar (:func:`textrnn.data.melodies.parse_abc`), :func:`abc_file_text` adds a
title, and :func:`write_midi` converts it with ``music21``
(``converter.parse(text, format="abc")``, then ``.write("midi")``), which is
imported only here, and only when a tune is written. music21 is the optional
``music`` extra: without it :func:`write_midi` raises
:class:`~textrnn.data.optional.MissingPackage`, naming the command that installs it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from textrnn.data.melodies import Tune, check_bars, parse_abc
from textrnn.data.optional import require_music
from textrnn.errors import DataError

SAMPLE_NAME = "the sampled tune"  # how errors name a tune that is not in a file yet
_FIELD_LINE_RE = re.compile(r"^([A-Za-z]):[ \t]*(.*?)[ \t]*$")


def normalize_prompt(prompt: str) -> str:
    """Make a command-line prompt look like the start of a tune in the training files.

    A literal ``\\n`` (what a shell passes for ``"X:1\\nK:G"``) becomes a line break,
    field lines lose the spaces after the colon, and ``X:1`` is added if missing.

    >>> normalize_prompt(r"M: 4/4\\nL:1/8\\nK: G\\nG")
    'X:1\\nM:4/4\\nL:1/8\\nK:G\\nG'
    >>> normalize_prompt("")
    'X:1\\n'
    """
    lines = prompt.replace("\\n", "\n").split("\n")
    lines = [_FIELD_LINE_RE.sub(r"\1:\2", line) for line in lines]
    text = "\n".join(lines)
    return text if text.startswith("X:") else "X:1\n" + text


def end_of_tune(text: str) -> int | None:
    """Where the first tune in ``text`` ends (after its last line's newline), or None.

    A tune ends at a blank line, or where a line starts a new tune with ``X:``.

    >>> end_of_tune("X:1\\nK:G\\nGA|B\\n\\nX:1\\n")
    13
    >>> end_of_tune("X:1\\nK:G\\nGA|B\\nX:2\\n"), end_of_tune("X:1\\nK:G\\nGA")
    (13, None)
    """
    blank = text.find("\n\n")
    new_tune = text.find("\nX:", 1)
    ends = [i + 1 for i in (blank, new_tune) if i >= 0]
    return min(ends) if ends else None


def tune_from_text(text: str) -> Tune:
    """Check that ``text`` is exactly one tune of the supported ABC, with no bar longer
    than its meter (:func:`~textrnn.data.melodies.check_bars`), and return it.

    Raises:
        DataError: ``"the sampled tune:LINE: ..."`` for a bad header, an unknown
            symbol or a bar too long, or if the text holds no tune or more than one.

    >>> tune_from_text("X:1\\nM:3/4\\nL:1/8\\nK:F\\nCCC | F2A4\\n").key
    'F'
    >>> tune_from_text("X:1\\nM:3/4\\nL:1/8\\nK:F\\nCC(C | F2A4\\n")
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: the sampled tune:5: unexpected '(' in the music at column 3
    >>> tune_from_text("X:1\\nM:3/4\\nL:1/8\\nK:F\\nCCC | G42 |\\n")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: the sampled tune:5: the bar at column 7 lasts 21 quarter notes; ...
    """
    tunes = parse_abc(text.strip("\n") + "\n", path=SAMPLE_NAME)
    if len(tunes) != 1:
        raise DataError(f"expected one tune, found {len(tunes)}", path=SAMPLE_NAME)
    # The corpus's own grammar reads each symbol; a model can still write symbols that
    # parse but do not add up (G42, a bar of 17 quarters in 4/4): refused here, for
    # sampled tunes only (the corpus is read as it is written).
    check_bars(tunes[0], path=SAMPLE_NAME)
    return tunes[0]


def abc_file_text(tune: Tune, title: str) -> str:
    """The contents of a standalone ``.abc`` file: ``X:``, then ``T:`` (as ABC asks), the rest.

    >>> print(abc_file_text(Tune("2/4", "1/8", "G", ("G2 AB |",)), "seed 1"), end="")
    X:1
    T:seed 1
    M:2/4
    L:1/8
    K:G
    G2 AB |
    """
    first, rest = tune.text.split("\n", 1)
    return f"{first}\nT:{title}\n{rest}"


@dataclass(frozen=True)
class MidiSummary:
    """What :func:`write_midi` wrote: note count and length of the melody."""

    notes: int  # notes (rests and tied continuations not counted)
    seconds: float  # playing time at the tempo written (music21's default, 120 quarters/min)


def write_midi(abc_text: str, path: str | PathLike[str]) -> MidiSummary:
    """Convert one ABC tune to a standard MIDI file with ``music21``.

    Raises:
        DataError: if ``music21`` cannot read the tune or finds no notes in it.
        MissingPackage: if ``music21`` is not installed (not a DataError: a retry with
            another tune cannot help).
    """
    require_music()
    import music21  # heavy (about 0.5 s): only loaded when a tune is converted

    try:
        score = music21.converter.parse(abc_text, format="abc")
    except Exception as err:  # music21 raises many kinds; any of them means "not playable"
        raise DataError(f"music21 cannot read it: {err}", path=SAMPLE_NAME) from None
    flat = score.flatten()
    notes = [n for n in flat.notes if n.tie is None or n.tie.type == "start"]
    if not notes:
        raise DataError("music21 finds no notes in it", path=SAMPLE_NAME)
    seconds = max(e["endTimeSeconds"] for e in flat.secondsMap)  # when the last note ends
    try:
        score.write("midi", fp=str(Path(path)))
    except music21.exceptions21.Music21Exception:
        # music21 10.5 cannot write a bar that holds more than its meter followed by
        # another bar (a StreamException). ABC allows such bars, and a MIDI file has no
        # bars at all: write the same notes and rests at the same times, without measures.
        plain = music21.stream.Stream()
        for element in flat.notesAndRests:
            plain.insert(element.offset, copy.deepcopy(element))
        try:
            plain.write("midi", fp=str(Path(path)))
        except music21.exceptions21.Music21Exception as err:
            raise DataError(f"music21 cannot write it as MIDI: {err}", SAMPLE_NAME) from None
    return MidiSummary(notes=len(notes), seconds=float(seconds))
