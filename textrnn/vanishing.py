"""The vanishing gradient, measured: a plain RNN, a GRU and an LSTM on a recall task.

Bengio, Simard & Frasconi (1994) showed why a plain RNN cannot learn long
dependencies: the gradient that reaches ``k`` steps back is a product of ``k``
Jacobians ``∂h_t/∂h_{t-1} = diag(tanh') W_hh``, which shrinks geometrically when
their norm is below 1. Hochreiter & Schmidhuber's LSTM (1997, with the forget
gate of Gers et al. 2000) adds the additive cell path ``c_t = f ⊙ c_{t-1} + i ⊙ g``,
whose Jacobian is ``diag(f)``: near 1 when the network chooses to remember.

The task: read a symbol, then ``T`` distractors, then a query mark, and answer
the symbol::

    x:  s  d_1 d_2 ... d_T  ?        s ∈ K symbols (chance 1/K), d_j ∈ distractor tokens
    y:                      s        one prediction, from the last hidden state

One model per cell and distance ``T`` is trained on distances drawn uniformly
from ``1..T`` and tested at ``T``: the short cases in the mix are the ladder that
leads to the long ones, and the test asks whether the ladder reaches ``T``. (With
the distances drawn log-uniformly instead, many more of them short, even the plain
RNN learns to latch the symbol at T = 100.) The gradient norms ``‖∂L/∂h_{t-k}‖``
are measured on sequences of the longest distance, at initialisation and on the
model trained for it.

Expected result (``textrnn demo vanishing --threads 1``, seed 0: 2 min 38 s of one
CPU core for the 15 models): the plain RNN is right 100% up to T = 20, 50% at 50
and 12% (chance) at 100; the GRU and the LSTM are right 100% at every distance. At
initialisation the plain RNN's gradient ratio at k = 50 is 4e-15, the LSTM's 3e-05.
docs/inspect.md has the pictures.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textrnn.cells import gru_recurrence, lstm_recurrence, rnn_recurrence
from textrnn.layers import LAYERS

CELLS = ("rnn", "gru", "lstm")  # the order of every curve and table


@dataclass
class VanishingConfig:
    """The recall task, the three models and their shared training budget."""

    num_symbols: int = 8  # K symbols to recall; chance accuracy is 1/K
    num_distractors: int = 8  # filler tokens; distractors are drawn from symbols and fillers
    embedding_size: int = 16  # token embedding width
    hidden_size: int = 64  # H, the same for the three cells ("of equal size")
    # one model per distance T and cell, trained on distances drawn uniformly from 1..T and
    # tested at T: the accuracy curve
    distances: list[int] = field(default_factory=lambda: [5, 10, 20, 50, 100])
    eval_examples: int = 512  # test sequences per distance (fresh, same for every cell)
    grad_examples: int = 64  # sequences of max(distances) in one gradient-norm curve
    batch_size: int = 64  # training sequences per step
    lr: float = 3e-3  # Adam learning rate
    grad_clip: float = 1.0  # gradient-norm clipping; a plain RNN's gradient can explode
    max_steps: int = 2000  # training steps per model (cell and distance), at most
    minutes: float = 4.0  # wall-clock cap for all the models together (split by cost)
    # LSTM forget-gate bias at initialisation (Gers et al. 2000, Jozefowicz et al. 2015);
    # None keeps torch's draw near 0, where f ≈ 0.5 halves the cell path every step
    forget_bias: float | None = 1.0
    seed: int = 0  # weights, training batches and test sets

    @property
    def vocab_size(self) -> int:
        """Symbols, fillers and the query mark."""
        return self.num_symbols + self.num_distractors + 1

    @property
    def chance(self) -> float:
        """Accuracy of guessing: 1/K."""
        return 1.0 / self.num_symbols


def recall_batch(config: VanishingConfig, batch_size: int, distance: int,
                 generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Sequences ``s d_1 .. d_T ?`` and their answers ``s``.

    Ids: symbols ``0..K-1``, fillers ``K..K+D-1``, the query mark ``K+D``; the
    distractors are drawn from symbols and fillers alike.

    Args:
        config: sizes of the task. batch_size: B. distance: T >= 0 distractors.
        generator: a CPU generator; the same state gives the same batch.

    Returns:
        x: (B, T+2) long. y: (B,) long, the first token of each row.
    """
    K, D = config.num_symbols, config.num_distractors
    y = torch.randint(K, (batch_size,), generator=generator)  # (B,)
    # The fillers include the symbols themselves: a model cannot just ignore every symbol
    # token, it must keep the first and let the later ones pass.
    fill = torch.randint(K + D, (batch_size, distance), generator=generator)  # (B, T)
    query = torch.full((batch_size, 1), K + D)  # (B, 1)
    return torch.cat([y[:, None], fill, query], 1), y  # (B, T+2), (B,)


class RecallNet(nn.Module):
    """Embedding, one recurrent layer of :mod:`textrnn.layers`, a linear read-out of the
    last hidden state.

    Args:
        cell: "rnn" (tanh), "gru" or "lstm". config: sizes and the forget bias.
    """

    def __init__(self, cell: str, config: VanishingConfig) -> None:
        super().__init__()
        self.cell = cell
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.rnn = LAYERS[cell](config.embedding_size, config.hidden_size)
        self.head = nn.Linear(config.hidden_size, config.num_symbols)
        if cell == "lstm" and config.forget_bias is not None:  # rows i, f, g, o: f second
            H = config.hidden_size
            with torch.no_grad():
                self.rnn.bias_ih_l0[H:2 * H].fill_(config.forget_bias)
                self.rnn.bias_hh_l0[H:2 * H].zero_()

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T) long -> logits (B, K) from the last step's hidden state."""
        out, _ = self.rnn(self.embedding(x))  # (B, T, H)
        return self.head(out[:, -1])  # (B, K)


class StateGradients(NamedTuple):
    """``∂L/∂h_t`` for every step, and the states themselves.

    Attributes:
        grads: (T, B, H), the gradient of the summed loss with respect to ``h_t``
            (for the LSTM with ``c_t`` held as a separate variable).
        h: (T, B, H) hidden states. c: (T, B, H) LSTM cell states, or None.
        cell_grads: (T, B, H) ``∂L/∂c_t`` when asked for (LSTM), else None.
    """

    grads: Tensor
    h: Tensor
    c: Tensor | None
    cell_grads: Tensor | None = None


def state_gradients(model: RecallNet, x: Tensor, y: Tensor,
                    with_cell: bool = False) -> StateGradients:
    """Run the model's layer step by step through the equation cells and take
    ``∂L/∂h_t`` at every step, where ``L`` is the loss summed over the batch.

    The fused kernels keep the intermediate states to themselves, so the loop of
    :mod:`textrnn.cells` runs on the layer's own weights instead; each ``h_t`` is a
    tensor of the graph, and one ``autograd.grad`` call returns all the gradients.
    Rows are independent, so row ``b`` of ``grads[t]`` is ``∂L_b/∂h_t`` of that row.

    Args:
        model: a :class:`RecallNet`. x: (B, T) long. y: (B,) long.
        with_cell: for the LSTM, also take ``∂L/∂c_t`` (every path from ``c_t``, the
            one through ``h_t = o ⊙ tanh(c_t)`` included; ``∂L/∂h_t`` likewise counts
            every path from ``h_t``, through the next step's gates).

    Returns:
        :class:`StateGradients`.
    """
    rnn = model.rnn
    w_ih, w_hh, b_ih, b_hh = rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0
    gi = F.linear(model.embedding(x), w_ih, b_ih)  # (B, T, G*H): input part, hoisted
    h = gi.new_zeros(x.shape[0], rnn.hidden_size)  # (B, H)
    c = torch.zeros_like(h)  # (B, H), read by the LSTM only
    hs, cs = [], []
    for gi_t in gi.unbind(1):  # (B, G*H)
        if model.cell == "lstm":
            h, c = lstm_recurrence(gi_t, h, c, w_hh, b_hh)  # (B, H) each
            cs.append(c)
        elif model.cell == "gru":
            h = gru_recurrence(gi_t, h, w_hh, b_hh)  # (B, H)
        else:
            h = rnn_recurrence(gi_t, h, w_hh, b_hh, rnn.nonlinearity)  # (B, H)
        hs.append(h)
    loss = F.cross_entropy(model.head(h), y, reduction="sum")  # summed: rows stay unscaled
    cell_too = with_cell and bool(cs)
    grads = torch.autograd.grad(loss, hs + (cs if cell_too else []))  # (B, H) each
    T = len(hs)
    return StateGradients(torch.stack(grads[:T]), torch.stack(hs).detach(),
                          torch.stack(cs).detach() if cs else None,
                          torch.stack(grads[T:]) if cell_too else None)


def gradient_ratios(model: RecallNet, config: VanishingConfig,
                    seed: int) -> dict[str, list[float]]:
    """``‖∂L/∂h_{t-k}‖ / ‖∂L/∂h_t‖`` for ``k = 0 .. T+1``, ``t`` the last step, on
    ``grad_examples`` sequences of ``T = max(distances)`` distractors.

    The norm is over the whole batch (its summed loss ``L``), so the ratio is 1 at
    ``k = 0``. The last entry is the first token's state, the one the answer is in.

    Returns:
        ``{"h": [...]}``, and for the LSTM also ``"c"``: ``‖∂L/∂c_{t-k}‖`` over the
        same ``‖∂L/∂h_t‖``, the path through the cell state.
    """
    x, y = recall_batch(config, config.grad_examples, max(config.distances),
                        torch.Generator().manual_seed(seed))
    # float64: the plain RNN's ratio passes 1e-38 (float32's smallest) before k = 100.
    grads = state_gradients(copy.deepcopy(model).double(), x, y, with_cell=True)
    last = grads.grads[-1].norm()  # ‖∂L/∂h_t‖
    out = {"h": (grads.grads.flatten(1).norm(dim=1).flip(0) / last).tolist()}
    if grads.cell_grads is not None:
        out["c"] = (grads.cell_grads.flatten(1).norm(dim=1).flip(0) / last).tolist()
    return out


@torch.no_grad()
def accuracy(model: RecallNet, config: VanishingConfig, distance: int) -> float:
    """Accuracy on ``eval_examples`` fresh sequences of ``distance`` distractors."""
    # One test set per distance, the same for every cell and never seen in training.
    gen = torch.Generator().manual_seed(10_000 * (config.seed + 1) + distance)
    x, y = recall_batch(config, config.eval_examples, distance, gen)
    model.eval()
    correct = (model(x).argmax(-1) == y).float().mean().item()
    model.train()
    return correct


def train(model: RecallNet, config: VanishingConfig, max_distance: int,
          seconds: float) -> dict[str, float]:
    """Adam on fresh batches, each of one distance drawn uniformly from
    ``1..max_distance``, until ``max_steps`` or ``seconds`` of wall time.

    Not :func:`textrnn.train.fit`: there is no dataset, checkpoint or validation
    file here, only a step budget and a time cap.

    Returns:
        ``steps``, ``seconds`` and ``final_loss`` (mean of the last 50 steps).
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed + max_distance)
    start, losses, step = time.monotonic(), [], 0
    model.train()
    while step < config.max_steps and time.monotonic() - start < seconds:
        distance = int(torch.randint(1, max_distance + 1, (1,), generator=gen))
        x, y = recall_batch(config, config.batch_size, distance, gen)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        step += 1
    tail = losses[-50:]
    return {"steps": step, "seconds": time.monotonic() - start,
            "final_loss": sum(tail) / len(tail) if tail else math.nan}


@dataclass
class CellResult:
    """What :func:`run` measured for one cell."""

    accuracy: dict[int, float]  # T -> test accuracy at T of the model trained on 1..T
    grad_init: dict[str, list[float]]  # gradient ratios by k, at initialisation
    grad_trained: dict[str, list[float]]  # the same for the model trained on the longest T
    steps: dict[int, int]  # T -> training steps taken
    seconds: float  # wall time of all of this cell's training
    final_loss: dict[int, float]  # T -> mean training loss of the last 50 steps


def run(config: VanishingConfig, cells: tuple[str, ...] = CELLS,
        log=print) -> dict[str, CellResult]:
    """For each cell and distance: build from the seed, train on ``1..T``, test at ``T``;
    gradient ratios at initialisation and for the longest distance's model.

    Args:
        config: the task and budget. cells: which of :data:`CELLS`.
        log: called with one line per cell as it finishes.

    Returns:
        cell -> :class:`CellResult`.
    """
    # The time cap, shared by cost (a step over 1..T reads about T/2 + 2 tokens); what a
    # model leaves unused goes to the ones after it. The step budget is the same for all.
    costs = {T: T / 2 + 2 for T in config.distances}
    left_cost = len(cells) * sum(costs.values())
    deadline = time.monotonic() + 60.0 * config.minutes
    results = {}
    for cell in cells:
        acc, steps, losses, seconds, grad_init = {}, {}, {}, 0.0, {}
        for T in config.distances:
            torch.manual_seed(config.seed)  # the same initial weights at every distance
            model = RecallNet(cell, config)
            if not grad_init:
                grad_init = gradient_ratios(model, config, config.seed)
            seconds_left = max(0.0, deadline - time.monotonic())
            stats = train(model, config, T, seconds_left * costs[T] / left_cost)
            left_cost -= costs[T]
            acc[T], steps[T], losses[T] = accuracy(model, config, T), int(stats["steps"]), \
                stats["final_loss"]
            seconds += stats["seconds"]
        grad_trained = gradient_ratios(model, config, config.seed)  # the longest T's model
        results[cell] = CellResult(acc, grad_init, grad_trained, steps, seconds, losses)
        log(f"{cell}: {sum(steps.values())} steps in {seconds:.0f}s, accuracy "
            + " ".join(f"T={d}:{a:.2f}" for d, a in acc.items()))
    return results


def at_chance(accuracy: float, config: VanishingConfig) -> bool:
    """Within three binomial standard deviations of guessing, on ``eval_examples``."""
    p = config.chance
    return accuracy <= p + 3 * math.sqrt(p * (1 - p) / config.eval_examples)


NAMES = {"rnn": "plain RNN", "gru": "GRU", "lstm": "LSTM"}


def _accuracy_sentence(cell: str, r: CellResult, config: VanishingConfig) -> str:
    chance_at = next((T for T, a in r.accuracy.items() if at_chance(a, config)), None)
    good = [T for T, a in r.accuracy.items() if a >= 0.95]
    reach = (f"stays at 95% or more up to T = {max(good)} ({r.accuracy[max(good)]:.0%} there)"
             if good else "is below 95% at every distance")
    if chance_at is None:
        return f"the {NAMES[cell]} {reach} and never falls to chance"
    return (f"the {NAMES[cell]} {reach} and falls to chance by T = {chance_at} "
            f"({r.accuracy[chance_at]:.0%})")


def reading(results: dict[str, CellResult], config: VanishingConfig) -> str:
    """A paragraph that reads the measured numbers (every figure in it is computed)."""
    text = (f"Recalling a token after T distractors (guessing scores {config.chance:.1%}), "
            "each model trained on distances 1..T: "
            + "; ".join(_accuracy_sentence(c, r, config) for c, r in results.items()) + ".")
    if "rnn" in results and "lstm" in results:
        rnn, lstm = results["rnn"].accuracy, results["lstm"].accuracy
        both = [T for T in rnn if at_chance(rnn[T], config) and lstm.get(T, 0.0) >= 0.95]
        if both:
            text += (f" At T = {both[0]} the plain RNN guesses while the LSTM is right "
                     f"{lstm[both[0]]:.0%} of the time.")
        else:
            text += (" No distance has the plain RNN at chance and the LSTM at 95% or "
                     "better here (a longer run, or longer distances, would be needed).")
    k = min(50, max(config.distances))
    grads = "; ".join(f"{NAMES[c]} {r.grad_init['h'][k]:.0e} at initialisation and "
                      f"{r.grad_trained['h'][k]:.0e} after training" for c, r in results.items())
    text += (f" The gradient that reaches k = {k} steps back, as a fraction of the one at "
             f"the last step, is: {grads}.")
    if "lstm" in results:
        c = results["lstm"].grad_trained["c"]
        text += (f" In the trained LSTM the cell-state path carries {c[k]:.0e} at k = {k} "
                 f"and {c[-1]:.0e} at the first token.")
    if "rnn" in results and "lstm" in results:
        ratio = results["rnn"].grad_init["h"][k] / results["lstm"].grad_init["h"][k]
        text += (f" At initialisation the plain RNN's gradient at k = {k} is {ratio:.0e} of "
                 "the LSTM's.")
    return text
