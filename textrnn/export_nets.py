"""The task models in an exportable form: the same numbers, with tensors in and out.

A task model takes a batch dict and some of its steps cannot be recorded with free
lengths (a cumulative product, a ``torch.unique``, a flag read from a buffer, a ragged
recurrent layer). Each class here wraps one trained network, shares its weights, and
recomputes its ``forward`` from the same equations with exportable operations:

- recurrent layers run as one ONNX ``LSTM``/``GRU``/``RNN`` node each
  (:func:`textrnn.onnx_rnn.call`), whose lengths are per sequence and free;
- every loop over time or sentences is gone or was never there (QRN's recurrence is
  already a weighted sum, MemN2N's hops are a fixed count, the LSTM reader's LSTM runs
  over the question's fixed number of steps).

:data:`EXPORTS` maps a checkpoint's task to its wrapper; ``wrapper.inputs`` and
``wrapper.outputs`` name the graph's tensors, ``wrapper.example(...)`` makes inputs to
record it with, and ``wrapper.dims`` says which axes stay free.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from textrnn import onnx_rnn
from textrnn.attention import masked_softmax
from textrnn.collate import lengths_to_mask
from textrnn.errors import TextrnnError


class NotExportable(TextrnnError):
    """This model (or this setting of it) has no exportable form yet."""


def _ids(generator: torch.Generator, high: int, *shape: int) -> Tensor:
    """Random ids in [1, high) of ``shape`` (0 is padding)."""
    return torch.randint(1, max(high, 2), shape, generator=generator)


class QAExport(nn.Module):
    """A QA network (QRN, MemN2N or the LSTM reader) as ``(story, lengths..., question)
    -> scores``.

    ``forward`` returns what :meth:`textrnn.models.qa_base.QANet.forward` does:
    logits (B, A) and attention (B, K, S); the answer masking and the averaging over
    slot readings stay in Python (:mod:`textrnn.runtime` runs ``QANet.scores``).
    EntNet is refused: its memory is updated by a Python loop over the sentences, which
    a recording unrolls to the example's count.
    """

    inputs = ["story", "story_lengths", "sentence_lengths", "question", "question_lengths"]
    outputs = ["logits", "attention"]
    # batch, sentences, words per sentence, question words: all free
    dims = {"story": {0: "batch", 1: "sentences", 2: "words"}, "story_lengths": {0: "batch"},
            "sentence_lengths": {0: "batch", 1: "sentences"},
            "question": {0: "batch", 1: "question_words"}, "question_lengths": {0: "batch"}}

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        arch = model.config.arch
        if arch not in ("qrn", "memn2n", "lstm_reader"):
            raise NotExportable(f"export of arch {arch!r} is not built yet (qrn, memn2n and "
                                "lstm_reader are): its loop over sentences would be unrolled "
                                "to one length")
        self.arch, self.config = arch, model.config
        self.net = copy.deepcopy(model.net).eval()
        memn2n = self.net if arch == "memn2n" else getattr(self.net, "memory", None)
        if memn2n is not None:
            # Linear start is a training phase, kept in a buffer so a resumed run goes on
            # in it; for export it is fixed, and a Python bool is not a graph input.
            linear = bool(memn2n.ls_active)
            del memn2n._buffers["ls_active"]
            memn2n.ls_active = linear

    def example(self, seed: int = 0) -> tuple[Tensor, ...]:
        """Inputs to record with: B=2 stories of S=3 sentences of W=5 words, Wq=4."""
        g = torch.Generator().manual_seed(seed)
        V = self.config.vocab_size
        return (_ids(g, V, 2, 3, 5), torch.tensor([3, 2]), torch.tensor([[5, 4, 2], [3, 5, 0]]),
                _ids(g, V, 2, 4), torch.tensor([4, 3]))

    def forward(self, story: Tensor, story_lengths: Tensor, sentence_lengths: Tensor,
                question: Tensor, question_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Args: story (B, S, W), story_lengths (B,), sentence_lengths (B, S), question
        (B, Wq), question_lengths (B,); all long, S >= 1.

        Returns:
            logits (B, A) float; attention (B, K, S) float.
        """
        batch = {"story": story, "story_lengths": story_lengths,
                 "sentence_lengths": sentence_lengths, "question": question,
                 "question_lengths": question_lengths}
        if self.arch == "memn2n":
            return self.net(batch)
        if self.arch == "lstm_reader":
            return self._lstm_reader(batch)
        return self._qrn(batch)

    def _qrn(self, batch: dict) -> tuple[Tensor, Tensor]:
        """:meth:`textrnn.models.qrn.QRN.forward` without its Python branch on the number
        of sentences (an exported graph has S >= 1)."""
        h, evidence = self.net.read(batch)  # (B, S, d), (B, K, S)
        (logits, memory_logits), evidence = self.net.readers(h[:, -1], evidence, batch)
        if memory_logits is not None:
            logits = logits + memory_logits  # (B, A)
        return logits, evidence  # (B, A), (B, K [+ H], S)


    def _lstm_reader(self, batch: dict) -> tuple[Tensor, Tensor]:
        """:meth:`textrnn.models.lstm_reader.LSTMReader.forward` without its boolean
        indexing (a data-dependent size): the kept words are scattered to their columns,
        and the LSTM over the question steps is one ONNX node."""
        net, c = self.net, self.config
        Lq = c.max_question_words
        x, sentence_of = self._flat_story(batch)  # (B, L), (B, L)
        word_mask = sentence_of >= 0  # (B, L)
        question = batch["question"]  # (B, Wq)
        q = torch.cat([question, question.new_zeros(question.shape[0], Lq)], 1)[:, :Lq]
        q_lengths = batch["question_lengths"].clamp(max=Lq)  # (B,)
        q_mask = torch.arange(Lq) < q_lengths.unsqueeze(1)  # (B, Lq)
        m, cx, u = net.A(x), net.C(x), net.B(q)  # (B, L, d), (B, L, Lq), (B, Lq, d)
        scores = torch.einsum("bld,bqd->blq", m, u)  # (B, L, Lq)
        match = masked_softmax(scores, word_mask.unsqueeze(-1), dim=1)  # (B, L, Lq)
        response = (match + cx).transpose(1, 2)  # (B, Lq, L)
        _, (h, _) = onnx_rnn.call(net.lstm, torch.cat([response, u], -1), q_lengths)
        logits = net.W(h[-1])  # (B, A)
        word_attention = (match * q_mask.unsqueeze(1)).sum(2) / q_lengths.clamp(min=1)[:, None]
        S = batch["story"].shape[1]
        attention = match.new_zeros(x.shape[0], S).scatter_add(  # (B, S)
            1, sentence_of.clamp(min=0), word_attention * word_mask)
        return logits, attention.unsqueeze(1)  # (B, A), (B, 1, S)

    def _flat_story(self, batch: dict) -> tuple[Tensor, Tensor]:
        """:meth:`LSTMReader._flat_story` with a scatter: the last L story words,
        right-aligned, ids (B, L) and their sentence (B, L), -1 = pad.

        A word that is not kept goes to a spare column L, dropped at the end::

            real words  a b _ c _ _ d e f      L = 5
            later       5 4 4 3 3 3 2 1 0      (real words after it)
            column      - 0 - 1 - - 2 3 4      (L - 1 - later; "-": to the spare column)
        """
        story = batch["story"]  # (B, S, W)
        B, S, W = story.shape
        L = self.config.max_story_words
        real = torch.arange(W) < batch["sentence_lengths"].unsqueeze(-1)  # (B, S, W)
        real = real.reshape(B, S * W)  # (B, S*W)
        count = real.long()  # (B, S*W)
        later = count.sum(1, keepdim=True) - count.cumsum(1)  # (B, S*W) real words after it
        column = L - 1 - later  # (B, S*W)
        keep = real & (column >= 0)  # (B, S*W)
        column = torch.where(keep, column, torch.full_like(column, L))  # (B, S*W)
        sentence = torch.arange(S).unsqueeze(1).expand(S, W).reshape(1, S * W)  # (1, S*W)
        # Columns of kept words are distinct, so the sums are their values; the spare
        # column gathers zeros.
        ids = story.new_zeros(B, L + 1).scatter_add(1, column, story.reshape(B, S * W) * keep)
        sentence_of = story.new_zeros(B, L + 1).scatter_add(1, column, (sentence + 1) * keep)
        return ids[:, :L], sentence_of[:, :L] - 1  # (B, L), (B, L)


class ClassifierExport(nn.Module):
    """A recurrent classifier (``model="rnn"``) as ``(ids, lengths) -> logits``."""

    inputs = ["ids", "lengths"]
    outputs = ["logits"]
    dims = {"ids": {0: "batch", 1: "tokens"}, "lengths": {0: "batch"}}

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if model.config.model != "rnn":
            raise NotExportable(f"export of the {model.config.model!r} classifier is not "
                                "built yet (the recurrent one is)")
        self.config = model.config
        self.net = copy.deepcopy(model.net).eval()

    def example(self, seed: int = 0) -> tuple[Tensor, ...]:
        """Inputs to record with: B=2 texts of T=5 tokens."""
        g = torch.Generator().manual_seed(seed)
        return _ids(g, self.config.vocab_size, 2, 5), torch.tensor([5, 3])

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """ids (B, T) long, lengths (B,) long -> logits (B, C) float; as
        :meth:`textrnn.models.classifier.RecurrentEncoder.forward` in eval mode."""
        net = self.net
        x = net.embedding(ids)  # (B, T, E); dropout is the identity in eval
        h, state = onnx_rnn.call(net.rnn, x, lengths)  # (B, T, D*H), zero past each end
        v = net.pool(h, lengths_to_mask(lengths, ids.shape[1]), state)  # (B, D*H)
        return net.out(v)  # (B, C)


class TaggerExport(nn.Module):
    """A tagger as ``(words, chars, case, lengths) -> emissions``; Viterbi (with a CRF)
    stays in Python, in :meth:`textrnn.models.tagger.TaggerBase.decode`."""

    inputs = ["words", "chars", "case", "lengths"]
    outputs = ["emissions"]
    dims = {"words": {0: "batch", 1: "tokens"}, "chars": {0: "batch", 1: "tokens", 2: "chars"},
            "case": {0: "batch", 1: "tokens"}, "lengths": {0: "batch"}}

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not hasattr(model, "word_embedding"):
            raise NotExportable("export of a tagger ensemble is not built yet (one tagger is)")
        self.config = model.config
        self.net = copy.deepcopy(model).eval()

    def example(self, seed: int = 0) -> tuple[Tensor, ...]:
        """Inputs to record with: B=2 sentences of T=5 words of W=4 characters."""
        g = torch.Generator().manual_seed(seed)
        c = self.config
        chars = _ids(g, c.num_chars, 2, 5, 4)
        chars[1, 3:] = 0  # the second sentence has 3 words
        chars[0, :, 3] = 0  # words of 3 characters
        return (_ids(g, c.vocab_size, 2, 5), chars, torch.ones(2, 5, dtype=torch.long),
                torch.tensor([5, 3]))

    def forward(self, words: Tensor, chars: Tensor, case: Tensor, lengths: Tensor) -> Tensor:
        """Args: words (B, T), chars (B, T, W), case (B, T), lengths (B,); all long.

        Returns:
            emissions P (B, T, K) float, as :meth:`textrnn.models.tagger.Tagger.forward`.
        """
        net, c = self.net, self.config
        parts = [net.word_embedding(words)]  # (B, T, E_w)
        if c.char_encoder != "none":
            parts.append(self._char_features(chars))  # (B, T, D_c)
        if c.case_embedding_size:
            parts.append(net.case_embedding(case))  # (B, T, E_case)
        x = torch.cat(parts, dim=-1)  # (B, T, D)
        h, _ = onnx_rnn.call(net.lstm, x, lengths)  # (B, T, 2H)
        return net.output(h)  # (B, T, K)

    def _char_features(self, chars: Tensor) -> Tensor:
        """:meth:`textrnn.models.tagger.Tagger.char_features` without its ``unique``:
        every word slot is encoded (a padded one reads 0 characters, then is zeroed)."""
        net = self.net
        B, T, W = chars.shape
        flat = chars.reshape(B * T, W)  # (B*T, W)
        char_lengths = (flat != 0).sum(-1)  # (B*T,)
        x = net.char_embedding(flat)  # (B*T, W, E_c)
        if self.config.char_encoder == "lstm":
            _, (h, _) = onnx_rnn.call(net.char_lstm, x, char_lengths)  # h: (2, B*T, H_c)
            words = torch.cat([h[0], h[1]], dim=-1)  # (B*T, 2H_c)
        else:
            conv = net.char_conv(x.transpose(1, 2)).transpose(1, 2)  # (B*T, W, F)
            pad = (flat == 0).unsqueeze(-1)  # (B*T, W, 1)
            words = conv.masked_fill(pad, float("-inf")).amax(dim=1)  # (B*T, F)
        real = (char_lengths > 0).unsqueeze(-1)  # (B*T, 1)
        words = torch.where(real, words, torch.zeros_like(words))  # (B*T, D_c)
        return words.reshape(B, T, words.shape[-1])  # (B, T, D_c)


class LMExport(nn.Module):
    """A language model as one step of a stream: ``(tokens, h0[, c0]) -> (logits, h_n[,
    c_n])``; feeding each call's state to the next generates token by token."""

    dims = {"tokens": {0: "batch", 1: "steps"}, "h0": {1: "batch"}, "c0": {1: "batch"}}

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.config = model.config
        self.net = copy.deepcopy(model).eval()
        self.is_lstm = self.net.rnn.is_lstm
        self.inputs = ["tokens", "h0", "c0"] if self.is_lstm else ["tokens", "h0"]
        self.outputs = ["logits", "h_n", "c_n"] if self.is_lstm else ["logits", "h_n"]

    def example(self, seed: int = 0) -> tuple[Tensor, ...]:
        """Inputs to record with: B=2 streams, T=3 tokens, a random start state."""
        g = torch.Generator().manual_seed(seed)
        c = self.config
        state = [torch.randn(c.num_layers, 2, c.hidden_size, generator=g)
                 for _ in range(2 if self.is_lstm else 1)]
        return (_ids(g, c.vocab_size, 2, 3), *state)

    def forward(self, tokens: Tensor, h0: Tensor, c0: Tensor | None = None) -> tuple[Tensor, ...]:
        """Args: tokens (B, T) long; h0 (and c0 for the LSTM) (L, B, H) float.

        Returns:
            logits (B, T, V) float, as :meth:`textrnn.models.lm.LanguageModel.forward`;
            h_n (and c_n) (L, B, H).
        """
        net = self.net
        lengths = torch.ones_like(tokens[:, 0]) * tokens.shape[1]  # (B,): every step is real
        state = (h0, c0) if self.is_lstm else h0
        out, state = onnx_rnn.call(net.rnn, net.embedding(tokens), lengths, state)  # (B, T, H)
        if isinstance(net.head, nn.AdaptiveLogSoftmaxWithLoss):
            logits = net.head.log_prob(out.flatten(0, 1)).view(*out.shape[:2], -1)
        else:
            logits = net.head(out)  # (B, T, V)
        return (logits, *state) if self.is_lstm else (logits, state)


# task -> its exportable form (the tasks left out say so in `textrnn export`'s error)
EXPORTS = {"qa": QAExport, "classifier": ClassifierExport, "tagger": TaggerExport,
           "lm": LMExport}
