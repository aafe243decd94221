"""Folk melodies in ABC notation: read the Essen folk songs, normalise them, split them by tune.

The tunes come from the Essen folk-song collection (Schaffrath 1995; several
thousand German, European and Chinese songs) as shipped in ABC notation with
the ``music21`` package (BSD licensed) under ``music21/corpus/essenFolksong/``.
We only read those files, found with :func:`importlib.util.find_spec`; nothing
here imports ``music21`` (:mod:`textrnn.data.music` does, to write MIDI).

:func:`parse_abc` splits a file into tunes at their ``X:`` lines and keeps what
a melody model needs: the meter ``M:``, the unit note length ``L:``, the key
``K:`` and the music. Titles, sources and notes (``T: O: N: R: S:``) are
dropped, and every tune is renumbered ``X:1``, so the model never has to learn
to count or to write German titles::

    X:2                                  X:1
    T: Herzog Ernst                      M:none
    N: A0004A                            L:1/4
    O: Europa, Mitteleuropa, ...   ──▶   K:E
    M: none                              A2A2A2 | A2B2=c2A2A4 | z2
    L: 1/4                               ...
    K: E
    A2A2A2 | A2B2=c2A2A4 | z2
    ...

The music must be in the subset of ABC the collection uses (notes with
accidentals, octave marks and lengths, rests ``z``, ties ``-``, bar lines);
anything else raises :class:`~textrnn.errors.DataError` naming the file and
line. :mod:`textrnn.data.music` checks sampled tunes with the same grammar.

The split is fixed and does not depend on file order: identical tunes are kept
once, and each tune goes to ``test`` when the CRC-32 of its normalised text is
0 modulo 20, to ``valid`` when it is 1, and to ``train`` otherwise (90/5/5).
The files hold one tune after another, separated by one blank line, so a blank
line is how a model learns that a tune has ended.

Expected result: ``textrnn data melodies`` reads 8,514 tunes, skips 6 that are not
in the supported ABC, keeps 8,440 distinct ones and writes 7,541 for training
(1.2 M characters), 460 for validation and 439 for test. A 1-layer char LSTM of
384 units trained for 800 steps of 32 x 128 characters (1 CPU thread) reaches
1.31 bits per character on the test tunes, and 20 of 20 tunes sampled from
``X:1 M:4/4 L:1/8 K:G G`` (seeds 1-20) are valid ABC.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from os import PathLike
from pathlib import Path

from textrnn.data.optional import missing, package_dirs
from textrnn.data.split import Written
from textrnn.data.text import read_text
from textrnn.errors import DataError

CORPUS = ("corpus", "essenFolksong")  # the folder under the package holding the *.abc files
SPLIT_MODULUS = 20  # crc32(tune) % 20: 0 -> test, 1 -> valid, 2..19 -> train
SPLIT_OF_REMAINDER = {0: "test", 1: "valid"}

_FIELD_RE = re.compile(r"^(?P<name>[A-Za-z]):\s*(?P<value>.*?)\s*$")
_METER_RE = re.compile(r"^(\d+/\d+|none|C\|?)$")
_UNIT_RE = re.compile(r"^1/\d+$")
_KEY_RE = re.compile(r"^([A-G][b#]?(m|min|maj|ion|dor|phr|lyd|mix|aeo|loc)?|none)$", re.IGNORECASE)
_GERMAN_KEYS = {"H": "B", "Hm": "Bm", "Es": "Eb", "As": "Ab", "Des": "Db", "Fis": "F#"}
# One token of music: a note (accidentals, pitch, octave marks, length), a rest, a bar line,
# a tie or spaces. Longest alternatives first, so "|]" is one bar line and not "|" + "]".
_TOKEN_RE = re.compile(
    r"(?P<note>[_=^]{0,2}[A-Ga-g][,']*\d*(?:/\d*)?)"
    r"|(?P<rest>z\d*(?:/\d*)?)"
    r"|(?P<bar>\|\]|\|\||\|:|:\||::|\[\||\|)"
    r"|(?P<tie>-)"
    r"|(?P<space>[ \t]+)"
)


@dataclass(frozen=True)
class Tune:
    """One tune, normalised: the header fields a model needs and the lines of music.

    Attributes:
        meter: the ``M:`` value, e.g. ``"3/4"`` or ``"none"`` (free meter).
        unit: the ``L:`` value, e.g. ``"1/8"``.
        key: the ``K:`` value, e.g. ``"G"``, ``"Bb"``, ``"Dm"``.
        body: the lines of music, stripped, in order.
        line: the 1-based line of the tune's ``X:`` field in its file.
    """

    meter: str
    unit: str
    key: str
    body: tuple[str, ...]
    line: int = 1

    @property
    def text(self) -> str:
        """The tune as normalised ABC, ending with a newline.

        >>> print(Tune("2/4", "1/8", "G", ("G2 AB | c2",)).text, end="")
        X:1
        M:2/4
        L:1/8
        K:G
        G2 AB | c2
        """
        header = ["X:1", f"M:{self.meter}", f"L:{self.unit}", f"K:{self.key}"]
        return "\n".join([*header, *self.body]) + "\n"


def normalize_field(name: str, value: str, path=None, line: int | None = None) -> str:
    """Check and normalise the value of an ``M:``, ``L:`` or ``K:`` field.

    Fixes the quirks of the Essen files: a stray ``]`` at the end, ``FREI`` (German for
    "free") meters, German key names (``H`` is B, ``Es`` is E flat).

    Raises:
        DataError: naming ``path`` and ``line`` if the value is not one ABC allows.

    >>> normalize_field("M", "2/2]"), normalize_field("M", "FREI4/4"), normalize_field("K", "H")
    ('2/2', 'none', 'B')
    >>> normalize_field("L", "1/8"), normalize_field("K", "Es"), normalize_field("K", "dm")
    ('1/8', 'Eb', 'Dm')
    >>> normalize_field("L", "eighth", path="a.abc", line=7)
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: a.abc:7: L: must be a unit note length like 1/8, got 'eighth'
    """
    value = value.strip().removesuffix("]").strip()
    if name == "M":
        value = "none" if value.upper().startswith("FREI") else value
        if not _METER_RE.match(value):
            raise DataError(f"M: must be a meter like 3/4 or 'none', got {value!r}", path, line)
    elif name == "L":
        if not _UNIT_RE.match(value):
            raise DataError(f"L: must be a unit note length like 1/8, got {value!r}", path, line)
    elif name == "K":
        value = _GERMAN_KEYS.get(value, value)
        if not _KEY_RE.match(value):
            raise DataError(f"K: must be a key like G, Bb or Dm, got {value!r}", path, line)
        value = value[0].upper() + value[1:]
    return value


def check_music(line_text: str, path=None, line: int | None = None) -> str:
    """Check that a line of music uses only the ABC the corpus uses; return it stripped.

    Raises:
        DataError: naming ``path``, ``line`` and the column of the first unknown symbol.

    >>> check_music("  B,2 | E4F2=G3FE2 | B6F4- ")
    'B,2 | E4F2=G3FE2 | B6F4-'
    >>> check_music("G2 (3ABc |", path="tune.abc", line=6)
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: tune.abc:6: unexpected '(' in the music at column 4
    """
    text = line_text.strip()
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            message = f"unexpected {text[pos]!r} in the music at column {pos + 1}"
            raise DataError(message, path, line)
        pos = match.end()
    return text


def meter_length(meter: str) -> Fraction | None:
    """How long a bar of ``meter`` is, in whole notes; None for free meter (``none``).

    >>> meter_length("4/4"), meter_length("6/8"), meter_length("C|"), meter_length("none")
    (Fraction(1, 1), Fraction(3, 4), Fraction(1, 1), None)
    """
    if meter == "none":
        return None
    if meter in ("C", "C|"):  # common time (4/4) and cut time (2/2)
        return Fraction(1)
    top, bottom = meter.split("/")
    return Fraction(int(top), int(bottom))


def note_length(token: str) -> Fraction:
    """A note's or rest's length in unit notes (``L:``), from the digits and ``/`` after it.

    >>> [str(note_length(t)) for t in ("G", "^c'2", "z4", "A/", "B3/", "d/4", "e3/4")]
    ['1', '2', '4', '1/2', '3/2', '1/4', '3/4']
    """
    match = re.search(r"(\d*)(/?)(\d*)$", token)
    top = int(match[1]) if match[1] else 1
    bottom = (int(match[3]) if match[3] else 2) if match[2] else 1
    return Fraction(top, bottom) if bottom else Fraction(0)


def _quarters(length: Fraction) -> str:
    """A length in whole notes as quarter notes, for messages: 17/4 -> ``"17"``."""
    return f"{float(length * 4):g}"


# How far a bar may run past its meter. The Essen tunes end many phrases with a bar
# and a rest (or a held note) that the meter does not count: of 8,508 tunes, 8% hold a
# bar longer than the meter, 0.7% one over 1.75 times it and 0.1% one over twice it.
# A sampled tune may do what the training tunes do; G42 in 4/4 (5.25 bars) may not.
BAR_SLACK = 2


def check_bars(tune: Tune, path=None) -> None:
    """Check that no bar of ``tune`` lasts longer than :data:`BAR_SLACK` times its meter.

    A bar ends at a bar line or at the end of its line (every Essen line ends a
    bar). Bars may be shorter (an upbeat, the last bar, a bar split by a repeat
    sign); free meter (``M:none``) is not checked. Meter and unit changes inside the
    music apply from where they stand. Line numbers count in ``tune.text`` (the
    header is 4 lines).

    Raises:
        DataError: ``"path:LINE: ..."`` naming the bar that is too long (or the note of
            length 0), with its length in quarter notes.

    >>> check_bars(Tune("4/4", "1/8", "G", ("G2AB c2BA | G8 |", "z2 G6 | A8 z8 |]")))
    >>> check_bars(Tune("4/4", "1/8", "G", ("G2AB c2BA | G42 |",)), path="t")
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: t:5: the bar at column 13 lasts 21 quarter notes; M:4/4 holds 4
    >>> check_bars(Tune("3/4", "1/4", "G", ("G2 A | B3 |", "M:4/4", "B4 | c4 d5")), path="t")
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: t:7: the bar at column 6 lasts 9 quarter notes; M:4/4 holds 4
    """
    meter, unit = tune.meter, Fraction(tune.unit)
    for number, text in enumerate(tune.body, 5):
        field = _FIELD_RE.match(text)
        if field:  # a change of meter, unit or key: M: and L: count from here
            if field["name"] == "M":
                meter = field["value"]
            elif field["name"] == "L":
                unit = Fraction(field["value"])
            continue
        allowed = meter_length(meter)
        bar, column = Fraction(0), 1  # the bar so far (whole notes), where it starts
        for match in _TOKEN_RE.finditer(text + "|"):  # the line's end closes its last bar
            if match["bar"]:
                if allowed is not None and bar > BAR_SLACK * allowed:
                    raise DataError(f"the bar at column {column} lasts {_quarters(bar)} "
                                    f"quarter notes; M:{meter} holds {_quarters(allowed)}",
                                    path, number)
                bar = Fraction(0)
            elif match["note"] or match["rest"]:
                length = note_length(match.group())
                if not length:
                    raise DataError(f"a note of length 0 at column {match.start() + 1}",
                                    path, number)
                if not bar:
                    column = match.start() + 1
                bar += length * unit


def parse_abc(
    text: str, path: str | PathLike[str] | None = None, errors: list[DataError] | None = None
) -> list[Tune]:
    """Split ABC text into normalised tunes.

    A tune starts at an ``X:`` line; its header runs to the ``K:`` line, its music to
    the next blank line. Text between tunes is free text in ABC and is skipped, as are
    ``%`` comments and, inside the music, fields other than ``M: L: K:``.

    Args:
        text: the contents of an ``.abc`` file.
        path: the file's name, for error messages.
        errors: if given, a malformed tune is skipped and its error appended here
            instead of raised.

    Returns:
        The tunes in file order.

    Raises:
        DataError: ``"path:line: ..."`` for a header that lacks ``M:``, ``L:`` or ``K:``,
            a field value ABC does not allow, music before ``K:``, a tune with no music, or
            a symbol outside the supported ABC.

    >>> tunes = parse_abc('''X:7
    ... T: Das Hildebrandslied
    ... M: 4/2
    ... L: 1/4
    ... K: G
    ... G2 | _B2B2c2c2 | d4d4
    ... z2d4d2 | d4z2
    ...
    ... some free text between tunes
    ...
    ... X:8
    ... M:3/4
    ... L:1/8
    ... K:F
    ... CCC | F2A4
    ... ''')
    >>> [(t.meter, t.key, t.line, len(t.body)) for t in tunes]
    [('4/2', 'G', 1, 2), ('3/4', 'F', 11, 1)]
    >>> parse_abc("X:1\\nM:2/4\\nK:G\\nGA | B2\\n", path="x.abc")
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: x.abc:1: the tune has no L: field before K:
    >>> parse_abc("X:1\\nM:2/4\\nGA | B2\\n", path="x.abc")
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: x.abc:3: music before the K: field that ends the header
    """
    tunes: list[Tune] = []
    header: dict[str, str] = {}  # the fields of the tune being read, until K:
    body: list[str] = []
    start = 0  # line of the current tune's X:
    state = "between"  # "between" tunes, in a tune's "header" or "body", or "skip"ping a bad one

    def finish(end_line: int) -> None:
        if state == "header":
            raise DataError("the tune ends before its K: field", path, end_line)
        if state == "body":
            if not body:
                raise DataError("the tune has no music", path, end_line)
            tunes.append(Tune(header["M"], header["L"], header["K"], tuple(body), start))

    def read_header_field(name: str, value: str, number: int) -> str:
        if name in "MLK":
            header[name] = normalize_field(name, value, path, number)
        if name != "K":
            return "header"
        for needed in "ML":
            if needed not in header:
                raise DataError(f"the tune has no {needed}: field before K:", path, start)
        return "body"

    lines = text.split("\n")
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        field = _FIELD_RE.match(line)
        try:
            if line.startswith("%"):
                continue  # a comment
            if field and field["name"] == "X":  # a new tune; a missing blank line ends the last
                finish(number)
                state, header, body, start = "header", {}, [], number
            elif state in ("between", "skip"):
                state = "between" if not line else state  # free text, or the rest of a bad tune
            elif not line:
                finish(number)
                state = "between"
            elif state == "header":
                if not field:
                    raise DataError("music before the K: field that ends the header", path, number)
                state = read_header_field(field["name"], field["value"], number)
            elif field:  # inside the music, meter, length and key changes are music too
                if field["name"] in "MLK":
                    value = normalize_field(field["name"], field["value"], path, number)
                    body.append(f"{field['name']}:{value}")
            else:
                body.append(check_music(line, path, number))
        except DataError as err:
            if errors is None:
                raise
            errors.append(err)
            if field and field["name"] == "X":  # the last tune was bad; this one starts afresh
                state, header, body, start = "header", {}, [], number
            else:
                state = "skip" if line else "between"
    try:
        finish(len(lines))
    except DataError as err:
        if errors is None:
            raise
        errors.append(err)
    return tunes


def split_of(tune: Tune) -> str:
    """``"train"``, ``"valid"`` or ``"test"``: fixed by the tune's normalised text alone.

    >>> split_of(Tune("2/4", "1/8", "G", ("G2 AB | c2",)))
    'train'
    """
    remainder = zlib.crc32(tune.text.encode("utf-8")) % SPLIT_MODULUS
    return SPLIT_OF_REMAINDER.get(remainder, "train")


def split_tunes(tunes: Iterable[Tune]) -> dict[str, list[Tune]]:
    """Drop repeated tunes (the first is kept), then split the rest with :func:`split_of`.

    >>> a, b = Tune("2/4", "1/8", "G", ("G2",)), Tune("3/4", "1/8", "F", ("F2",))
    >>> {name: len(part) for name, part in split_tunes([a, b, a]).items()}
    {'train': 2, 'valid': 0, 'test': 0}
    """
    splits: dict[str, list[Tune]] = {"train": [], "valid": [], "test": []}
    seen: set[str] = set()
    for tune in tunes:
        if tune.text not in seen:
            seen.add(tune.text)
            splits[split_of(tune)].append(tune)
    return splits


def find_corpus() -> list[Path]:
    """The Essen ``*.abc`` files inside the installed ``music21``, sorted by name.

    Raises:
        MissingData: if ``music21`` is not installed (or holds no Essen files), naming the
            command that installs it.
    """
    root = package_dirs("melodies")[0].joinpath(*CORPUS)
    files = sorted(root.glob("*.abc"))
    if not files:
        raise missing("melodies", f"is installed but has no {root}/*.abc")
    return files


def prepare_melodies(
    out_dir: str | PathLike[str],
    files: list[Path] | None = None,
    skipped: list[DataError] | None = None,
) -> dict[str, Written]:
    """Write ``train.txt``, ``valid.txt`` and ``test.txt`` of normalised tunes into ``out_dir``.

    Args:
        out_dir: created if needed.
        files: the ABC files to read (default: :func:`find_corpus`), in this order.
        skipped: if given, malformed tunes are left out and their errors appended here
            (the Essen files hold 6 such tunes among 8,514); otherwise the first one raises.

    Returns:
        Split name -> the file written, with its tunes and bytes.
    """
    tunes: list[Tune] = []
    for path in files if files is not None else find_corpus():
        tunes += parse_abc(read_text(path), path, skipped)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, part in split_tunes(tunes).items():
        path = out / f"{split}.txt"
        path.write_text("\n".join(t.text for t in part), encoding="utf-8", newline="\n")
        written[split] = Written(path, {"tunes": len(part), "bytes": path.stat().st_size})
    return written
