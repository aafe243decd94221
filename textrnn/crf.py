"""A linear-chain conditional random field over tag sequences (Lafferty et al. 2001).

As the output layer of a BiLSTM tagger (Huang et al. 2015, arXiv:1508.01991;
Lample et al. 2016, arXiv:1603.01360), it scores a whole tag path
``y = y_1..y_n`` of a sentence instead of each tag on its own. With emission
scores ``P`` (B, T, K) from the network and learned transition scores::

    s(x, y) = start[y_1] + Σ_{t=1..n} P[t, y_t] + Σ_{t=2..n} A[y_{t-1}, y_t] + end[y_n]

    log p(y | x) = s(x, y) - log Z(x),      log Z(x) = log Σ_{y'} exp s(x, y')

``log Z`` is summed over all ``K^n`` paths by the forward algorithm, in O(n K²)::

    α_1[j] = start[j] + P[1, j]
    α_t[j] = logsumexp_i (α_{t-1}[i] + A[i, j]) + P[t, j]          t = 2..n
    log Z  = logsumexp_j (α_n[j] + end[j])

and the best path by Viterbi, the same recursion with max for logsumexp and
back-pointers. Padded steps (``mask`` False, always after a sentence's real
steps) leave α unchanged, so one batched loop serves sentences of every length.

Transitions that a tag scheme forbids (``O`` -> ``I-PER`` in BIO2) can be
barred with ``allowed``: their scores are fixed at -10⁴, so no probable or
decoded path takes them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

FORBIDDEN = -1.0e4  # the score of a barred transition: exp() of it is 0 next to any real path


def bio_allowed(tags: list[str]) -> tuple[Tensor, Tensor, Tensor]:
    """The transitions BIO2 allows: ``I-X`` only after ``B-X`` or ``I-X``, never first.

    Returns:
        ``(allowed (K, K), start_allowed (K,), end_allowed (K,))`` bool, where
        ``allowed[i, j]`` says whether tag j may follow tag i.

    >>> allowed, start, end = bio_allowed(["O", "B-PER", "I-PER"])
    >>> allowed.int().tolist(), start.tolist(), end.tolist()
    ([[1, 1, 0], [1, 1, 1], [1, 1, 1]], [True, True, False], [True, True, True])
    """
    K = len(tags)
    allowed = torch.ones(K, K, dtype=torch.bool)  # (K, K)
    start = torch.ones(K, dtype=torch.bool)  # (K,)
    for j, tag in enumerate(tags):
        if tag.startswith("I-"):
            start[j] = False
            for i, previous in enumerate(tags):
                allowed[i, j] = previous[:1] in ("B", "I") and previous[2:] == tag[2:]
    return allowed, start, torch.ones(K, dtype=torch.bool)


class CRF(nn.Module):
    """Linear-chain CRF: path scores, log-partition, negative log-likelihood, Viterbi.

    Args:
        num_tags: K.
        allowed: optional ``(allowed (K, K), start_allowed (K,), end_allowed (K,))``
            bool masks (see :func:`bio_allowed`); barred scores are fixed at -10⁴.

    Parameters: ``transitions`` A (K, K), ``A[i, j]`` scores tag i followed by
    tag j; ``start_transitions`` (K,) and ``end_transitions`` (K,).
    """

    def __init__(self, num_tags: int, allowed: tuple[Tensor, Tensor, Tensor] | None = None
                 ) -> None:
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        self.start_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        if allowed is None:
            every = torch.ones(num_tags, dtype=torch.bool)  # (K,)
            allowed = (torch.ones(num_tags, num_tags, dtype=torch.bool), every, every)
        # Buffers, not config: they move with .to(device) and are saved in the state_dict.
        self.register_buffer("allowed", allowed[0].clone())
        self.register_buffer("start_allowed", allowed[1].clone())
        self.register_buffer("end_allowed", allowed[2].clone())

    def _scores(self) -> tuple[Tensor, Tensor, Tensor]:
        """(A (K, K), start (K,), end (K,)) with barred entries at FORBIDDEN."""
        forbid = torch.tensor(FORBIDDEN, dtype=self.transitions.dtype,
                              device=self.transitions.device)
        return (torch.where(self.allowed, self.transitions, forbid),
                torch.where(self.start_allowed, self.start_transitions, forbid),
                torch.where(self.end_allowed, self.end_transitions, forbid))

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """The score s(x, y) of the given tag paths.

        Args:
            emissions: P (B, T, K) float.
            tags: y (B, T) long in [0, K); any value at padded steps.
            mask: (B, T) bool, True at real steps; each row starts with >= 1 True
                and has no True after a False.

        Returns:
            (B,) float.
        """
        A, start, end = self._scores()
        B, T, K = emissions.shape
        tags = tags.masked_fill(~mask, 0)  # (B, T) padded steps point at a valid tag
        maskf = mask.to(emissions.dtype)  # (B, T)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T) P[t, y_t]
        trans = A[tags[:, :-1], tags[:, 1:]]  # (B, T-1) A[y_{t-1}, y_t]
        lengths = mask.sum(1)  # (B,)
        last = tags.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)  # (B,) y_n
        return (start[tags[:, 0]] + (emit * maskf).sum(1)
                + (trans * maskf[:, 1:]).sum(1) + end[last])  # (B,)

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """log Z(x) by the forward algorithm (see the module docstring).

        Args:
            emissions: P (B, T, K) float. mask: (B, T) bool, as in :meth:`score`.

        Returns:
            (B,) float.
        """
        A, start, end = self._scores()
        alpha = start + emissions[:, 0]  # (B, K) α_1
        for t in range(1, emissions.shape[1]):
            # α_{t-1}[i] + A[i, j], summed over i in log space
            step = torch.logsumexp(alpha.unsqueeze(2) + A, dim=1) + emissions[:, t]  # (B, K)
            alpha = torch.where(mask[:, t].unsqueeze(1), step, alpha)  # (B, K) padding: keep
        return torch.logsumexp(alpha + end, dim=1)  # (B,)

    def marginals(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Each step's tag probabilities ``p(y_t = k | x)``, summed over all paths.

        They are the gradient of ``log Z`` with respect to the emissions (each
        ``P[t, k]`` enters a path's score once, when the path has ``y_t = k``), so
        autograd through :meth:`log_partition` runs the forward-backward algorithm.

        Args:
            emissions: P (B, T, K) float. mask: (B, T) bool, as in :meth:`score`.

        Returns:
            (B, T, K) float; each real step's row sums to 1, padded rows are 0.
        """
        with torch.enable_grad():  # also under no_grad, as at inference
            x = emissions.detach().requires_grad_()  # (B, T, K)
            (grad,) = torch.autograd.grad(self.log_partition(x, mask).sum(), x)
        return grad * mask.unsqueeze(2)  # (B, T, K)

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Negative log-likelihood -log p(y | x) = log Z(x) - s(x, y) of each sentence.

        Returns:
            (B,) float, each >= 0.
        """
        return self.log_partition(emissions, mask) - self.score(emissions, tags, mask)  # (B,)

    @torch.no_grad()
    def viterbi(self, emissions: Tensor, mask: Tensor) -> list[list[int]]:
        """The highest-scoring tag path of each sentence.

        Args:
            emissions: P (B, T, K) float. mask: (B, T) bool, as in :meth:`score`.

        Returns:
            B lists of tag ids, each as long as its sentence.
        """
        A, start, end = self._scores()
        B, T, K = emissions.shape
        delta = start + emissions[:, 0]  # (B, K) best score of a path ending in tag j
        pointers = []
        for t in range(1, T):
            best, argbest = (delta.unsqueeze(2) + A).max(dim=1)  # (B, K), (B, K) over i
            step = best + emissions[:, t]  # (B, K)
            keep = mask[:, t].unsqueeze(1)  # (B, 1)
            delta = torch.where(keep, step, delta)  # (B, K)
            # At a padded step, point each tag at itself, so backtracking passes through.
            identity = torch.arange(K, device=emissions.device).expand(B, K)  # (B, K)
            pointers.append(torch.where(keep, argbest, identity))  # (B, K)
        last = (delta + end).argmax(dim=1)  # (B,)
        path = [last]
        for back in reversed(pointers):
            path.append(back.gather(1, path[-1].unsqueeze(1)).squeeze(1))  # (B,)
        tags = torch.stack(path[::-1], dim=1).tolist()  # (B, T)
        lengths = mask.sum(1).tolist()
        return [row[:n] for row, n in zip(tags, lengths, strict=True)]
