"""An exponential moving average of a model's weights (Polyak & Juditsky 1992), for fit.

After every optimizer step, with θ_t the weights just updated::

    d_t = min(decay, (1 + t) / (10 + t))       # t = updates so far, 1 for the first
    a_t = d_t · a_{t-1} + (1 - d_t) · θ_t       # a_0 = θ_0, the initial weights

The warm-up of ``d_t`` is TensorFlow's ``ExponentialMovingAverage(num_updates=t)``: without
it the average of a short run would be mostly the random initial weights (at 0.999, 37% of
``a_1000`` is ``θ_0``). With it, until ``d_t`` reaches ``decay`` (t ≈ 9,000 at 0.999),
``a_t`` weighs step ``s`` by about ``9 s^8 / t^9``: 61% of the weight is on the last tenth
of the steps so far, 87% on the last fifth.

Only the parameters are averaged; buffers and the ``_extra_state`` of a module (the LM's
carried hidden state) stay the model's own. :func:`textrnn.train.fit` validates and saves
the average; a checkpoint then holds it as its ``state_dict`` (what ``eval``,
``translate``, ``export`` and ``textrnn.load`` use, unchanged), and beside it, in
``extra["ema"]``, what ``--resume`` needs to go on exactly: the weights the optimizer
trains and the number of updates. A checkpoint of a run without it has no such entry.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from textrnn.errors import CheckpointError

log = logging.getLogger("textrnn.train")  # the trainer's notes
WARMUP = 10  # d_t = min(decay, (1 + t) / (WARMUP + t))


class WeightAverage:
    """The moving average ``a_t`` of ``model``'s parameters; with ``decay`` 0, nothing (every
    method is then a no-op, so the trainer need not ask).

    Args:
        model: the model being trained; the average starts at its weights.
        decay: the largest ``d_t``, in [0, 1); 0 = off.

    Attributes:
        average: parameter name -> ``a_t`` (float tensors on the model's device).
        updates: ``t``, the optimizer steps averaged so far.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema must be in [0, 1) (0 = off), got {decay}")
        self.decay, self.updates = decay, 0
        self.average = ({name: p.detach().clone() for name, p in model.named_parameters()}
                        if decay else {})

    def rate(self) -> float:
        """``d_t`` of the next update."""
        t = self.updates + 1
        return min(self.decay, (1 + t) / (WARMUP + t))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """``a_t = d_t · a_{t-1} + (1 - d_t) · θ_t``; call after each optimizer step."""
        if not self.decay:
            return
        d = self.rate()
        for name, theta in model.named_parameters():
            self.average[name].mul_(d).add_(theta, alpha=1.0 - d)
        self.updates += 1

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[dict]:
        """Put the average into ``model``'s parameters for the ``with`` block, then the
        trained weights back (bit for bit).

        Yields:
            What a checkpoint saved inside the block needs to resume, for its
            ``extra["ema"]``: ``{"decay", "updates", "weights"}`` (the trained weights:
            name -> tensor); ``{}`` when off.
        """
        if not self.decay:
            yield {}
            return
        params = dict(model.named_parameters())
        trained = {name: p.detach().clone() for name, p in params.items()}
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(self.average[name])
        try:
            yield {"decay": self.decay, "updates": self.updates, "weights": trained}
        finally:
            with torch.no_grad():
                for name, p in params.items():
                    p.copy_(trained[name])

    @torch.no_grad()
    def resume(self, path: Path, state: dict | None, model: nn.Module) -> None:
        """Go on from a checkpoint ``path`` that ``model`` was just loaded from (so it holds
        the saved average): the average becomes ``model``'s weights, and ``model`` gets the
        trained weights of ``state`` (its ``extra["ema"]``).

        A checkpoint without ``state`` (of a run without an average, or of a textrnn from
        before it) starts the average at the loaded weights, with a note.

        Raises:
            CheckpointError: when ``state`` does not fit ``model``.
        """
        if not self.decay:
            return
        if not state:
            log.warning("%s holds no weight average: the average starts at its weights", path)
            return
        params = dict(model.named_parameters())
        weights, updates = state.get("weights"), state.get("updates")
        if (not isinstance(weights, dict) or not isinstance(updates, int)
                or set(weights) != set(params)
                or any(weights[n].shape != p.shape for n, p in params.items())):
            raise CheckpointError(f"{path}: cannot resume from it: its extra 'ema' does not "
                                  "fit the model")
        for name, p in params.items():
            self.average[name].copy_(p)
            p.copy_(weights[name])
        self.updates = updates


__all__ = ["WeightAverage"]
