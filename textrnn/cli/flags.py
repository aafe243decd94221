"""Command-line flags generated from the config dataclasses, so each setting is written once.

A config field and its comment are the flag and its help::

    hidden_size: int = 256  # recurrent state width per layer
      ->  --hidden-size HIDDEN_SIZE   recurrent state width per layer (default: 256)

A bool field becomes ``--name`` / ``--no-name``; a ``list[int]`` or ``tuple[int, ...]``
field takes several values. Fields without a default (sizes read off the data) and
fields named in ``skip`` get no flag. A command changes a default with
``parser.set_defaults`` (the help shows the changed one).

The config dataclasses live in modules that import torch (about 2 s), so the parsers
whose flags come from them are :class:`LazyParser` s, filled only when used.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import textwrap
import tokenize
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from functools import cache
from typing import Any

from textrnn.errors import TextrnnError

if typing.TYPE_CHECKING:
    from textrnn.train import TrainConfig

# The names --device takes (cuda:N also works), as textrnn.device.resolve_device reads
# them; kept here, not there, because that module imports torch.
DEVICES = ("auto", "cpu", "cuda")
# TrainConfig fields that are not flags: the model class says which metric picks best.pt.
_TRAIN_SKIP = ("best_metric", "best_mode")


class LazyParser(argparse.ArgumentParser):
    """An argument parser whose arguments are added on first use, by ``fill(parser)``.

    Its subcommand's name and help show in the parent's ``--help`` without it; it fills
    itself before it parses, prints help or usage, so a command's flags (and the torch
    their config dataclass imports) are built only when that command runs.

    Args:
        fill: adds the parser's arguments; ``None`` for an ordinary parser.
        *args, **kwargs: those of :class:`argparse.ArgumentParser`.
    """

    def __init__(self, *args: Any,
                 fill: Callable[[argparse.ArgumentParser], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fill = fill

    def fill_now(self) -> LazyParser:
        """Add the arguments now, here and in every subcommand below (a no-op once done)."""
        self._fill_self()
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    if isinstance(sub, LazyParser):
                        sub.fill_now()
        return self

    def _fill_self(self) -> None:
        fill, self._fill = self._fill, None  # cleared first, so filling runs once
        if fill is not None:
            fill(self)

    # Every way argparse reads a parser's arguments goes through one of these three.
    def parse_known_args(self, args=None, namespace=None):
        self._fill_self()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._fill_self()
        return super().format_help()

    def format_usage(self) -> str:
        self._fill_self()
        return super().format_usage()


@cache
def field_comments(cls: type) -> dict[str, str]:
    """Each field's comment in ``cls``'s source: the one on its line, else the comment
    lines right above it.

    >>> from textrnn.train import TrainConfig
    >>> field_comments(TrainConfig)["epochs"]
    'passes over the training data'
    """
    source = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, str] = {}  # line -> comment text
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    found = {}
    for node in ast.parse(source).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        text = comments.get(node.end_lineno)
        if text is None:  # a block of comment lines right above the field
            above, row = [], node.lineno - 1
            while row in comments and lines[row - 1].lstrip().startswith("#"):
                above.insert(0, comments[row])
                row -= 1
            text = " ".join(above)
        found[node.target.id] = text
    return found


def _default(f) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def add_config_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    skip: tuple[str, ...] = (),
    choices: dict[str, typing.Sequence] | None = None,
    help: dict[str, str] | None = None,
) -> list[str]:
    """Add one flag per settable field of the dataclass ``cls``.

    Args:
        parser: where the flags go.
        cls: a config dataclass.
        skip: fields that get no flag (derived from the data, or metadata).
        choices: field -> allowed values.
        help: field -> help text, instead of the field's comment.

    Returns:
        The names of the fields that got a flag (what :func:`config_kwargs` reads back).
    """
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    choices, help = choices or {}, help or {}
    added = []
    for f in fields(cls):
        if f.name in skip or (f.default is MISSING and f.default_factory is MISSING):
            continue
        flag, default = "--" + f.name.replace("_", "-"), _default(f)
        text = (help.get(f.name) or comments.get(f.name) or f.name).replace("%", "%%")
        kind = hints[f.name]
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{text} (default: {'on' if default else 'off'})")
        elif typing.get_origin(kind) in (list, tuple):
            item = typing.get_args(kind)[0]
            parser.add_argument(flag, type=item, nargs="*", default=default,
                                metavar=f.name.upper(), help=f"{text} (default: {default})")
        else:
            # NaN is "off" (stop_at): say so rather than print "nan"
            shown = "off" if default != default else "%(default)s"
            parser.add_argument(flag, type=kind, default=default, choices=choices.get(f.name),
                                help=f"{text} (default: {shown})")
        added.append(f.name)
    return added


def config_kwargs(cls: type, args: argparse.Namespace, skip: tuple[str, ...] = (),
                  **given: Any) -> dict[str, Any]:
    """The keyword arguments of ``cls`` that ``args`` holds (the flags of
    :func:`add_config_flags`, or a hand-written flag of a field's name), with ``given``
    on top; fields in ``skip`` are not read, even where a flag of their name means
    something else (``train qa --tasks`` chooses data, ``QAConfig.tasks`` records it)."""
    hints = typing.get_type_hints(cls)
    found = {f.name: getattr(args, f.name) for f in fields(cls)
             if f.name not in skip and hasattr(args, f.name)}
    for name, value in found.items():
        if isinstance(value, list) and typing.get_origin(hints[name]) is tuple:
            found[name] = tuple(value)
    return {**found, **given}


def make_config(cls: type, **kwargs: Any):
    """``cls(**kwargs)``, its ValueError (a bad combination of settings) as a one-line
    user error."""
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise TextrnnError(str(err)) from None


# One CPU thread by default: measured on 2 cores busy with two other trainings,
# ``demo --max-steps 60`` took 16-17 s with 1 thread, 68-151 s with 0 (torch's choice)
# and 102-144 s with 2; ``sample --max-tokens 3000`` 3.7 s, 35 s and 23 s. Batch-1
# sampling and these small models gain little from more threads even when idle.
DEFAULT_THREADS = 1


def add_device_flags(parser: argparse.ArgumentParser, threads: int = DEFAULT_THREADS) -> None:
    """``--device`` (default ``auto``: CUDA when there is one) and ``--threads``."""
    parser.add_argument("--device", default="auto",
                        help=f"{', '.join(DEVICES)}; auto takes CUDA when there is a GPU "
                             "(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=threads,
                        help="CPU threads; 0 = torch's choice (one per core). 1, the default, "
                             "was 4-10x faster than 0 or 2 on a busy 2-core machine "
                             "(default: %(default)s)")


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every ``train <task>`` takes: data, run folder, batch size, resume, and
    one per :class:`~textrnn.train.TrainConfig` field."""
    parser.add_argument("--data", required=True, metavar="PATH",
                        help="training data: a file, or a folder (bAbI tasks, generated stories)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="run directory (checkpoints, metrics, curves)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="batch size (default: %(default)s)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last.pt")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in --out (without it, or --resume, "
                             "a run folder that holds a run is refused)")
    from textrnn.train import OPTIMIZERS, SCHEDULES, TrainConfig  # torch: see the docstring

    add_config_flags(parser, TrainConfig, skip=_TRAIN_SKIP, choices={
        "optimizer": sorted(OPTIMIZERS), "schedule": SCHEDULES, "budget_clock": ("wall", "cpu")})


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` that :func:`add_train_flags`' flags describe."""
    from textrnn.train import TrainConfig

    return make_config(TrainConfig, **config_kwargs(TrainConfig, args))
