"""Focus: give the kinds of question a model still gets wrong a larger share of the steps.

A model trained jointly on many kinds of question learns most of them early and a few
late: in the quick start (13 generated kinds, 5 CPU-minutes) one-fact questions are at
100% within a minute while positions and paths are still learning at the end, each
with the 15% of the steps its share of the data gives it. After each evaluation the
batches of the next epoch are drawn with the mix

    w_t = (1 - φ) · n_t / N + φ · e_t / Σ_u e_u

where ``n_t`` is task t's number of training questions (N in all), ``e_t`` its
validation error and φ the focus (0 = the data's own mix, an ordinary epoch). The
first term keeps every kind in view, so a learned kind is not forgotten; the second
puts the rest of the steps where the errors are. An epoch keeps its length (N
questions); a task drawn more often than it has questions repeats them, each pass in a
new order.

The weights that an epoch follows are fixed when it starts (:meth:`Focus.set_epoch`);
an evaluation in the middle of an epoch changes the next one. That is what makes a
resumed run exact: the checkpoint stores both (:meth:`Focus.state_dict`).
"""

from __future__ import annotations

import torch


def check_focus(focus: float) -> None:
    """Refuse a φ outside [0, 1] (ValueError)."""
    if not 0.0 <= focus <= 1.0:
        raise ValueError(f"focus is a share, in [0, 1]; got {focus}")


def focus_weights(sizes: dict[int, int], errors: dict[int, float], focus: float
                  ) -> dict[int, float]:
    """The share of an epoch's questions each task gets (they sum to 1).

    Args:
        sizes: training questions per task, ``n_t``.
        errors: validation error per task, ``e_t`` in [0, 1]; a task missing here
            counts as error 0.
        focus: φ in [0, 1], the share of the epoch given out by error.

    >>> focus_weights({1: 300, 2: 100}, {1: 0.0, 2: 0.5}, 0.5)
    {1: 0.375, 2: 0.625}
    >>> focus_weights({1: 300, 2: 100}, {1: 0.0, 2: 0.0}, 0.5)  # nothing wrong: the data's mix
    {1: 0.75, 2: 0.25}
    """
    check_focus(focus)
    total = sum(sizes.values())
    base = {t: n / total for t, n in sizes.items()}
    error = {t: max(0.0, errors.get(t, 0.0)) for t in sizes}
    spread = sum(error.values())
    if spread == 0.0:
        return base
    return {t: (1 - focus) * base[t] + focus * error[t] / spread for t in sizes}


def counts(weights: dict[int, float], total: int) -> dict[int, int]:
    """Whole numbers of questions in the proportions ``weights``, summing to ``total``
    (largest remainders get the rounding).

    >>> counts({1: 0.5, 2: 0.25, 3: 0.25}, 10)
    {1: 5, 2: 3, 3: 2}
    """
    exact = {t: w * total for t, w in weights.items()}
    whole = {t: int(x) for t, x in exact.items()}
    by_remainder = sorted(exact, key=lambda t: (whole[t] - exact[t], t))
    for t in by_remainder[: total - sum(whole.values())]:
        whole[t] += 1
    return whole


def draw(members: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` of ``members`` (example indices, (n,) long): whole shuffled passes over
    them, then a shuffled part of one more; (count,) long."""
    n = len(members)
    if n == 0 or count == 0:
        return members[:0]
    passes = [members[torch.randperm(n, generator=generator)] for _ in range(-(-count // n))]
    return torch.cat(passes)[:count]


class Focus:
    """The epoch mix of a joint training set, updated from each evaluation's errors.

    Args:
        task: (N,) long, each training question's task id.
        focus: φ of :func:`focus_weights`; 0 keeps the data's own mix.
    """

    def __init__(self, task: torch.Tensor, focus: float) -> None:
        check_focus(focus)  # here too, so a bad φ fails at the start, not at the first eval
        self.task, self.focus = task, focus
        ids, sizes = task.unique(return_counts=True)
        self.sizes = dict(zip(ids.tolist(), sizes.tolist(), strict=True))
        self.members = {t: (task == t).nonzero().squeeze(1) for t in self.sizes}
        self.weights: dict[int, float] | None = None  # this epoch's mix; None = the data's
        self.pending: dict[int, float] | None = None  # the mix the next epoch starts with
        self.epoch = -1  # the epoch self.weights belong to

    def on_evaluate(self, metrics: dict[str, float]) -> None:
        """Take the per-task validation accuracies (``val_acc_task{N}``) for the next epoch."""
        if self.focus == 0.0 or len(self.sizes) < 2:
            return
        errors = {t: 1.0 - metrics[f"val_acc_task{t}"] for t in self.sizes
                  if f"val_acc_task{t}" in metrics}
        self.pending = focus_weights(self.sizes, errors, self.focus)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` with the latest mix (again the same one if it had started)."""
        if epoch != self.epoch:
            self.weights, self.epoch = self.pending, epoch

    def indices(self, generator: torch.Generator) -> torch.Tensor | None:
        """The epoch's questions, (N,) long, in task order (the batcher shuffles them);
        None while the mix is the data's own (an ordinary epoch)."""
        if self.weights is None:
            return None
        total = len(self.task)
        return torch.cat([draw(self.members[t], n, generator)
                          for t, n in sorted(counts(self.weights, total).items())])

    def state_dict(self) -> dict:
        """What a checkpoint keeps, so that a resumed run draws the same epochs."""
        def listed(w: dict[int, float] | None) -> list | None:
            return None if w is None else [[t, v] for t, v in sorted(w.items())]

        return {"weights": listed(self.weights), "pending": listed(self.pending),
                "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s mix."""
        def keyed(w: list | None) -> dict[int, float] | None:
            return None if w is None else {int(t): float(v) for t, v in w}

        self.weights, self.pending = keyed(state["weights"]), keyed(state["pending"])
        self.epoch = int(state["epoch"])
