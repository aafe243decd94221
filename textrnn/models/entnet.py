"""Recurrent Entity Network (Henaff et al. 2017, "Tracking the World State with Recurrent
Entity Networks", arXiv:1612.03969).

M memory slots, each a key w_j (what the slot is about) and a state h_j, read the
story one sentence s_t at a time; every slot is a gated recurrent cell::

    s_t = Σ_i f_i ⊙ e(x_ti)                 input encoder: learned position masks f_i
    g_j = σ(s_tᵀ h_j + s_tᵀ w_j)            gate: does sentence t concern slot j?
    h̃_j = φ(U h_j + V w_j + W s_t)          candidate (φ = PReLU)
    h_j ← h_j + g_j ⊙ h̃_j
    h_j ← h_j / ‖h_j‖                       normalisation: the memory forgets by rotation

    q = Σ_i f'_i ⊙ e(x_qi);  p_j = softmax_j(qᵀ h_j);  u = Σ_j p_j h_j
    ŷ = R φ(q + H u)                        output module

cell (one sentence, every slot) -> :func:`entnet_memory` (the loop over sentences,
padding sentences leave the memory as it is) -> :class:`EntNet` (embeddings, masks,
output). The evidence a chat shows is which sentences opened the gates of the
slots the answer read: a_t ∝ Σ_j p_j g_tj.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textrnn.attention import masked_softmax
from textrnn.models.qa_base import QAConfig, QANet, word_embedding

MAX_SENTENCE_WORDS = 32  # position masks learned for this many words; later ones share the last


class EntNetCell(nn.Module):
    """One story sentence read by every memory slot.

    Args:
        dim: d, the width of sentences, keys and slot states.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.U = nn.Linear(dim, dim, bias=False)
        self.V = nn.Linear(dim, dim, bias=False)
        self.W = nn.Linear(dim, dim, bias=False)
        self.phi = nn.PReLU(dim)

    def forward(self, s_t: Tensor, h: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
        """Args: s_t (B, d) the sentence; h (B, M, d) the slots; keys (M, d).

        Returns:
            h (B, M, d) updated and normalised; g (B, M) the gates.
        """
        g = torch.sigmoid(torch.einsum("bd,bmd->bm", s_t, h) + s_t @ keys.T)  # (B, M)
        candidate = self.U(h) + self.V(keys) + self.W(s_t).unsqueeze(1)  # (B, M, d)
        candidate = self.phi(candidate.transpose(1, 2)).transpose(1, 2)  # PReLU per channel
        h = h + g.unsqueeze(-1) * candidate  # (B, M, d)
        return F.normalize(h, dim=-1, eps=1e-6), g  # (B, M, d), (B, M)


def entnet_memory(cell: EntNetCell, sentences: Tensor, mask: Tensor, keys: Tensor,
                  h0: Tensor) -> tuple[Tensor, Tensor]:
    """Read every sentence in story order; a padding sentence changes nothing.

    Args:
        sentences: (B, S, d) encoded sentences, oldest first.
        mask: (B, S) bool, True for real sentences.
        keys: (M, d); h0: (B, M, d) the slots' start.

    Returns:
        h (B, M, d) after the story; gates (B, S, M), 0 at padding.
    """
    h, gates = h0, []
    for t in range(sentences.shape[1]):
        h_new, g = cell(sentences[:, t], h, keys)  # (B, M, d), (B, M)
        real = mask[:, t, None]  # (B, 1)
        h = torch.where(real.unsqueeze(-1), h_new, h)
        gates.append(g * real)
    gates_t = torch.stack(gates, 1) if gates else h.new_zeros(h.shape[0], 0, h.shape[1])
    return h, gates_t


class EntNet(QANet):
    """The Recurrent Entity Network as a textrnn QA network (``arch="entnet"``).

    Uses ``embedding_size`` (d), ``memory_slots`` (M) and ``init_std``; the same
    batches, loss and evaluation as every :class:`~textrnn.models.qa_base.QANet`.
    """

    def __init__(self, config: QAConfig) -> None:
        super().__init__()
        self.config = config
        d, M = config.embedding_size, config.memory_slots
        self.embedding = word_embedding(config)
        self.story_mask = nn.Parameter(torch.ones(MAX_SENTENCE_WORDS, d))  # f_i
        self.question_mask = nn.Parameter(torch.ones(MAX_SENTENCE_WORDS, d))  # f'_i
        self.keys = nn.Parameter(torch.randn(M, d) * config.init_std)  # w_j
        self.cell = EntNetCell(d)
        self.H = nn.Linear(d, d, bias=False)
        self.phi = nn.PReLU(d)
        self.R = nn.Linear(d, config.num_answers, bias=False)

    def _encode(self, ids: Tensor, mask: Tensor) -> Tensor:
        """ids (..., W) -> (..., d): Σ_i f_i ⊙ e(x_i) (padding ids embed to 0)."""
        W = ids.shape[-1]
        rows = torch.arange(W, device=ids.device).clamp(max=MAX_SENTENCE_WORDS - 1)
        return (self.embedding(ids) * mask[rows]).sum(-2)  # (..., d)

    def read(self, batch: dict) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The memory after the story and how the question reads it.

        Returns:
            gates (B, S, M) g_tj, 0 at padding; p (B, M) the question's softmax over the
            slots; u (B, d) the slots read, Σ_j p_j h_j; q (B, d) the question.
        """
        story = batch["story"]  # (B, S, W)
        S = story.shape[1]
        real = torch.arange(S, device=story.device) < batch["story_lengths"].unsqueeze(1)
        s = self._encode(story, self.story_mask)  # (B, S, d)
        q = self._encode(batch["question"], self.question_mask)  # (B, d)
        h0 = self.keys.unsqueeze(0).expand(story.shape[0], -1, -1)  # (B, M, d)
        h, gates = entnet_memory(self.cell, s, real, self.keys, h0)  # (B, M, d), (B, S, M)
        p = torch.softmax(torch.einsum("bd,bmd->bm", q, h), -1)  # (B, M)
        u = torch.einsum("bm,bmd->bd", p, h)  # (B, d)
        return gates, p, u, q

    def forward(self, batch: dict) -> tuple[Tensor, Tensor]:
        """Answer scores and per-sentence evidence; the contract of
        :meth:`textrnn.models.memn2n.MemN2N.forward` (one "hop").

        Returns:
            logits (B, num_answers); attention (B, 1, S), summing to 1 over real sentences.
        """
        gates, p, u, q = self.read(batch)  # (B, S, M), (B, M), (B, d), (B, d)
        logits = self.R(self.phi(q + self.H(u)))  # (B, A)
        real = torch.arange(gates.shape[1], device=gates.device) < \
            batch["story_lengths"].unsqueeze(1)  # (B, S)
        evidence = torch.einsum("bsm,bm->bs", gates, p)  # (B, S)
        attention = masked_softmax(evidence.clamp(min=1e-9).log(), real)  # (B, S) sums to 1
        return logits, attention.unsqueeze(1)
