"""textrnn: recurrent neural networks for text, written from their equations.

>>> import textrnn
>>> layer = textrnn.LSTM(8, 16, bidirectional=True)
>>> # bot = textrnn.load("runs/chatbot/best.pt"); bot.answer(story, "Where is Mary?")
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports them
    from textrnn.cells import GRUCell, LSTMCell, RNNCell
    from textrnn.layers import GRU, LSTM, RNN, detach_state
    from textrnn.vocab import Vocab

__version__ = "0.1.0"

# Exported name -> the module that defines it. They are imported on first use (PEP 562),
# not here: they import torch (about 2 s), and `textrnn --help` or `textrnn data ...` goes
# through this package without needing it.
_LAZY = {
    "GRUCell": "textrnn.cells", "LSTMCell": "textrnn.cells", "RNNCell": "textrnn.cells",
    "GRU": "textrnn.layers", "LSTM": "textrnn.layers", "RNN": "textrnn.layers",
    "detach_state": "textrnn.layers", "Vocab": "textrnn.vocab",
}


def __getattr__(name: str):
    """Import an exported name on first access, then keep it in the package's namespace."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
