"""The tasks as typed Python: one module per task, each with ``build`` (data and model
for :func:`textrnn.train.fit`), ``evaluate`` and its use functions (``answer``, ``tag``,
``classify``, ``translate``, ``sample``, ``score``).

The command line (:mod:`textrnn.cli`) is a thin shell over these functions; anything
it does, a Python user does with them. No function here takes parsed command-line arguments
or prints: notes go to the ``textrnn`` logger, user errors are raised as
:class:`~textrnn.errors.TextrnnError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from textrnn.models import TaskModel


@dataclass
class Run:
    """What a pipeline's ``build`` returns: the arguments :func:`textrnn.train.fit` takes.

    Attributes:
        model: a fresh model that carries its vocabularies (``model.vocabs``).
        train_data: re-iterable batches, with ``set_epoch`` for per-epoch shuffling.
        val_data: re-iterable batches for ``model.evaluate``.
    """

    model: TaskModel
    train_data: Iterable[dict]
    val_data: Iterable[dict]


__all__ = ["Run"]
