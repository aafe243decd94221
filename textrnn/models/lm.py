"""Recurrent language model: predict every next token of a continuous text stream.

Zaremba et al. (2014), "Recurrent Neural Network Regularization", and Karpathy's
char-rnn::

    x (B, T) ─ embedding ─ RNN/GRU/LSTM layer ─ dropout ─ linear ─ logits (B, T, V)
                               ▲       │
                   state from the      └ state, detached, into the next window
                   previous window

Training uses truncated backpropagation through time: batches are consecutive
windows of ``batch_size`` parallel streams (:class:`textrnn.data.text.StreamBatches`),
so the final hidden state of one window is the right initial state of the next.
The model carries it over, detached so that gradients stop at the window edge,
and starts from zeros at the start of a pass (``batch["reset"]``) or when the
batch size changes. The carried state is part of ``state_dict()`` (as
``_extra_state``), so a run resumed from a checkpoint continues bit for bit.

Expected result: on the Shakespeare plays (:mod:`textrnn.data.shakespeare`) a
1-layer char LSTM of 384 units reaches 2.40 val bpc (1.66 nats per character)
after 600 steps of 32 x 64 characters, about 2 minutes on 2 CPU cores
(``textrnn demo``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textrnn.device import eval_mode
from textrnn.layers import LAYERS, detach_state
from textrnn.losses import linear_cross_entropy


@dataclass
class LMConfig:
    """Shape and regularisation of a :class:`LanguageModel`."""

    vocab_size: int  # number of token ids, len(vocab); comes from the training data
    level: str = "char"  # tokenize into characters or words (a sample is joined back alike)
    cell: str = "lstm"  # recurrent cell (rnn: the plain tanh RNN)
    embedding_size: int = 128  # token embedding width
    hidden_size: int = 256  # recurrent state width per layer
    num_layers: int = 2  # stacked recurrent layers
    dropout: float = 0.2  # dropout rate, between stacked layers and before the output layer
    tie_weights: bool = False  # share the embedding and output weights (needs equal sizes)
    impl: str = "fused"  # fused PyTorch kernels, or the readable Python loop over cells
    # output layer: full softmax, or the adaptive softmax (Grave et al. 2017: frequent words
    # in a head, rare ones in smaller clusters; much faster for word vocabularies, not with
    # tied weights)
    softmax: str = "full"
    # adaptive softmax cluster boundaries in frequency rank (ids below the first form the
    # head); none given = a fifth and a half of the vocabulary (default_cutoffs)
    cutoffs: tuple[int, ...] = ()


def default_cutoffs(vocab_size: int) -> tuple[int, ...]:
    """Adaptive-softmax clusters for a frequency-sorted vocabulary: the most frequent fifth
    of the ids in the head (about 90% of running words in English text), then two tail
    clusters split at the half.

    >>> default_cutoffs(10004), default_cutoffs(40)
    ((2000, 5002), (8, 20))
    """
    head = int(round(vocab_size / 5, -2)) if vocab_size >= 1000 else max(1, vocab_size // 5)
    return (head, vocab_size // 2)


def _check_adaptive(config: LMConfig) -> None:
    """Raise ValueError where ``config`` cannot build an adaptive softmax."""
    cutoffs = list(config.cutoffs)
    if config.tie_weights:
        raise ValueError("tie_weights needs the full softmax (the adaptive one has no "
                         "single (V, H) output matrix to share)")
    if not (cutoffs == sorted(set(cutoffs))
            and 0 < min(cutoffs, default=0) and max(cutoffs) < config.vocab_size - 1):
        raise ValueError(f"adaptive softmax cutoffs must be increasing ids between 1 and "
                         f"{config.vocab_size - 2} (the vocabulary's size less 2), got {cutoffs}")
    if config.hidden_size < 4 ** len(cutoffs):
        raise ValueError(f"hidden_size {config.hidden_size} is too small for {len(cutoffs)} "
                         f"adaptive-softmax tail clusters (the last projects to "
                         f"hidden_size / 4^{len(cutoffs)})")


class LanguageModel(nn.Module):
    """Embedding, recurrent layer, dropout and a linear read-out over the vocabulary.

    Args:
        config: an :class:`LMConfig`.

    Raises:
        ValueError: on an unknown ``cell``, or ``tie_weights`` with
            ``embedding_size != hidden_size``.
    """

    config_class = LMConfig  # what checkpoint.load rebuilds the config with
    task = "lm"  # its key in MODELS, stored in every checkpoint
    best_metric, best_mode = "val_loss", "min"  # the evaluate() key that picks best.pt

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        if config.cell not in LAYERS:
            raise ValueError(f"cell must be one of {sorted(LAYERS)}, got {config.cell!r}")
        if config.softmax not in ("full", "adaptive"):
            raise ValueError(f"softmax must be 'full' or 'adaptive', got {config.softmax!r}")
        if config.softmax == "adaptive":
            _check_adaptive(config)
        if config.tie_weights and config.embedding_size != config.hidden_size:
            raise ValueError(
                "tie_weights needs embedding_size == hidden_size, got "
                f"{config.embedding_size} and {config.hidden_size}"
            )
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        # torch warns about inter-layer dropout on a single layer, where it does nothing.
        layer_dropout = config.dropout if config.num_layers > 1 else 0.0
        self.rnn = LAYERS[config.cell](
            config.embedding_size,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=layer_dropout,
            impl=config.impl,
        )
        self.dropout = nn.Dropout(config.dropout)
        if config.softmax == "adaptive":
            # A head over the frequent words plus one logit per tail cluster, and smaller
            # projections (H/4, H/16) for the rarer clusters: most tokens never pay for the
            # full (H, V) product, which makes word-level training several times cheaper.
            # Its log_prob is an exact, normalised distribution over all V words.
            self.head = nn.AdaptiveLogSoftmaxWithLoss(
                config.hidden_size, config.vocab_size, list(config.cutoffs), div_value=4.0
            )
        else:
            self.head = nn.Linear(config.hidden_size, config.vocab_size)
        if config.tie_weights:  # Press & Wolf (2017): fewer parameters, often lower perplexity
            self.head.weight = self.embedding.weight
        self.state = None  # the hidden state carried from the previous training window

    def forward(self, x: Tensor, state=None) -> tuple[Tensor, object]:
        """Score every next token.

        Args:
            x: LongTensor (B, T) of token ids.
            state: initial ``h`` (L, B, H), or ``(h, c)`` for the LSTM; zeros if None.

        Returns:
            logits: (B, T, V) float, unnormalised next-token scores (with the adaptive
                softmax, normalised log-probabilities: their softmax is the same
                distribution, so every user of the scores reads them alike).
            state: the final state, same layout as ``state``.
        """
        h, state = self.features(x, state)  # (B, T, H)
        if isinstance(self.head, nn.AdaptiveLogSoftmaxWithLoss):
            return self.head.log_prob(h.flatten(0, 1)).view(*h.shape[:2], -1), state
        return self.head(h), state  # (B, T, V)

    def features(self, x: Tensor, state=None) -> tuple[Tensor, object]:
        """What the output layer reads: (B, T, H) after dropout, and the final state."""
        out, state = self.rnn(self.embedding(x), state=state)  # (B, T, H)
        return self.dropout(out), state

    def _carried_state(self, batch: dict):
        """The state to start a training window from: the last one, unless the stream restarts."""
        state = self.state
        if state is None or batch.get("reset", False):
            return None
        h = state[0] if isinstance(state, tuple) else state  # (L, B, H)
        if h.shape[1] != batch["x"].shape[0]:
            return None
        if h.device != batch["x"].device:  # e.g. restored from a CPU checkpoint onto a GPU
            state = (
                tuple(s.to(batch["x"].device) for s in state)
                if isinstance(state, tuple)
                else state.to(batch["x"].device)
            )
        return state

    def loss(self, batch: dict) -> Tensor:
        """Mean next-token cross-entropy over a window; carries the state to the next window.

        Args:
            batch: ``{"x": LongTensor (B, T), "y": LongTensor (B, T), "reset": bool}``.

        Returns:
            Scalar float tensor (nats per token).
        """
        h, state = self.features(batch["x"], self._carried_state(batch))  # (B, T, H)
        self.state = detach_state(state)  # values flow on, gradients stop here
        if isinstance(self.head, nn.AdaptiveLogSoftmaxWithLoss):
            return self.head(h.flatten(0, 1), batch["y"].flatten()).loss
        # The output layer and its softmax a block of rows at a time: the (B*T, V) scores
        # never exist, which makes the step faster on a CPU (see textrnn.losses).
        return linear_cross_entropy(h.flatten(0, 1), self.head.weight, self.head.bias,
                                    batch["y"].flatten())

    @torch.no_grad()
    def predict(self, batch: dict) -> list[list[int]]:
        """The most likely next token at every position, from a zero initial state.

        Returns:
            One list of T ids per row of ``batch["x"]`` (B, T).
        """
        logits, _ = self(batch["x"])  # (B, T, V)
        return logits.argmax(-1).tolist()

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        """Average next-token loss over consecutive windows, carrying the state across them.

        Args:
            batches: an iterable of ``{"x", "y", "reset"}`` windows, e.g. ``StreamBatches``.

        Returns:
            ``val_loss`` (nats/token), ``val_ppl`` (``exp(val_loss)``) and ``val_bpc``
            (``val_loss / ln 2``: bits per character at char level, per token at word level).
        """
        with eval_mode(self):
            total_loss, total_tokens, state = 0.0, 0, None
            for batch in batches:
                h = None if state is None else (state[0] if isinstance(state, tuple) else state)
                new_batch_size = h is not None and h.shape[1] != batch["x"].shape[0]
                if batch.get("reset", False) or new_batch_size:
                    state = None
                logits, state = self(batch["x"], state)  # (B, T, V)
                y = batch["y"]
                total_loss += F.cross_entropy(
                    logits.flatten(0, 1).float(), y.flatten(), reduction="sum"
                ).item()
                total_tokens += y.numel()
        loss = total_loss / max(total_tokens, 1)
        return {
            "val_loss": loss,
            "val_ppl": math.exp(min(loss, 50.0)),
            "val_bpc": loss / math.log(2),
        }

    def num_tokens(self, batch: dict) -> int:
        """Number of predicted tokens in a batch, for tokens/s."""
        return batch["y"].numel()

    @torch.no_grad()
    def score(self, sequences: list[list[int]], start_id: int) -> list[float]:
        """Log-probability of each token sequence, each read from a fresh state.

        ``log p(w_1..w_n) = Σ_t log p(w_t | start, w_1..w_{t-1})``: the model reads
        ``start`` (``<eos>`` for word models: a sentence begins after a line end)
        and then the sequence, predicting each next token.

        Args:
            sequences: B lists of token ids (word level: ending in ``<eos>``), each non-empty.
            start_id: the token the model reads before each sequence.

        Returns:
            B floats, log-probabilities in nats (0 = certain; more negative = less likely).
        """
        lengths = torch.tensor([len(s) for s in sequences])  # (B,)
        device = self.embedding.weight.device
        T = int(lengths.max())
        x = torch.zeros(len(sequences), T, dtype=torch.long)  # (B, T): start, w_1..w_{n-1}
        y = torch.zeros(len(sequences), T, dtype=torch.long)  # (B, T): w_1..w_n
        for b, seq in enumerate(sequences):
            x[b, : len(seq)] = torch.tensor([start_id, *seq[:-1]])
            y[b, : len(seq)] = torch.tensor(seq)
        # Padding only follows real tokens, so real positions are exact without lengths.
        logits, _ = self(x.to(device))  # (B, T, V)
        logp = torch.log_softmax(logits.float(), -1).gather(-1, y.to(device).unsqueeze(-1))
        mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
        return (logp.squeeze(-1).cpu() * mask).sum(1).tolist()

    def sample(self, prompt_ids: list[int], max_tokens: int = 200, **options) -> list[int]:
        """The ids :meth:`generate` yields, as a list (the prompt not included)."""
        return list(self.generate(prompt_ids, max_tokens, **options))

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: list[int],
        max_tokens: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        exclude_ids: list[int] | None = None,
        stop_id: int | None = None,
    ) -> Iterator[int]:
        """Continue a prompt one token at a time, yielding each id as soon as it is drawn.

        Args:
            prompt_ids: the prompt's token ids (at least one).
            max_tokens: the most tokens to generate.
            temperature: divides the logits; below 1 is more conservative, 0 is greedy.
            top_k: sample only among the ``top_k`` most likely tokens (None = all).
            generator: a CPU ``torch.Generator`` for reproducible samples.
            exclude_ids: ids never to generate (e.g. ``<pad>``, ``<unk>``).
            stop_id: stop after yielding this id (e.g. ``<eos>``).

        Yields:
            Generated token ids.
        """
        if not prompt_ids:
            raise ValueError("prompt_ids must hold at least one token id")
        was_training = self.training
        self.eval()
        device = self.embedding.weight.device
        try:
            logits, state = self(torch.tensor([prompt_ids], device=device))  # (1, P, V)
            for _ in range(max_tokens):
                scores = logits[0, -1].float().cpu()  # (V,)
                if exclude_ids:
                    scores[exclude_ids] = float("-inf")
                if temperature <= 0:
                    next_id = int(scores.argmax())
                else:
                    scores = scores / temperature
                    if top_k is not None and top_k < scores.numel():
                        kth = torch.topk(scores, top_k).values[-1]
                        scores = scores.masked_fill(scores < kth, float("-inf"))
                    probs = torch.softmax(scores, dim=-1)  # (V,)
                    next_id = int(torch.multinomial(probs, 1, generator=generator))
                yield next_id
                if next_id == stop_id:
                    break
                logits, state = self(torch.tensor([[next_id]], device=device), state)  # (1, 1, V)
        finally:
            self.train(was_training)

    # The carried state travels in state_dict() so that resuming continues the same streams.
    def get_extra_state(self) -> dict:
        """The carried training state as plain tensors (empty if none)."""
        if self.state is None:
            return {}
        return {"state": list(self.state) if isinstance(self.state, tuple) else [self.state]}

    def set_extra_state(self, extra: dict) -> None:
        """Restore what :meth:`get_extra_state` returned."""
        tensors = extra.get("state") if isinstance(extra, dict) else None
        if not tensors:
            self.state = None
        else:
            self.state = tuple(tensors) if len(tensors) == 2 else tensors[0]
