"""The ``textrnn`` command line: a package of thin shells over :mod:`textrnn.pipelines`.

::

    textrnn data generate --out data/generated
    textrnn train qa --data data/generated --out runs/chatbot
    textrnn eval --checkpoint runs/chatbot/best.pt --data data/generated
    textrnn chat --checkpoint runs/chatbot/best.pt

One module per task (:data:`TASK_COMMANDS`) holds its flags and output formatting:
its ``train <task>`` subcommand, its ``eval`` flags and the commands of its own
(``chat``, ``sample``, ``tag``, ...). :mod:`textrnn.cli.data` holds every
``textrnn data <name>``. Bad input never ends in a traceback: user errors print one
line, ``textrnn: error: ...``, to stderr and exit with status 2.

Start-up: nothing here imports torch (about 2 s) at module level. The task modules import
their models and pipelines inside the functions that use them, and the parsers whose flags
come from config dataclasses (``train TASK``) are :class:`~textrnn.cli.flags.LazyParser` s,
filled for the one command that runs; so ``textrnn --help`` and ``textrnn data ...`` start
in about a tenth of a second (tests/test_cli_startup.py holds them to it).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys

from textrnn import __version__
from textrnn.cli import classifier, common, data, export, flags, inspect, lm, qa, seq2seq, tagger
from textrnn.errors import TextrnnError
from textrnn.rounding import round_floats

# Each module: TASK (the checkpoint task it handles), HELP, add_train_flags(parser),
# train(args) -> int, add_eval_flags(group), evaluate(bundle, args) -> dict,
# format_eval(results) -> str, add_commands(commands).
TASK_COMMANDS = [qa, lm, tagger, classifier, seq2seq]


class _Notes(logging.Handler):
    """Library notes as ``note: ...`` lines on the stderr of the moment (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"note: {record.getMessage()}", file=sys.stderr)


MAX_ERROR_CHARS = 400  # an error line is read, not scrolled

def cmd_eval(args: argparse.Namespace) -> int:
    """``eval``: score a checkpoint on a data file, with the module of the checkpoint's task."""
    bundle = common.load(args)
    module = next(m for m in TASK_COMMANDS if m.TASK == bundle.task)
    results = module.evaluate(bundle, args)
    print(json.dumps(round_floats(results)) if args.json else module.format_eval(results))
    return 0


def build_parser(lazy: bool = False) -> argparse.ArgumentParser:
    """The full argument parser.

    Args:
        lazy: leave the flags of ``train TASK`` (and other parsers that need torch) to be
            added when that command parses or prints help; what :func:`main` does. By
            default every parser is complete, for code that walks them.
    """
    parser = flags.LazyParser(prog="textrnn", description="Recurrent networks for text.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do"
    )
    train = commands.add_parser(
        "train", help="train a model for a task", description="Train a model; one subcommand "
        "per task. Every one takes --max-steps (a smoke run), --max-minutes and --resume."
    )
    tasks = train.add_subparsers(dest="task", required=True, metavar="TASK",
                                 help="which task to train")
    for module in TASK_COMMANDS:
        p = tasks.add_parser(module.TASK, help=module.HELP, description=module.HELP,
                             fill=functools.partial(_train_flags, module))
        p.set_defaults(func=module.train)

    ev = commands.add_parser(
        "eval", help="evaluate a checkpoint on a data file",
        description="Evaluate a checkpoint of any task on a data file; the flags of each "
        "task's group apply to its checkpoints.",
    )
    ev.add_argument("--checkpoint", required=True, metavar="FILE", help="a .pt checkpoint")
    ev.add_argument("--data", required=True, metavar="PATH",
                    help="data to evaluate on: a file, or a folder (bAbI tasks, generated stories)")
    ev.add_argument("--json", action="store_true", help="print the results as one JSON object")
    ev.add_argument("--batch-size", type=int, default=32, help="batch size (default: %(default)s)")
    flags.add_device_flags(ev)
    for module in TASK_COMMANDS:
        module.add_eval_flags(ev.add_argument_group(f"{module.TASK} checkpoints"))
    ev.set_defaults(func=cmd_eval)

    data.add_commands(commands)
    for module in TASK_COMMANDS:
        module.add_commands(commands)
    export.add_commands(commands)  # textrnn export: ONNX files for other runtimes
    inspect.add_commands(commands)  # textrnn inspect: pictures of a model's insides
    return parser if lazy else parser.fill_now()


def _train_flags(module, parser: argparse.ArgumentParser) -> None:
    """The flags of ``train <module.TASK>``: the trainer's, then the task's."""
    flags.add_train_flags(parser)
    module.add_train_flags(parser)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 on any user error)."""
    args = build_parser(lazy=True).parse_args(argv)
    # The library's notes (a fallback file, a skipped tune) go to the "textrnn" logger.
    log = logging.getLogger("textrnn")
    if not any(isinstance(h, _Notes) for h in log.handlers):
        log.addHandler(_Notes())
        log.setLevel(logging.INFO)
    try:
        return args.func(args)
    except TextrnnError as err:
        message = str(err)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as err:
        message = f"{err.filename}: {err.strerror}" if err.filename else str(err)
    except KeyboardInterrupt:
        message = "interrupted"
    message = " ".join(message.split())
    if len(message) > MAX_ERROR_CHARS:  # an error quoting data could fill the screen
        message = message[:MAX_ERROR_CHARS - 30] + f" ... ({len(message)} characters)"
    print(f"textrnn: error: {message}", file=sys.stderr)
    return 2


__all__ = ["build_parser", "main"]
