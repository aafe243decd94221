"""Feed-forward baselines: the perceptron, the multi-layer perceptron, bag of words.

These are the "plain ANN" that recurrent models are measured against. A text
classifier built from them ignores word order entirely: it sees a document
as :func:`bag_of_words` counts and maps them to class logits.

- :class:`Perceptron` is one linear layer. It can only draw a hyperplane, so
  it learns AND and OR but never XOR (Minsky & Papert, *Perceptrons*, 1969).
- :class:`MLP` adds hidden layers with a nonlinearity; one hidden layer is
  enough for XOR (Rumelhart, Hinton & Williams, 1986).

Both return logits; train them with ``torch.nn.functional.cross_entropy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}


class Perceptron(nn.Module):
    """A single linear layer producing class logits.

    Equation::

        y = W x + b

    with ``W`` of shape ``(num_classes, input_size)``. Trained with
    cross-entropy this is multinomial logistic regression, the differentiable
    version of Rosenblatt's perceptron (whose step-function update rule we do
    not implement: gradient descent on the same linear model is simpler and
    reaches the same separating hyperplanes on separable data).

    Args:
        input_size: number of input features.
        num_classes: number of output classes.
    """

    def __init__(self, input_size: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score every class.

        Args:
            x: ``(B, input_size)`` float features.

        Returns:
            ``(B, num_classes)`` float logits.
        """
        return self.linear(x)  # (B, C)


class MLP(nn.Module):
    """Multi-layer perceptron: hidden layers with a nonlinearity, then a linear head.

    Equations, for hidden layers ``l = 1..L`` with ``h_0 = x``::

        h_l = dropout(f(W_l h_{l-1} + b_l))
        y   = W_out h_L + b_out

    where ``f`` is ReLU or tanh. With ``hidden_sizes=[]`` it is a
    :class:`Perceptron`.

    Args:
        input_size: number of input features.
        hidden_sizes: width of each hidden layer, input side first.
        num_classes: number of output classes.
        activation: ``"relu"`` or ``"tanh"``.
        dropout: drop probability applied after every hidden activation.

    Raises:
        ValueError: on an unknown activation or a dropout outside ``[0, 1)``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_sizes: Sequence[int],
        num_classes: int,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        sizes = [input_size, *hidden_sizes]
        self.hidden = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in pairwise(sizes))
        self.out = nn.Linear(sizes[-1], num_classes)
        self.activation = activation
        self.f = ACTIVATIONS[activation]
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score every class.

        Args:
            x: ``(B, input_size)`` float features.

        Returns:
            ``(B, num_classes)`` float logits.
        """
        h = x  # (B, input_size)
        for linear in self.hidden:
            h = self.dropout(self.f(linear(h)))  # (B, H_l)
        return self.out(h)  # (B, C)


def bag_of_words(ids: torch.Tensor, lengths: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Count how often each vocabulary id occurs in each sequence, ignoring padding.

    Positions at or beyond ``lengths[b]`` are padding and are not counted,
    whatever id they hold.

    Args:
        ids: ``(B, T)`` long token ids.
        lengths: ``(B,)`` long, real length of each row.
        vocab_size: ``V``, the number of ids.

    Returns:
        ``(B, V)`` float counts; row ``b`` sums to ``lengths[b]``.

    Raises:
        ValueError: if a real (non-padded) id is outside ``[0, V)``.

    >>> bag_of_words(torch.tensor([[2, 3, 2], [1, 0, 0]]), torch.tensor([3, 1]), 4)
    tensor([[0., 0., 2., 1.],
            [0., 1., 0., 0.]])
    """
    B, T = ids.shape
    mask = torch.arange(T, device=ids.device).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    real = ids[mask]  # (N,)
    if real.numel() and (int(real.min()) < 0 or int(real.max()) >= vocab_size):
        raise ValueError(f"ids must lie in [0, {vocab_size}) at real positions")
    # Padded slots point at id 0 with weight 0, so they add nothing to any count.
    index = ids.masked_fill(~mask, 0)  # (B, T)
    counts = torch.zeros(B, vocab_size, device=ids.device)  # (B, V)
    return counts.scatter_add_(1, index, mask.float())  # (B, V)
