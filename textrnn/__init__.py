"""textrnn: recurrent neural networks for text, written from their equations.

>>> import textrnn
>>> layer = textrnn.LSTM(8, 16, bidirectional=True)
>>> # bot = textrnn.load("runs/chatbot/best.pt"); bot.answer(story, "Where is Mary?")
"""

from __future__ import annotations

from textrnn.cells import GRUCell, LSTMCell, RNNCell
from textrnn.layers import GRU, LSTM, RNN, detach_state
from textrnn.vocab import Vocab

__version__ = "0.1.0"


def load(path: str, device: str = "cpu"):
    """Load a checkpoint as the object you use it through.

    A ``qa`` checkpoint comes back as a :class:`textrnn.chat.Answerer`
    (``bot.answer(story_lines, question)`` -> answer, confidence, evidence);
    any other task as its :class:`textrnn.checkpoint.Bundle` (model, vocabs, config).

    Raises:
        textrnn.errors.CheckpointError: missing, corrupt or foreign file.
    """
    from textrnn import checkpoint
    from textrnn.chat import Answerer

    wrappers = {"qa": Answerer}  # task -> how people use it; the rest get the Bundle
    bundle = checkpoint.load(path, map_location=device)
    return wrappers.get(bundle.task, lambda b: b)(bundle)


__all__ = [
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "RNN",
    "RNNCell",
    "Vocab",
    "__version__",
    "detach_state",
    "load",
]
