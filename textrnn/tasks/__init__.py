"""Per-task glue between the command line and the library: one object per task.

The CLI loops over :data:`TASKS` to build its ``train <task>`` subcommands and
dispatches ``eval``/``sample`` on a checkpoint's ``task``, so adding a task means
adding one entry here (and its model in :data:`textrnn.models.MODELS`), never
editing an ``if`` chain. Each task object provides:

- ``help``: one line for ``textrnn train --help``;
- ``best_metric``, ``best_mode``: the ``evaluate()`` key that picks ``best.pt``,
  and ``"min"`` or ``"max"``;
- ``add_train_args(parser)``: its own flags (the CLI adds the common ones:
  ``--data --out --epochs --max-steps --device --seed --resume --eval-every
  --lr --batch-size``, ...);
- ``build(args) -> (model, vocabs, train_data, val_data)``: read the files,
  build the vocabularies from the training split only, make the batches and
  the model (seeded with ``args.seed``);
- ``add_eval_args(group)``: flags for ``textrnn eval``. All tasks share the one
  ``eval`` parser, so pick names no other task uses with another meaning;
- ``evaluate(bundle, args) -> dict`` and ``format_eval(results) -> str``;
- optionally ``sample(bundle, args) -> Iterator[str]`` for ``textrnn sample`` (and
  ``add_sample_args(group)`` for its own sample flags), ``score(bundle, sentences)``
  for ``textrnn score``;
- optionally ``add_data_commands(datasets)``: ``textrnn data <name>`` subcommands
  (argparse subparsers; each sets its own ``func``);
- optionally ``add_commands(commands)``: top-level commands of its own, such as
  ``textrnn tag``; each sets ``func(args) -> int`` and raises
  :class:`~textrnn.errors.TextrnnError` for user errors.
"""

from textrnn.tasks.classifier import ClassifierTask
from textrnn.tasks.lm import LMTask
from textrnn.tasks.qa import QATask
from textrnn.tasks.seq2seq import Seq2SeqTask
from textrnn.tasks.tagger import TaggerTask

TASKS = {
    "lm": LMTask(),
    "qa": QATask(),
    "tagger": TaggerTask(),
    "classifier": ClassifierTask(),
    "seq2seq": Seq2SeqTask(),
}

__all__ = ["TASKS"]
