"""Encoder-decoder translation with attention (Tx ≠ Ty), trained with teacher forcing.

::

    source x (B, S) ─ embedding ─ bidirectional GRU/LSTM ─ h̄ (B, S, 2H) ─ linear ─ h̄ (B, S, H)
                                         │ final states (fwd; bwd) per layer
                                         └─ tanh(W_b [h→; h←]) ─ decoder's initial state
    target in <bos> y_1 .. y_T-1 ─ embedding ─ GRU/LSTM ─ h_t (B, T, H)
                  (input feeding: [y_t-1; h̃_t-1]) │        ┌── attention(h_t, h̄) -> c_t
                                                    └────────┴── h̃_t = tanh(W_c [c_t; h_t])
                    h̃_t (B, T, O) ─ dropout ─ linear (tied: the target embedding) ─ logits (B, T, V)

This is Luong et al. (2015)'s global attention. Without input feeding (the
default) the decoder runs first and attends afterwards, so in training the
whole target goes through the fused recurrent kernel in one call and all T
attention steps are two batched matmuls; ``input_feeding`` feeds h̃_{t-1}
back into the decoder's input, as Luong et al. do, at the price of a step-by-step
loop. ``tie_embeddings`` (the default) makes the output layer share the target
embedding matrix (Press and Wolf 2017; Inan et al. 2017): h̃_t then has width
O = E, and V x O fewer weights are learnt. ``attention`` picks the score
(see :mod:`textrnn.attention`): Luong's ``dot`` and ``general``, or
Bahdanau's ``additive`` score (Bahdanau et al. 2015), used in this same
decoder so the variants differ only in the score. ``none`` is the plain
encoder-decoder of Sutskever et al. (2014) and Cho et al. (2014) with the same
layers and sizes: the source reaches the decoder only through its initial
state, and ``h̃_t = tanh(W_c h_t)``.

Decoding (greedy and beam search) lives in :mod:`textrnn.decode`, which calls
:meth:`Seq2Seq.start` once and :meth:`Seq2Seq.step` per output token.

Expected result (README, docs/results.md): with the defaults (E = 128, H = 256,
4,000 subword pieces per side, dropout 0.1, Adam 3e-3 decayed linearly),
``textrnn train seq2seq`` on every en-bbe -> fr-lsg verse for 10 CPU-minutes on
one thread (1,053 steps of 64 pairs) reaches test BLEU 11.2 greedy / 12.9 beam 5
(chrF 29.9 / 30.8) on the held-out books, no output empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textrnn.attention import SCORES, Attention
from textrnn.collate import lengths_to_mask
from textrnn.decode import greedy_search
from textrnn.device import eval_mode
from textrnn.layers import LAYERS

CELLS = ("gru", "lstm")  # of textrnn.layers.LAYERS: the decoder steps these two
ATTENTIONS = ("none", *SCORES)
PAD_ID = 0  # <pad> in every textrnn Vocab; padded target positions are left out of the loss


@dataclass
class Seq2SeqConfig:
    """Shape, attention and tokenisation of a :class:`Seq2Seq` model."""

    src_vocab_size: int  # source token ids, len(source vocab); from the training data
    tgt_vocab_size: int  # target token ids, len(target vocab); from the training data
    # none (plain encoder-decoder), dot or general (Luong), additive (Bahdanau)
    attention: str = "general"
    cell: str = "gru"  # recurrent cell of the encoder and the decoder
    embedding_size: int = 128  # token embedding width E, both sides
    hidden_size: int = 256  # decoder width H; the encoder has H per direction
    num_layers: int = 1  # stacked layers, in the encoder and in the decoder
    # dropout rate on embeddings, between layers and before the output (0.1: a 10-minute
    # run is far from overfitting)
    dropout: float = 0.1
    # label smoothing of the training loss (validation reports plain cross-entropy)
    label_smoothing: float = 0.1
    lower: bool = False  # lower-case both sides before tokenising
    impl: str = "fused"  # fused kernels (PyTorch) or the readable cell loop (cells)
    # Luong's input feeding: h̃_{t-1} joins the decoder's input (a step-by-step loop in
    # training, about 1.3x slower a step on a CPU)
    input_feeding: bool = False
    # the output layer shares the target embedding matrix (Press & Wolf 2017): h̃_t has
    # width E then, and V x E fewer weights to learn
    tie_embeddings: bool = True


class Seq2Seq(nn.Module):
    """Bidirectional recurrent encoder, recurrent decoder, optional attention.

    Args:
        config: a :class:`Seq2SeqConfig`.

    Raises:
        ValueError: on an unknown ``cell`` or ``attention``.
    """

    config_class = Seq2SeqConfig  # what checkpoint.load rebuilds the config with
    task = "seq2seq"  # its key in MODELS, stored in every checkpoint
    best_metric, best_mode = "val_loss", "min"  # the evaluate() key that picks best.pt

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        if config.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {config.cell!r}")
        if config.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {config.attention!r}")
        self.config = config
        E, H, L = config.embedding_size, config.hidden_size, config.num_layers
        layer_dropout = config.dropout if L > 1 else 0.0  # torch warns on 1 layer
        self.src_embedding = nn.Embedding(config.src_vocab_size, E, padding_idx=PAD_ID)
        self.tgt_embedding = nn.Embedding(config.tgt_vocab_size, E, padding_idx=PAD_ID)
        cell = LAYERS[config.cell]
        O = E if config.tie_embeddings else H  # width of h̃_t, what the output layer reads
        self.output_size = O
        self.encoder = cell(E, H, num_layers=L, bidirectional=True, dropout=layer_dropout,
                            impl=config.impl)
        feed = O if config.input_feeding else 0  # input feeding: [y_{t-1}; h̃_{t-1}]
        self.decoder = cell(E + feed, H, num_layers=L, dropout=layer_dropout, impl=config.impl)
        self.bridge = nn.Linear(2 * H, H)  # both directions' final h -> the decoder's h_0
        if config.cell == "lstm":
            self.bridge_c = nn.Linear(2 * H, H)  # ... and the LSTM's c_0
        self.has_attention = config.attention != "none"
        if self.has_attention:
            self.memory = nn.Linear(2 * H, H)  # h̄_s (2H) -> (H), the width of h_t
            self.attention = Attention(config.attention, H)
            self.combine = nn.Linear(2 * H, O)  # W_c [c_t; h_t]
        else:
            self.combine = nn.Linear(H, O)  # W_c h_t
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(O, config.tgt_vocab_size)
        if config.tie_embeddings:
            self.out.weight = self.tgt_embedding.weight  # (V, E), one matrix for both

    def load_state_dict(self, state_dict, *args, **kwargs):
        """``nn.Module.load_state_dict``, refusing the weights of an untied output layer
        for a tied model (a checkpoint of a textrnn from before tied embeddings: its config
        does not say ``tie_embeddings``, so it reads as the new default)."""
        out, embedding = state_dict.get("out.weight"), state_dict.get("tgt_embedding.weight")
        if (self.config.tie_embeddings and out is not None and embedding is not None
                and (out.shape != embedding.shape or not torch.equal(out, embedding))):
            raise ValueError("its output layer is not tied to the target embedding: it was "
                             "written by an older textrnn (word vocabularies); train it again")
        return super().load_state_dict(state_dict, *args, **kwargs)

    # --- encoder ------------------------------------------------------------------------
    def start(self, src: Tensor, src_lengths: Tensor) -> dict[str, Tensor]:
        """Encode a batch; the decoder state to start from, every entry batch-first.

        Args:
            src: (B, S) long source ids, padded with 0.
            src_lengths: (B,) long, each at least 1.

        Returns:
            ``{"h": (B, L, H)}`` (plus ``"c"`` for the LSTM) and, with attention,
            ``"memory"`` (B, S, H) h̄_s, ``"keys"`` (B, S, H or A) and ``"mask"`` (B, S) bool.
        """
        if int(src_lengths.min()) < 1:
            raise ValueError("every source sentence needs at least one token")
        L, H = self.config.num_layers, self.config.hidden_size
        x = self.dropout(self.src_embedding(src))  # (B, S, E)
        enc, enc_state = self.encoder(x, lengths=src_lengths)  # (B, S, 2H)
        B = src.shape[0]

        def bridge(final: Tensor, linear: nn.Linear) -> Tensor:
            both = final.view(L, 2, B, H).permute(2, 0, 1, 3).reshape(B, L, 2 * H)
            return torch.tanh(linear(both))  # (B, L, H)

        if self.config.cell == "lstm":
            state = {"h": bridge(enc_state[0], self.bridge), "c": bridge(enc_state[1],
                                                                           self.bridge_c)}
        else:
            state = {"h": bridge(enc_state, self.bridge)}
        if self.config.input_feeding:
            state["feed"] = enc.new_zeros(B, self.output_size)  # h̃_0 = 0
        if self.has_attention:
            memory = self.memory(enc)  # (B, S, H)
            state["memory"] = memory
            state["keys"] = self.attention.project_keys(memory)  # (B, S, H or A)
            state["mask"] = lengths_to_mask(src_lengths, src.shape[1])  # (B, S)
        return state

    # --- decoder ------------------------------------------------------------------------
    def _recur(self, x: Tensor, state: dict[str, Tensor]):
        """The decoder's recurrent layers over ``x`` (B, T, E or E + O) from ``state``;
        h_t (B, T, H) and the state with the new ``h`` (and ``c``)."""
        h0 = state["h"].transpose(0, 1).contiguous()  # (L, B, H)
        rnn_state = (h0, state["c"].transpose(0, 1).contiguous()) if "c" in state else h0
        h, rnn_state = self.decoder(x, state=rnn_state)  # (B, T, H)
        new_state = dict(state)
        if isinstance(rnn_state, tuple):
            new_state["h"], new_state["c"] = (s.transpose(0, 1) for s in rnn_state)  # (B, L, H)
        else:
            new_state["h"] = rnn_state.transpose(0, 1)  # (B, L, H)
        return h, new_state

    def _attend(self, h: Tensor, state: dict[str, Tensor]):
        """h̃_t = tanh(W_c [c_t; h_t]) (or tanh(W_c h_t)) of h (B, T, H): (B, T, O), weights."""
        if not self.has_attention:
            return torch.tanh(self.combine(h)), None  # (B, T, O)
        context, weights = self.attention(h, state["keys"], state["memory"], state["mask"])
        return torch.tanh(self.combine(torch.cat([context, h], -1))), weights  # (B, T, O)

    def _decode(self, tgt_in: Tensor, state: dict[str, Tensor]):
        """Run the decoder over ``tgt_in`` from ``state``.

        Without input feeding the whole target goes through the recurrent layers in one
        call and attention follows for all T steps at once; with it, each step's input is
        ``[y_{t-1}; h̃_{t-1}]``, so the steps run one after the other.

        Args:
            tgt_in: (B, T) long target inputs (``<bos>`` y_1 .. y_{T-1}).
            state: from :meth:`start` (or a previous call).

        Returns:
            logits (B, T, V), the new state, and attention weights (B, T, S) or None.
        """
        y = self.dropout(self.tgt_embedding(tgt_in))  # (B, T, E)
        if not self.config.input_feeding:
            h, state = self._recur(y, state)  # (B, T, H)
            h_tilde, weights = self._attend(h, state)  # (B, T, O), (B, T, S)
            h_tilde = self.dropout(h_tilde)
        else:
            steps, step_weights = [], []
            for t in range(y.shape[1]):
                x_t = torch.cat([y[:, t : t + 1], state["feed"].unsqueeze(1)], -1)  # (B, 1, E+O)
                h_t, state = self._recur(x_t, state)  # (B, 1, H)
                h_tilde_t, w_t = self._attend(h_t, state)  # (B, 1, O), (B, 1, S)
                h_tilde_t = self.dropout(h_tilde_t)
                state["feed"] = h_tilde_t[:, 0]  # (B, O)
                steps.append(h_tilde_t)
                step_weights.append(w_t)
            h_tilde = torch.cat(steps, 1)  # (B, T, O)
            weights = None if step_weights[0] is None else torch.cat(step_weights, 1)
        return self.out(h_tilde), state, weights  # (B, T, V)

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor):
        """Teacher-forced scores of every target position.

        Args:
            src: (B, S) long; src_lengths: (B,) long; tgt_in: (B, T) long.

        Returns:
            logits (B, T, V) and attention weights (B, T, S) (None without attention).
        """
        logits, _, weights = self._decode(tgt_in, self.start(src, src_lengths))
        return logits, weights

    def step(self, tokens: Tensor, state: dict[str, Tensor]):
        """One decoding step, for :mod:`textrnn.decode`.

        Args:
            tokens: (N,) long, the previous output tokens.
            state: the decoder state (batch-first entries, N rows).

        Returns:
            log_probs (N, V) float, the new state, weights (N, S) or None.
        """
        logits, state, weights = self._decode(tokens.unsqueeze(1), state)  # (N, 1, V)
        log_probs = torch.log_softmax(logits[:, 0].float(), dim=-1)  # (N, V)
        return log_probs, state, None if weights is None else weights[:, 0]

    # --- the task-model contract --------------------------------------------------------
    def loss(self, batch: dict) -> Tensor:
        """Mean label-smoothed cross-entropy per target token (padding left out).

        Args:
            batch: ``{"src": (B, S), "src_lengths": (B,), "tgt_in": (B, T),
                "tgt_out": (B, T)}``, all long; ``tgt_out`` is ``tgt_in`` shifted left
                with ``<eos>`` at the end, 0 at padding.

        Returns:
            Scalar float tensor (nats per token).
        """
        logits, _ = self(batch["src"], batch["src_lengths"], batch["tgt_in"])  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1), batch["tgt_out"].flatten(),
                               ignore_index=PAD_ID, label_smoothing=self.config.label_smoothing)

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        """Teacher-forced loss and next-token accuracy over batches (no smoothing).

        Returns:
            ``val_loss`` (nats per target token), ``val_ppl``, ``val_acc``.
        """
        with eval_mode(self):
            total, correct, tokens = 0.0, 0, 0
            for batch in batches:
                logits, _ = self(batch["src"], batch["src_lengths"], batch["tgt_in"])  # (B, T, V)
                target = batch["tgt_out"]  # (B, T)
                real = target != PAD_ID  # (B, T)
                total += F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(),
                                         ignore_index=PAD_ID, reduction="sum").item()
                correct += ((logits.argmax(-1) == target) & real).sum().item()
                tokens += real.sum().item()
        loss = total / max(tokens, 1)
        return {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0)),
                "val_acc": correct / max(tokens, 1)}

    @torch.no_grad()
    def predict(self, batch: dict, bos_id: int = 2, eos_id: int = 3) -> list[list[int]]:
        """Greedy translations of ``batch["src"]`` (ids without ``<bos>``/``<eos>``).

        The defaults are the ids of a :class:`textrnn.vocab.Vocab` with the default specials.
        """
        with eval_mode(self):
            hyps = greedy_search(self, batch["src"], batch["src_lengths"], bos_id=bos_id,
                                 eos_id=eos_id, banned=(PAD_ID, bos_id))
        return [h.tokens for h in hyps]

    def num_tokens(self, batch: dict) -> int:
        """Target tokens in a batch, for tokens/s."""
        return int((batch["tgt_out"] != PAD_ID).sum())
