"""The Keras bAbI example's "memory network with an LSTM reader" (it claims 98.6% on
QA1-10k after 120 epochs); here it learns slowly: ~82% on QA1-10k after 30 epochs
(lr 0.005, d 64, ~3.3 s per epoch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textrnn.attention import masked_softmax
from textrnn.layers import LSTM
from textrnn.models.qa_base import QAConfig, QANet


class LSTMReader(QANet):
    """The Keras bAbI "memory network with an LSTM reader".

    The story is read as one flat word sequence x (its last L = max_story_words
    words, right-aligned so column L-1 is always the latest word), the question
    as q (Lq = max_question_words)::

        match = softmax_story(A x · B q)       (B, L, Lq), a softmax over story words
        response = match + C x                 (B, L, Lq), C has Lq columns
        h = LSTM([responseᵀ ; B q])            over the Lq question steps, (B, H)
        â = softmax(W dropout(h))

    Keras applies its softmax over the question axis; over story words it is
    an attention, and each sentence's weight is the sum over its words
    (averaged over the question words).

    Args:
        config: a :class:`QAConfig`.
    """

    def __init__(self, config: QAConfig) -> None:
        super().__init__()
        self.config = config
        L, Lq, d = config.max_story_words, config.max_question_words, config.embedding_size
        self.A = nn.Embedding(config.vocab_size, d, padding_idx=0)
        self.C = nn.Embedding(config.vocab_size, Lq, padding_idx=0)
        self.B = nn.Embedding(config.vocab_size, d, padding_idx=0)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = LSTM(L + d, config.hidden_size)
        self.W = nn.Linear(config.hidden_size, config.num_answers)
        for table in (self.A, self.B, self.C):  # torch's N(0, 1) would drown the match term
            nn.init.normal_(table.weight, std=config.init_std)
            table.weight.data[0].zero_()

    def _flat_story(self, batch: dict) -> tuple[Tensor, Tensor]:
        """The last L story words, right-aligned: ids (B, L) and their sentence (B, L), -1 = pad.

        ::

            story [[a b _] [c _ _] [d e f]]  ->  L = 5: [b c d e f]    L = 8: [_ _ a b c d e f]
        """
        story = batch["story"]  # (B, S, W)
        Bsz, S, W = story.shape
        L = self.config.max_story_words
        real = torch.arange(W, device=story.device) < batch["sentence_lengths"].unsqueeze(-1)
        real = real.flatten(1)  # (B, S*W)
        later = real.flip(1).cumsum(1).flip(1) - real.long()  # (B, S*W) real words after this
        column = L - 1 - later  # (B, S*W)
        keep = real & (column >= 0)  # (B, S*W)
        rows = torch.arange(Bsz, device=story.device).unsqueeze(1).expand_as(keep)  # (B, S*W)
        sentence = torch.arange(S, device=story.device).repeat_interleave(W).expand_as(keep)
        ids = story.new_zeros(Bsz, L)  # (B, L)
        ids[rows[keep], column[keep]] = story.flatten(1)[keep]
        sentence_of = story.new_full((Bsz, L), -1)  # (B, L)
        sentence_of[rows[keep], column[keep]] = sentence[keep]
        return ids, sentence_of

    def forward(self, batch: dict) -> tuple[Tensor, Tensor]:
        """Answer scores and per-sentence attention; same contract as :meth:`MemN2N.forward`.

        Returns:
            logits (B, num_answers); attention (B, 1, S), summing to 1 over the
            sentences with a word among the last L (older ones get 0).
        """
        Lq = self.config.max_question_words
        x, sentence_of = self._flat_story(batch)  # (B, L), (B, L)
        word_mask = sentence_of >= 0  # (B, L)
        q = batch["question"][:, :Lq]  # (B, <=Lq)
        q = F.pad(q, (0, Lq - q.shape[1]))  # (B, Lq)
        q_lengths = batch["question_lengths"].clamp(max=Lq)  # (B,)
        q_mask = torch.arange(Lq, device=q.device) < q_lengths.unsqueeze(1)  # (B, Lq)
        m = self.dropout(self.A(x))  # (B, L, d)
        c = self.dropout(self.C(x))  # (B, L, Lq)
        u = self.dropout(self.B(q))  # (B, Lq, d)
        scores = torch.einsum("bld,bqd->blq", m, u)  # (B, L, Lq)
        match = masked_softmax(scores, word_mask.unsqueeze(-1), dim=1)  # (B, L, Lq)
        response = (match + c).transpose(1, 2)  # (B, Lq, L)
        _, (h, _) = self.lstm(torch.cat([response, u], -1), lengths=q_lengths)  # h (1, B, H)
        logits = self.W(self.dropout(h[-1]))  # (B, A)
        word_attention = (match * q_mask.unsqueeze(1)).sum(2) / q_lengths.clamp(min=1)[:, None]
        S = batch["story"].shape[1]
        attention = match.new_zeros(x.shape[0], S).scatter_add_(  # (B, S)
            1, sentence_of.clamp(min=0), word_attention * word_mask)
        return logits, attention.unsqueeze(1)  # (B, A), (B, 1, S)
