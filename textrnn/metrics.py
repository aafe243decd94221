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


def unsure_threshold(confidence: Tensor, correct: Tensor,
                     grid: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                     min_count: int = 5) -> float:
    """The confidence below which an answer is more likely wrong than right: the largest
    ``t`` of ``grid`` such that the answers under ``t`` (at least ``min_count`` of them)
    are right less than half the time; ``grid[0]`` when there is none.

    Chosen on validation answers, it is where the chatbot starts saying it is not sure.

    >>> import torch
    >>> conf = torch.tensor([0.35, 0.45, 0.55, 0.65, 0.95] * 2)
    >>> right = torch.tensor([0., 0., 1., 1., 1.] * 2)
    >>> unsure_threshold(conf, right, min_count=2)  # under 0.6: 2 right of 6
    0.6
    """
    best = grid[0]
    for t in grid:
        below = confidence < t
        if int(below.sum()) >= min_count and correct[below].float().mean().item() < 0.5:
            best = t
    return best
