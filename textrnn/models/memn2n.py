"""End-To-End Memory Networks (Sukhbaatar et al. 2015, arXiv:1503.08895).

MemN2N (Sukhbaatar et al. 2015, "End-To-End Memory Networks", arXiv:1503.08895)
embeds every story sentence twice, as an address m_i and a content c_i, and
reads the memory K times, each hop refining the question state u::

    story (B, S, W) ─ A^k, PE, T_A ─ m (B, S, d) ┐
    question (B, Wq) ─ B, PE ─ u¹ (B, d) ─────── p = softmax(m u^k) ─ o^k = Σ_i p_i c_i
                                                 u^{k+1} = u^k + o^k     (k = 1..K)
    story ─ C^k, PE, T_C ─ c (B, S, d) ──────────┘    â = softmax(W ReLU(H u^{K+1} + b))

The paper's answer is the linear softmax(W u^{K+1}); ``answer_hidden > 0`` adds
the ReLU layer H (``textrnn train qa`` turns it on), because a yes/no question
("Is John in the kitchen?") asks whether the place in the question equals the
place in the retrieved memory, and no linear function of u = q + o tells that.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textrnn.attention import masked_softmax
from textrnn.models.qa_base import QAConfig, QANet


def position_encoding(lengths: Tensor, max_len: int, dim: int) -> Tensor:
    """PE word weights ``l_kj = (1 - j/J) - (k/d)(1 - 2j/J)``, 0 at padding.

    Args:
        lengths: (...) long, the true word count J of each sentence.
        max_len: W, the padded sentence width.
        dim: d, the embedding width.

    Returns:
        (..., W, d) float; ``[..., j-1, k-1]`` holds ``l_kj`` for ``j <= J``, else 0.
    """
    j = torch.arange(1, max_len + 1, device=lengths.device, dtype=torch.float)  # (W,)
    k = torch.arange(1, dim + 1, device=lengths.device, dtype=torch.float)  # (d,)
    J = lengths.clamp(min=1).unsqueeze(-1).float()  # (..., 1)
    j_over_J = (j / J).unsqueeze(-1)  # (..., W, 1)
    l = (1 - j_over_J) - (k / dim) * (1 - 2 * j_over_J)  # (..., W, d)
    return l * (j <= lengths.unsqueeze(-1)).unsqueeze(-1)  # (..., W, d)


class MemN2N(QANet):
    """End-To-End Memory Network with PE, TE, LS, RN and adjacent weight tying.

    Per hop k, with x_ij the j-th word of sentence i (J_i words) and q the question::

        m_i = Σ_j l_j ⊙ A^k x_ij + T_A^k(i)      l_kj = (1 - j/J) - (k/d)(1 - 2j/J)
        c_i = Σ_j l_j ⊙ C^k x_ij + T_C^k(i)      i = recency, 0 = most recent sentence
        u¹ = Σ_j l_j ⊙ B q_j
        p = softmax(uᵀ m)     (linear start: p = uᵀ m, the softmax removed)
        o = Σ_i p_i c_i
        u^{k+1} = u^k + o             (hop_relu: u^{k+1} = ReLU_half(H_u u^k + o), below)
        â = softmax(W u^{K+1})        (answer_hidden > 0: softmax(W ReLU(H u^{K+1} + b)))

    ``hop_relu`` is the non-linearity the paper adds for its 10k results: a
    d x d map H_u shared by all hops (as in its layer-wise tying) and a ReLU on
    the first half of the units of u^{k+1}, the other half left linear.

    Adjacent tying keeps K+1 tables E_0..E_K with A^k = E_{k-1}, C^k = E_k, so
    A^{k+1} = C^k and B = A^1 (T_A, T_C likewise); the paper's layer-wise
    scheme (A^k = A, C^k = C, u^{k+1} = H u^k + o) is not built.
    The paper also ties Wᵀ = C^K; here W is a separate (num_answers, d) layer
    because the answer classes are whole answer strings ("apple,football",
    "n,w"), not rows of the word table. It costs num_answers x d parameters.
    Padding sentences are masked out of p, with and without the softmax.

    Args:
        config: a :class:`QAConfig`.
    """

    def __init__(self, config: QAConfig) -> None:
        super().__init__()
        if config.weight_tying != "adjacent":
            raise ValueError(f"weight_tying must be 'adjacent', got {config.weight_tying!r}")
        d, num_tables = config.embedding_size, config.hops + 1
        self.config = config
        self.tables = nn.ModuleList(nn.Embedding(config.vocab_size, d, padding_idx=0)
                                    for _ in range(num_tables))  # E_0..E_K
        # Noise opens at most one gap per sentence, so recency stays below 2 * memory_size.
        self.num_times = config.memory_size * (2 if config.random_noise > 0 else 1)
        self.temporal = nn.ModuleList(nn.Embedding(self.num_times, d) for _ in range(num_tables)) \
            if config.temporal_encoding else None
        # Yes/no questions ask whether two places are equal, which no linear function of
        # u = q + o can tell; a ReLU layer can (one unit per place: "both terms say L").
        self.H = nn.Sequential(nn.Linear(d, config.answer_hidden), nn.ReLU()) \
            if config.answer_hidden > 0 else nn.Identity()
        self.W = nn.Linear(config.answer_hidden or d, config.num_answers, bias=False)
        self.H_u = nn.Linear(d, d, bias=False) if config.hop_relu else None
        for p in self.parameters():
            nn.init.normal_(p, std=config.init_std)
        for table in self.tables:
            table.weight.data[0].zero_()  # the <pad> row stays 0 (padding_idx freezes it)
        if self.H_u is not None and config.hop_init == "eye":
            nn.init.eye_(self.H_u.weight)  # starts as u + o, the plain model's update
        # In buffers, so a resumed run continues in the same phase of linear start.
        self.register_buffer("ls_active", torch.tensor(bool(config.linear_start)))
        self.register_buffer("ls_best_loss", torch.tensor(math.inf))

    def A(self, k: int) -> nn.Embedding:
        """The address table of hop k (1-based)."""
        return self.tables[k - 1]

    def C(self, k: int) -> nn.Embedding:
        """The content table of hop k (1-based)."""
        return self.tables[k]

    @property
    def B(self) -> nn.Embedding:
        """The question table."""
        return self.tables[0]

    @property
    def linear_start_active(self) -> bool:
        """True while the memory softmax is removed (linear start)."""
        return bool(self.ls_active)

    def on_evaluate(self, metrics: dict[str, float]) -> bool:
        """Re-insert the softmax once ``val_loss`` stops improving; True when it did."""
        if not self.linear_start_active:
            return False
        if metrics["val_loss"] < float(self.ls_best_loss):
            self.ls_best_loss.fill_(metrics["val_loss"])
            return False
        self.ls_active.fill_(False)
        return True

    def _word_weights(self, lengths: Tensor, max_len: int) -> Tensor:
        """(..., W, d) PE weights, or (..., W, 1) 0/1 bag-of-words weights, from lengths (...)."""
        if self.config.position_encoding:
            return position_encoding(lengths, max_len, self.config.embedding_size)
        positions = torch.arange(max_len, device=lengths.device)  # (W,)
        return (positions < lengths.unsqueeze(-1)).unsqueeze(-1).float()  # (..., W, 1)

    def _recency(self, batch: dict, mask: Tensor) -> Tensor:
        """(B, S) long time index: 0 for the most recent sentence, gaps under RN."""
        S = mask.shape[1]
        positions = torch.arange(S, device=mask.device)  # (S,)
        recency = batch["story_lengths"].unsqueeze(1) - 1 - positions  # (B, S)
        if self.training and self.config.random_noise > 0:
            # An empty memory right after sentence i (with prob. RN) delays i and all older.
            empty = (torch.rand(mask.shape, device=mask.device) < self.config.random_noise) & mask
            recency = recency + empty.flip(1).cumsum(1).flip(1)  # (B, S) + Σ_{j>=i} e_j
        # Padding gets 0 (masked anyway); clamp only matters for over-long batches.
        return recency.masked_fill(~mask, 0).clamp(0, self.num_times - 1)  # (B, S)

    @staticmethod
    def _relu_half(u: Tensor) -> Tensor:
        """(B, d) -> (B, d): ReLU on the first d // 2 units, the rest unchanged."""
        half = u.shape[-1] // 2
        return torch.cat([F.relu(u[..., :half]), u[..., half:]], dim=-1)

    def forward(self, batch: dict) -> tuple[Tensor, Tensor]:
        """Answer scores and per-hop attention.

        Args:
            batch: ``story`` (B, S, W), ``story_lengths`` (B,), ``sentence_lengths``
                (B, S), ``question`` (B, Wq), ``question_lengths`` (B,); all long.

        Returns:
            logits (B, num_answers) float; attention (B, K, S), each hop's softmax
            over the real sentences (0 on padding).
        """
        story, question = batch["story"], batch["question"]
        S = story.shape[1]
        mask = torch.arange(S, device=story.device) < batch["story_lengths"].unsqueeze(1)  # (B, S)
        l_story = self._word_weights(batch["sentence_lengths"], story.shape[2])  # (B, S, W, d)
        l_question = self._word_weights(batch["question_lengths"], question.shape[1])  # (B, Wq, d)
        recency = self._recency(batch, mask) if self.temporal is not None else None  # (B, S)

        def memory(t: int) -> Tensor:  # Σ_j l_j ⊙ E_t x_ij + T_t(i)
            mem = (l_story * self.tables[t](story)).sum(2)  # (B, S, d)
            return mem if recency is None else mem + self.temporal[t](recency)  # (B, S, d)

        memories = [memory(t) for t in range(len(self.tables))]  # hop k: m = [k-1], c = [k]
        u = (l_question * self.B(question)).sum(1)  # (B, d)
        linear, hops = self.linear_start_active, []
        for k in range(1, self.config.hops + 1):
            m, c = memories[k - 1], memories[k]  # (B, S, d)
            scores = torch.einsum("bsd,bd->bs", m, u)  # (B, S)
            p = masked_softmax(scores, mask)  # (B, S)
            weights = scores.masked_fill(~mask, 0.0) if linear else p  # (B, S)
            o = torch.einsum("bs,bsd->bd", weights, c)  # (B, d)
            u = u + o if self.H_u is None else self._relu_half(self.H_u(u) + o)  # (B, d)
            hops.append(p)
        return self.W(self.H(u)), torch.stack(hops, 1)  # (B, A), (B, K, S)
