"""Query-Reduction Network (Seo et al. 2017, "Query-Reduction Networks for Question
Answering", arXiv:1606.04582).

The question is a state that each story sentence x_t may *reduce* ("Where is the
apple?" + "Sandra got the apple" -> "Where is Sandra?"). One QRN unit, at sentence t
with the layer's query q_t::

    z_t = σ(W_z (x_t ∘ q_t) + b_z)          update gate: does x_t concern q_t? (scalar)
    r_t = σ(W_r (x_t ∘ q_t) + b_r)          reset gate: does it cancel what was known?
    h̃_t = tanh(W_h [x_t; q_t; x_t ∘ q_t] + b_h)   candidate reduced query
    h_t = z_t r_t h̃_t + (1 - z_t) h_{t-1}   h_0 = 0

The x_t ∘ q_t in the candidate is ours (the paper's reads [x_t; q_t]): entity slots
(``@ent3``) are numbered afresh in every story, so "is the place of x_t the one q_t
asks about?" must be an identity test, and Σ_k (x ∘ q)_k is a dot product that one
linear layer can read, while tanh(W [x; q]) cannot compare two arbitrary vectors.
Without it, a default model trained on en-10k tasks 1,6 fell 1.6 points on task 6
with renamed names (``compare=False`` keeps the paper's form).

The gates read x_t and q_t only, never h_{t-1}, so everything, the recurrence too,
can be computed for every t at once (:func:`qrn_layer`; a CPU still runs the recurrence
step by step, which it does faster). Layers stack: layer k+1 reads the same
sentences with the query q^{k+1}_t = h→^k_t + h←^k_t, the sum of layer k's forward
and backward (story read from the end) states; the answer is
ŷ = softmax(W_y h→^K_T) from the top layer's last forward state.

A second reader (``qrn_hops`` = H > 0, ours): MemN2N's H hops over the same story with
tables of their own (:class:`~textrnn.models.memn2n.MemN2N`), whose answer scores add to
the QRN's, ŷ = softmax(W_y h→^K_T + s_mem). Its hops follow a chain of facts that the
gates, which read one sentence and the layer's query, do not ("Brian is a lion",
"Bernhard is a lion", "Bernhard is white": bAbI's task 16, where a QRN alone stays at
49% on en-10k). Each reader is also trained on its own cross-entropy, next to that of
the sum: trained on the sum alone, the QRN reached task 16's 49% shortcut first and the
memory, whose scores only had to fix the remainder, never left it (50.3% after 30
epochs, against 100% with the readers' own losses; MemN2N alone: 100%). The memory's
linear start (MemN2N's hops without softmax) ends when its own validation loss stalls,
not the sum's, which the QRN keeps lowering (see :meth:`QRN.on_evaluate`).

cell (:class:`QRNCell`, every t at once) -> :func:`qrn_layer` (the recurrence, padding
sentences have z = 0 and change nothing) -> :class:`QRN` (embeddings, layers, answer).
The evidence a chat shows is how much each sentence's candidate makes up the final
query: w_t = z_t r_t Π_{j>t} (1 - z_j), normalised.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textrnn.attention import masked_softmax
from textrnn.models.memn2n import MemN2N, position_encoding
from textrnn.models.qa_base import QAConfig, QANet, word_embedding


class QRNCell(nn.Module):
    """The gates and candidate of one QRN unit, for every sentence of a batch at once.

    Args:
        dim: d, the width of sentences and queries.
        vector_gates: z and r of width d instead of scalars (the paper's "vector gate").
        compare: the candidate also reads x ∘ q (see the module docstring).
    """

    def __init__(self, dim: int, vector_gates: bool = False, compare: bool = True) -> None:
        super().__init__()
        gate_dim = dim if vector_gates else 1
        self.compare = compare
        self.W_z = nn.Linear(dim, gate_dim)
        self.W_r = nn.Linear(dim, gate_dim)
        self.W_h = nn.Linear((3 if compare else 2) * dim, dim)

    def forward(self, x: Tensor, q: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Args: x (B, S, d) sentences; q (B, S, d) the query each one meets.

        Returns:
            z, r (B, S, g) gates (g = 1 or d); candidate h̃ (B, S, d); and log(1 - z)
            (B, S, g), exact where z rounds to 1 (it is log σ(-a) of z's pre-activation a).
        """
        xq = x * q  # (B, S, d)
        z_pre = self.W_z(xq)  # (B, S, g)
        r = torch.sigmoid(self.W_r(xq))  # (B, S, g)
        parts = [x, q, xq] if self.compare else [x, q]
        candidate = torch.tanh(self.W_h(torch.cat(parts, -1)))  # (B, S, d)
        return torch.sigmoid(z_pre), r, candidate, F.logsigmoid(-z_pre)


def qrn_layer(cell: QRNCell, x: Tensor, q: Tensor, mask: Tensor, reverse: bool = False,
              parallel: bool | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """One direction of a QRN layer: h_t = z_t r_t h̃_t + (1 - z_t) h_{t-1}, h_0 = 0.

    The gates do not read h, so the recurrence unrolls to a weighted sum,
    h_t = Σ_{i≤t} z_i r_i h̃_i Π_{i<j≤t} (1 - z_j), which the parallel form computes for
    every t at once, the products as differences of cumulative sums of log(1 - z) (no
    loop over time); on a CPU the loop (:func:`scanned_sum`) is faster.

    Args:
        x: (B, S, d) sentences, oldest first; q: (B, S, d) queries.
        mask: (B, S) bool, True for real sentences (padding gets z = 0: no change).
        reverse: read the story from its last sentence to its first.
        parallel: the parallel form, or the loop; None = the loop on a CPU, unless the
            model is being exported (torch.export, for ONNX), the parallel form elsewhere.

    Returns:
        h (B, S, d) the state after each sentence (in story order); z and r (B, S, g).
    """
    z, r, candidate, log_keep = cell(x, q)  # (B, S, g) x2, (B, S, d), (B, S, g)
    real = mask.unsqueeze(-1)  # (B, S, 1)
    z, log_keep = z * real, log_keep * real  # padding: z = 0, log(1 - z) = 0
    if reverse:
        z, r, candidate, log_keep = (v.flip(1) for v in (z, r, candidate, log_keep))
    u = z * r * candidate  # (B, S, d)
    if parallel is None:
        parallel = u.device.type != "cpu" or torch.compiler.is_compiling()
    if not parallel:
        h = scanned_sum(log_keep, u)  # (B, S, d)
    elif log_keep.shape[-1] == 1:  # scalar gates: one (S, S) matrix product per story
        h = decayed_sum(log_keep, u)  # (B, S, d)
    else:  # vector gates: a (B, S, S, d) table of weights is 6x slower (S = 50)
        h = chunked_decayed_sum(log_keep, u, CHUNK)  # (B, S, d)
    if reverse:
        h, z, r = h.flip(1), z.flip(1), r.flip(1)
    return h, z, r


CHUNK = 4  # sentences a chunk: forward+backward at S = 50 took 7.6 ms, vs 9 (8) and 51 (one chunk)


def scanned_sum(log_keep: Tensor, u: Tensor) -> Tensor:
    """h_t = (1 - z_t) h_{t-1} + u_t from h_0 = 0, one sentence at a time: what
    :func:`decayed_sum` computes, the way a CPU does it fastest.

    A CPU gains nothing from the parallel forms' few large operations and pays for their
    (S, S) tables: one layer's forward and backward at d = 50, vector gates, took 0.59 ms
    here against 1.29 ms for :func:`chunked_decayed_sum` (B = 32, S = 5; 5.4 against 8.6
    at S = 50; 24 against 84 at B = 2048, S = 5). A GPU, and an exported ONNX graph (where
    the number of sentences is free and a Python loop would be fixed at the traced one),
    take the parallel forms.

    Args: log_keep (B, S, g) log(1 - z_t), g = 1 or d; u (B, S, d).
    Returns: h (B, S, d).
    """
    # unbind, not u[:, t]: the backward of S slices fills S zero tensors of the whole
    # (B, S, d) (a quarter of a quick-start step's profiled CPU time); unbind's stacks one.
    keeps = log_keep.exp().unbind(1)  # S x (B, g) 1 - z_t
    h = u.new_zeros(u.shape[0], u.shape[2])  # (B, d) h_0
    states = []
    for keep_t, u_t in zip(keeps, u.unbind(1), strict=True):
        h = keep_t * h + u_t  # (B, d)
        states.append(h)
    return torch.stack(states, 1) if states else u.clone()  # (B, S, d)


def decayed_sum(log_keep: Tensor, u: Tensor) -> Tensor:
    """h_t = Σ_{i≤t} u_i Π_{i<j≤t} (1 - z_j), every t at once: the recurrence
    h_t = (1 - z_t) h_{t-1} + u_t from h_0 = 0, unrolled.

    The products are exp of differences of L_t = Σ_{j≤t} log(1 - z_j), never a ratio
    of products (which underflows to 0/0 when a gate saturates).

    Args: log_keep (B, S, g) log(1 - z_t), g = 1 or d; u (B, S, d).
    Returns: h (B, S, d).
    """
    L = log_keep.cumsum(1)  # (B, S, g)
    S = u.shape[1]
    causal = torch.ones(S, S, dtype=torch.bool, device=u.device).tril()  # (S, S) i ≤ t
    gap = L.unsqueeze(2) - L.unsqueeze(1)  # (B, S_t, S_i, g) = log Π_{i<j≤t} (1 - z_j)
    weight = torch.where(causal[:, :, None], gap, float("-inf")).exp()  # (B, S, S, g)
    if weight.shape[-1] == 1:
        return weight[..., 0] @ u  # (B, S, d)
    return (weight * u.unsqueeze(1)).sum(2)  # (B, S, d)


def chunked_decayed_sum(log_keep: Tensor, u: Tensor, chunk: int) -> Tensor:
    """:func:`decayed_sum` in chunks of ``chunk`` steps: the same numbers for
    O(S · chunk) work instead of O(S²).

    Within chunk n, the sum runs from the chunk's start (v); the state each chunk
    leaves, H_n = K_n H_{n-1} + v_n,last with K_n the chunk's whole decay, is the same
    recurrence over the N chunks, solved by :func:`decayed_sum`; then
    h_t = v_t + (decay from the chunk's start to t) · H_{n-1}.

    Args: log_keep (B, S, g); u (B, S, d). Returns h (B, S, d).
    """
    B, S, d = u.shape
    pad = (-S) % chunk  # padding steps: log(1 - z) = 0 and u = 0 change nothing
    log_keep = F.pad(log_keep, (0, 0, 0, pad)).unflatten(1, (-1, chunk))  # (B, N, C, g)
    u = F.pad(u, (0, 0, 0, pad)).unflatten(1, (-1, chunk))  # (B, N, C, d)
    N = u.shape[1]
    v = decayed_sum(log_keep.flatten(0, 1), u.flatten(0, 1)).unflatten(0, (B, N))  # (B,N,C,d)
    L = log_keep.cumsum(2)  # (B, N, C, g) decay from the chunk's start, through t
    H = decayed_sum(L[:, :, -1], v[:, :, -1])  # (B, N, d) the state after each chunk
    H_before = F.pad(H, (0, 0, 1, 0))[:, :N]  # (B, N, d) H_{n-1}, H_{-1} = 0
    h = v + L.exp() * H_before.unsqueeze(2)  # (B, N, C, d)
    return h.flatten(1, 2)[:, :S]  # (B, S, d)


class QRN(QANet):
    """The Query-Reduction Network as a textrnn QA network (``arch="qrn"``).

    Uses ``embedding_size`` (d), ``qrn_layers`` (K), ``vector_gates``, ``qrn_compare``
    and ``init_std``;
    sentences and question are position-encoded bags of words (as in MemN2N).
    """

    def __init__(self, config: QAConfig) -> None:
        super().__init__()
        self.config = config
        d, K = config.embedding_size, config.qrn_layers
        self.embedding = word_embedding(config)
        cell = {"vector_gates": config.vector_gates, "compare": config.qrn_compare}
        self.forward_cells = nn.ModuleList(QRNCell(d, **cell) for _ in range(K))
        # the top layer's backward states would feed no layer: K - 1 backward cells
        self.backward_cells = nn.ModuleList(QRNCell(d, **cell) for _ in range(K - 1))
        # a second reader, MemN2N's hops with their own tables; its answer scores add to the
        # QRN's (qrn_hops hops; 0 = none, the paper's QRN)
        self.memory = MemN2N(replace(config, hops=config.qrn_hops)) if config.qrn_hops else None
        self.W_y = nn.Linear(d, config.num_answers, bias=False)

    def _encode(self, ids: Tensor) -> Tensor:
        """ids (..., W) -> (..., d): Σ_j l_j ⊙ e(x_j), the position encoding of MemN2N."""
        lengths = (ids != 0).sum(-1)  # (...)
        pe = position_encoding(lengths, ids.shape[-1], self.config.embedding_size)  # (..., W, d)
        return (self.embedding(ids) * pe).sum(-2)  # (..., d)

    def read(self, batch: dict) -> tuple[Tensor, Tensor]:
        """Every layer over the story: the top layer's forward states h→^K (B, S, d) and
        the evidence (B, K, S) of :meth:`forward` (the ONNX export form reads this too)."""
        story = batch["story"]  # (B, S, W)
        S = story.shape[1]
        real = torch.arange(S, device=story.device) < batch["story_lengths"].unsqueeze(1)
        x = self._encode(story)  # (B, S, d)
        q = self._encode(batch["question"]).unsqueeze(1).expand_as(x)  # (B, S, d)
        evidence = []
        for k, cell in enumerate(self.forward_cells):
            h, z, r = qrn_layer(cell, x, q, real)  # (B, S, d), (B, S, g), (B, S, g)
            evidence.append(masked_softmax(sentence_share(z, r).clamp(min=1e-9).log(), real))
            if k < len(self.backward_cells):
                h_back, _, _ = qrn_layer(self.backward_cells[k], x, q, real, reverse=True)
                q = h + h_back  # (B, S, d), the next layer's queries
        return h, torch.stack(evidence, 1)  # (B, S, d), (B, K, S)

    def forward(self, batch: dict) -> tuple[Tensor, Tensor]:
        """Answer scores and per-sentence evidence; the contract of
        :meth:`textrnn.models.memn2n.MemN2N.forward`, one "hop" per layer.

        Returns:
            logits (B, num_answers); attention (B, K, S), layer k's share of each real
            sentence in its final forward query, summing to 1 over real sentences.
        """
        logits, evidence, _ = self.forward_readers(batch)
        return logits, evidence

    def forward_readers(self, batch: dict) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """:meth:`forward`, with each reader's own scores beside the sum, for the loss to
        train each reader on its own too and validation to score each one.

        Returns:
            logits (B, A); evidence (B, K [+ H], S); ``{"qrn": (B, A), "memory": (B, A)}``
            with a memory reader, else ``{}``.
        """
        (qrn_logits, memory_logits), evidence = self.answers(batch)
        if memory_logits is None:
            return qrn_logits, evidence, {}
        readers = {"qrn": qrn_logits, "memory": memory_logits}
        return qrn_logits + memory_logits, evidence, readers  # (B, A), (B, K + H, S)

    def answers(self, batch: dict) -> tuple[tuple[Tensor, Tensor | None], Tensor]:
        """Each reader's answer scores, (B, A) and (B, A) or None, and the evidence."""
        h, evidence = self.read(batch)  # (B, S, d), (B, K, S)
        u = h[:, -1] if h.shape[1] else h.new_zeros(h.shape[0], h.shape[2])  # (B, d), h→_T
        return self.readers(u, evidence, batch)

    def readers(self, u: Tensor, evidence: Tensor, batch: dict
                ) -> tuple[tuple[Tensor, Tensor | None], Tensor]:
        """The readers' answer scores from the top layer's last forward state u = h→^K_T
        (B, d) and the QRN's evidence (B, K, S): W_y u (B, A), the memory's scores (B, A)
        or None, and the evidence of both (B, K [+ H], S). The ONNX export calls this too,
        so the graph combines the readers as :meth:`forward` does."""
        if self.memory is None:
            return (self.W_y(u), None), evidence
        memory_logits, reads = self.memory(batch)  # (B, A), (B, H, S)
        return (self.W_y(u), memory_logits), torch.cat([evidence, reads], 1)

    @property
    def linear_start_active(self) -> bool:
        """The memory reader's linear start (False without one)."""
        return self.memory is not None and self.memory.linear_start_active

    def on_evaluate(self, metrics: dict[str, float]) -> bool:
        """The memory reader's hook: ends its linear start once its own validation loss
        (``val_loss_memory``) stalls. Not the sum's ``val_loss``: jointly on en-10k that
        kept falling with the QRN's learning for all 8 epochs of a 20 CPU-minute run, and
        the memory stayed linear to the end (test 3 / 16 / 19 alone: 6.6 / 48.8 / 0.0%)."""
        if self.memory is None:
            return False
        own = metrics.get("val_loss_memory", metrics["val_loss"])
        return self.memory.on_evaluate({**metrics, "val_loss": own})


def sentence_share(z: Tensor, r: Tensor) -> Tensor:
    """w_t = z_t r_t Π_{j>t} (1 - z_j): sentence t's weight in the final state (gates
    averaged over their width). Args: z, r (B, S, g). Returns (B, S).

    The product is exp of a reversed cumulative sum of log(1 - z), not a cumprod: ONNX
    has no CumProd, and :mod:`textrnn.export_nets` records this same function."""
    z, r = z.mean(-1), r.mean(-1)  # (B, S)
    log_keep = torch.log1p(-z)  # (B, S); -inf where z is 1, and exp(-inf) = 0 as in a product
    from_t = log_keep.flip(1).cumsum(1).flip(1)  # (B, S) Σ_{j>=t} log(1 - z_j)
    after = torch.cat([from_t[:, 1:], from_t.new_zeros(from_t.shape[0], 1)], 1)  # Σ_{j>t}
    return z * r * after.exp()  # (B, S)
