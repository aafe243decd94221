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


# Temperatures fit_temperature tries: 0.25 to 4 in 48 even steps of log T.
TEMPERATURES = tuple(round(4.0 ** (k / 24 - 1), 4) for k in range(49))


def fit_temperature(logits: Tensor, answers: Tensor,
                    grid: tuple[float, ...] = TEMPERATURES) -> float:
    """The temperature T of ``grid`` that minimises the mean cross-entropy of
    ``softmax(logits / T)`` (Guo et al. 2017, "On calibration of modern neural
    networks"): fitted on validation answers, it calibrates the confidence without
    changing a single answer.

    Args:
        logits: (N, A) float scores or log-probabilities.
        answers: (N,) long, the right answers; -100 (unknown) is left out.

    >>> import torch
    >>> logits = torch.tensor([[2.0, 0.0]] * 4)  # softmax 0.88, right 3 of 4 times
    >>> fit_temperature(logits, torch.tensor([0, 0, 0, 1]))  # the grid's nearest to 2 / ln 3
    1.7818
    """
    import torch.nn.functional as F

    known = answers != -100
    if not bool(known.any()):
        return 1.0
    logits, answers = logits[known].float(), answers[known]
    losses = [F.cross_entropy(logits / t, answers).item() for t in grid]
    return grid[min(range(len(grid)), key=losses.__getitem__)]
