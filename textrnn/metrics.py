"""Metrics that several tasks may report, over plain tensors."""

from __future__ import annotations

from torch import Tensor


def calibration_error(confidence: Tensor, correct: Tensor, bins: int = 10) -> float:
    """Expected calibration error: sum over equal-width confidence bins of the bin's share
    of the answers times |its accuracy - its mean confidence|.

    Args:
        confidence: (N,) float in [0, 1], the probability of each answer given.
        correct: (N,) float, 1 where the answer was right.

    >>> import torch
    >>> calibration_error(torch.tensor([0.9, 0.9, 0.6, 0.6]), torch.tensor([1., 1., 1., 0.]))
    0.1
    """
    if len(confidence) == 0:
        return 0.0
    which = (confidence * bins).long().clamp(max=bins - 1)  # (N,) bin of each answer
    error = 0.0
    for b in which.unique().tolist():
        inside = which == b
        error += inside.float().mean().item() * abs(correct[inside].mean().item()
                                                    - confidence[inside].float().mean().item())
    return round(error, 6)
