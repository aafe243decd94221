"""Tests for textrnn.mlp: shapes, what a perceptron can and cannot learn, bag of words."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from textrnn.mlp import MLP, Perceptron, bag_of_words

X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])  # (4, 2)
TRUTH_TABLES = {
    "and": torch.tensor([0, 0, 0, 1]),
    "or": torch.tensor([0, 1, 1, 1]),
    "xor": torch.tensor([0, 1, 1, 0]),
}


@pytest.fixture(autouse=True)
def seeded() -> Iterator[None]:
    """Seed torch for each test without leaking the seed into other tests."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield


def fit_accuracy(model: torch.nn.Module, y: torch.Tensor, steps: int = 300) -> float:
    """Full-batch Adam on the four boolean inputs; returns training accuracy."""
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(X), y).backward()
        optimizer.step()
    with torch.no_grad():
        return (model(X).argmax(dim=1) == y).float().mean().item()


def test_perceptron_is_one_linear_layer() -> None:
    model = Perceptron(input_size=7, num_classes=3)
    assert model(torch.randn(5, 7)).shape == (5, 3)
    assert [tuple(p.shape) for p in model.parameters()] == [(3, 7), (3,)]
    x = torch.randn(2, 7)
    expected = x @ model.linear.weight.T + model.linear.bias  # y = W x + b
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize("gate", ["and", "or"])
def test_perceptron_learns_linearly_separable_gates(gate: str) -> None:
    assert fit_accuracy(Perceptron(2, 2), TRUTH_TABLES[gate]) == 1.0


def test_perceptron_cannot_learn_xor() -> None:
    # No line separates XOR, so at most 3 of the 4 points can be right.
    assert fit_accuracy(Perceptron(2, 2), TRUTH_TABLES["xor"], steps=500) <= 0.75


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mlp_learns_xor(activation: str) -> None:
    model = MLP(2, [8], 2, activation=activation)
    assert fit_accuracy(model, TRUTH_TABLES["xor"]) == 1.0


def test_mlp_shapes_and_layers() -> None:
    model = MLP(input_size=10, hidden_sizes=[16, 8], num_classes=4, activation="tanh")
    assert model(torch.randn(3, 10)).shape == (3, 4)
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(16, 10), (16,), (8, 16), (8,), (4, 8), (4,)]


def test_mlp_matches_its_equations() -> None:
    model = MLP(3, [5], 2, activation="tanh")
    x = torch.randn(4, 3)
    (hidden,) = model.hidden
    h = torch.tanh(x @ hidden.weight.T + hidden.bias)  # h = f(W1 x + b1)
    y = h @ model.out.weight.T + model.out.bias  # y = W2 h + b2
    torch.testing.assert_close(model(x), y)


def test_mlp_without_hidden_layers_is_linear() -> None:
    model = MLP(6, [], 3)
    assert len(model.hidden) == 0
    assert sum(p.numel() for p in model.parameters()) == 6 * 3 + 3


def test_mlp_dropout_only_in_training() -> None:
    model = MLP(4, [64], 2, dropout=0.5)
    x = torch.randn(8, 4)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("kwargs", [{"activation": "sigmoid"}, {"dropout": 1.0}, {"dropout": -0.1}])
def test_mlp_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        MLP(2, [4], 2, **kwargs)


def test_bag_of_words_counts_and_excludes_padding() -> None:
    # Row 1 is padded with id 0 *and* with a real-looking id 3: neither may count.
    ids = torch.tensor([[2, 3, 2, 1], [1, 0, 3, 3]])  # (B=2, T=4)
    lengths = torch.tensor([4, 1])
    bow = bag_of_words(ids, lengths, vocab_size=5)
    assert bow.dtype == torch.float32 and bow.shape == (2, 5)
    assert bow.tolist() == [[0, 1, 2, 1, 0], [0, 1, 0, 0, 0]]
    assert bow.sum(dim=1).tolist() == [4.0, 1.0]


def test_bag_of_words_empty_row_and_ignores_out_of_range_padding() -> None:
    ids = torch.tensor([[99, 99], [4, 99]])  # 99 lies only in padded slots
    bow = bag_of_words(ids, torch.tensor([0, 1]), vocab_size=5)
    assert bow.tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1]]


def test_bag_of_words_rejects_out_of_range_real_ids() -> None:
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        bag_of_words(torch.tensor([[5]]), torch.tensor([1]), vocab_size=5)


def test_bag_of_words_feeds_an_mlp() -> None:
    ids = torch.tensor([[1, 2, 0], [3, 0, 0]])
    features = bag_of_words(ids, torch.tensor([2, 1]), vocab_size=4)  # (B, V)
    assert MLP(4, [8], 2)(features).shape == (2, 2)
