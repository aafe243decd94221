"""The task models, and the one registry that maps a checkpoint's task name to its class.

Every registered class follows the same contract, which is all that
:func:`textrnn.train.fit` and :mod:`textrnn.checkpoint` rely on:

- ``config_class``: the class attribute naming its ``@dataclass`` config, and
  ``__init__(config)`` taking one; ``self.config`` holds it. A checkpoint stores
  ``asdict(model.config)`` and rebuilds the model as
  ``MODELS[task](MODELS[task].config_class(**model_config))``.
- ``loss(batch) -> Tensor`` (scalar), ``predict(batch) -> list``,
  ``evaluate(batches) -> dict[str, float]``, optionally ``num_tokens(batch) -> int``
  and ``on_evaluate(metrics)`` (called after each scheduled evaluation, e.g. to
  end MemN2N's linear start; state it changes must live in the state_dict).

Add a task by importing its class here and adding one entry; nothing else
branches on task names.
"""

from textrnn.models.classifier import Classifier
from textrnn.models.lm import LanguageModel
from textrnn.models.qa import QAModel
from textrnn.models.seq2seq import Seq2Seq
from textrnn.models.tagger import Tagger

MODELS = {
    "lm": LanguageModel,
    "qa": QAModel,
    "tagger": Tagger,
    "classifier": Classifier,
    "seq2seq": Seq2Seq,
}

__all__ = ["MODELS"]
