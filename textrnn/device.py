"""Where a model runs and in which mode: device names, moving batches, eval-mode brackets.

Inference (chat, eval, tag, translate, ...) and the trainer both use these, so
neither has to import the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from textrnn.errors import TextrnnError


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TextrnnError(f"device {name!r} requested, but CUDA is not available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise TextrnnError(f"unknown device {name!r}; expected auto, cpu or cuda") from None


def to_device(obj, device: torch.device):
    """Move every tensor in a nested dict/list/tuple to ``device``; other values pass through."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {key: to_device(value, device) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_device(value, device) for value in obj)
    return obj


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (CPU for a model without any)."""
    return next(model.parameters(), torch.empty(0)).device


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(model):`` runs the block in eval mode without gradients, then puts
    the model back in the mode it was in (training goes on after an evaluation).

    >>> layer = nn.Dropout(0.5)
    >>> with eval_mode(layer):
    ...     layer.training
    False
    >>> layer.training
    True
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)
