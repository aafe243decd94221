"""The task models, and the one registry that maps a checkpoint's task name to its class.

Every registered class follows :class:`TaskModel`, which is all that
:func:`textrnn.train.fit` and :mod:`textrnn.checkpoint` rely on. A checkpoint
stores ``model.task``, ``asdict(model.config)`` and ``model.vocabs``, and
:func:`build` rebuilds the model from them. Add a task by importing its class
here and adding one entry; nothing else branches on task names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Protocol, runtime_checkable

from torch import Tensor

from textrnn.models.classifier import Classifier
from textrnn.models.lm import LanguageModel
from textrnn.models.qa import QAModel
from textrnn.models.seq2seq import Seq2Seq
from textrnn.models.tagger import Tagger
from textrnn.vocab import Vocab

MODELS = {cls.task: cls for cls in (LanguageModel, QAModel, Tagger, Classifier, Seq2Seq)}


@runtime_checkable
class TaskModel(Protocol):
    """What every entry of :data:`MODELS` provides (an ``nn.Module`` besides).

    Optional, looked up with ``getattr`` by the trainer: ``num_tokens(batch) -> int``
    (for tokens/s), ``on_evaluate(metrics)`` (after each scheduled evaluation, e.g.
    to end MemN2N's linear start; any state it changes must live in the state_dict).
    """

    task: ClassVar[str]  # its key in MODELS, stored in every checkpoint
    config_class: ClassVar[type]  # the @dataclass that __init__(config) takes
    best_metric: ClassVar[str]  # the evaluate() key that picks best.pt ...
    best_mode: ClassVar[str]  # ... and whether "min" or "max" of it is best
    config: Any  # the config_class instance it was built from
    vocabs: dict[str, Vocab]  # name -> vocabulary, from the training split; set by build()

    def loss(self, batch: dict) -> Tensor:
        """The scalar training loss of one batch."""
        ...

    def predict(self, batch: dict) -> list:
        """One prediction per example of the batch (eval mode, no gradients)."""
        ...

    def evaluate(self, batches: Iterable[dict]) -> dict[str, float]:
        """Validation metrics over batches; ``best_metric`` is among the keys."""
        ...


def build(task: str, config: Any, vocabs: dict[str, Vocab]) -> TaskModel:
    """A fresh ``MODELS[task]`` for ``config`` that carries ``vocabs`` (what a checkpoint
    needs to rebuild it). Seed torch first: the initial weights are drawn here.

    Raises:
        KeyError: for an unknown task.
    """
    model = MODELS[task](config)
    model.vocabs = dict(vocabs)
    return model


__all__ = ["MODELS", "TaskModel", "build"]
