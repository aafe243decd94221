"""Question answering over bAbI stories: End-To-End Memory Networks and an LSTM reader.

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

:class:`LSTMReader` is the "memory network with an LSTM reader" that the Keras
bAbI example ships (it claims 98.6% on QA1-10k after 120 epochs).

Expected results (1 CPU thread, Adam, batch 32, clip 40, 3 hops, d 50, PE+TE+LS+RN,
``textrnn train qa``'s defaults: lr 0.005 decayed linearly to 0 over 20 epochs,
answer_hidden 64): tasks 1 and 6 of en-10k trained jointly reach 100% / 100% test
accuracy (~60 s); alone, QA1-10k passes 98.6% after 2 epochs (~6 s) and QA6-10k
reaches 99.8% (~35 s; without the answer layer QA6 stays at 93-97% whatever the lr
schedule). The generated four-kind stories (20k questions) reach 99.4% in ~80 s.
The LSTM reader learns slowly: ~82% on QA1-10k after 30 epochs (lr 0.005, d 64,
~3.3 s per epoch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textrnn.attention import masked_softmax
from textrnn.collate import IGNORE_INDEX
from textrnn.device import eval_mode
from textrnn.layers import LSTM
from textrnn.metrics import calibration_error


@dataclass
class QAConfig:
    """Shape and training tricks of a :class:`QAModel`."""

    vocab_size: int  # word ids, len(word_vocab); comes from the training data
    num_answers: int  # answer classes, len(answer_vocab); each whole answer string is one
    arch: str = "memn2n"  # "memn2n" (Sukhbaatar et al. 2015) or "lstm_reader" (Keras example)
    embedding_size: int = 50  # word embedding width d (the paper's joint-training size)
    hops: int = 3  # memory hops K (memn2n)
    memory_size: int = 50  # most recent sentences read; sizes the time tables (memn2n)
    position_encoding: bool = True  # PE: weigh word j by l_kj instead of a bag of words (memn2n)
    temporal_encoding: bool = True  # TE: add T_A(i), T_C(i), i = recency (memn2n)
    weight_tying: str = "adjacent"  # A^{k+1} = C^k, B = A^1; the only scheme built (memn2n)
    linear_start: bool = True  # LS: read memory without softmax until val loss stalls (memn2n)
    random_noise: float = 0.1  # RN: fraction of empty memories in the time index, training only
    init_std: float = 0.1  # embeddings start as N(0, init_std²), as in the MemN2N paper
    answer_hidden: int = 0  # ReLU units between u^{K+1} and W; 0 = the paper's linear W (memn2n)
    hop_relu: bool = False  # u^{k+1} = ReLU_half(H u^k + o^k), the paper's 10k non-linearity
    hop_init: str = "normal"  # H's start: "normal" N(0, init_std²) like every weight, or "eye"
    hidden_size: int = 32  # LSTM width (lstm_reader; the Keras example's 32)
    dropout: float = 0.3  # after the embeddings and the LSTM (lstm_reader; Keras' 0.3)
    max_story_words: int = 100  # read the last this many story words (lstm_reader)
    max_question_words: int = 12  # question words read; bAbI's longest has 11 (lstm_reader)
    entity_slots: int = 0  # K: unseen words read as @ent1..@entK (textrnn.data.entities); 0=off
    entity_dropout: float = 0.5  # training: share of stories that read known names as slots
    tasks: list[int] = field(default_factory=list)  # bAbI tasks trained on; metadata only


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


class QANet(nn.Module):
    """The task contract shared by every QA network: loss, predict, evaluate.

    Subclasses implement ``forward(batch) -> (logits (B, A), attention (B, K, S))``,
    where ``attention[:, k]`` is hop k's softmax over the real sentences.
    """

    @property
    def linear_start_active(self) -> bool:
        """Whether the memory softmax is still removed (only MemN2N has linear start)."""
        return False

    def on_evaluate(self, metrics: dict[str, float]) -> bool:
        """Hook called after each evaluation; returns True when it changed the model."""
        return False

    def scores(self, batch: dict) -> tuple[Tensor, Tensor]:
        """``forward``, with the slot answers that no word of the story stands for ruled
        out (``answer_mask``, from batches with entity slots).

        Returns:
            logits (B, A) float; attention (B, K, S).
        """
        logits, attention = self(batch)  # (B, A), (B, K, S)
        logits = logits.float()
        if "answer_mask" in batch:
            logits = logits.masked_fill(~batch["answer_mask"], torch.finfo(logits.dtype).min)
        return logits, attention

    def loss(self, batch: dict) -> Tensor:
        """Mean answer cross-entropy of a :class:`~textrnn.data.qa_batches.QABatches` batch.

        Returns:
            Scalar float tensor; answers of -100 (unknown) are left out.
        """
        logits, _ = self.scores(batch)  # (B, A)
        return F.cross_entropy(logits.float(), batch["answer"], ignore_index=IGNORE_INDEX)

    @torch.no_grad()
    def predict(self, batch: dict) -> list[dict]:
        """Answer each question, with the sentences the model looked at.

        Returns:
            Per example: ``answer_id`` (int), ``confidence`` (its softmax probability),
            ``attention`` (the last hop's weights, one per encoded sentence, story
            order, summing to 1) and ``hops`` (every hop's weights). Under linear
            start the memory is read without softmax; the weights shown are still
            the softmax of the scores.
        """
        with eval_mode(self):
            logits, attention = self.scores(batch)  # (B, A), (B, K, S)
        confidence, answer = torch.softmax(logits.float(), -1).max(-1)  # (B,), (B,)
        attention = attention.float().cpu()
        return [{"answer_id": int(answer[b]), "confidence": float(confidence[b]),
                 "attention": attention[b, -1, :n].tolist(), "hops": attention[b, :, :n].tolist()}
                for b, n in enumerate(batch["story_lengths"].tolist())]

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        """Loss and accuracy over batches; an unknown answer (-100) counts as wrong.

        Returns:
            ``val_loss`` (mean over known answers), ``val_acc``, ``val_ece`` (expected
            calibration error of the answers' confidence, 10 bins), and
            ``val_acc_task{N}`` for every task id N > 0 present.
        """
        with eval_mode(self):
            loss_sum, known, correct, tasks, confidence = 0.0, 0, [], [], []
            for batch in batches:
                logits, _ = self.scores(batch)  # (B, A)
                answer = batch["answer"]  # (B,)
                loss_sum += F.cross_entropy(logits.float(), answer, ignore_index=IGNORE_INDEX,
                                            reduction="sum").item()
                known += int((answer != IGNORE_INDEX).sum())
                correct.append((logits.argmax(-1) == answer).cpu())
                tasks.append(batch["task"].cpu())
                confidence.append(torch.softmax(logits, -1).amax(-1).cpu())
        correct_t = torch.cat(correct).float() if correct else torch.zeros(0)  # (N,)
        task_t = torch.cat(tasks) if tasks else torch.zeros(0, dtype=torch.long)  # (N,)
        metrics = {"val_loss": loss_sum / max(known, 1),
                   "val_acc": correct_t.mean().item() if len(correct_t) else 0.0,
                   "val_ece": calibration_error(torch.cat(confidence) if confidence
                                                else torch.zeros(0), correct_t)}
        for task in task_t.unique().tolist():
            if task > 0:
                metrics[f"val_acc_task{task}"] = correct_t[task_t == task].mean().item()
        return metrics


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


ARCHS = {"memn2n": MemN2N, "lstm_reader": LSTMReader}


class QAModel(QANet):
    """The registered QA model: builds the network named by ``config.arch``.

    Args:
        config: a :class:`QAConfig`.

    Raises:
        ValueError: on an unknown ``arch``, or a ``weight_tying`` other than "adjacent".
    """

    config_class = QAConfig  # what checkpoint.load rebuilds the config with
    task = "qa"  # its key in MODELS, stored in every checkpoint
    best_metric, best_mode = "val_acc", "max"  # the evaluate() key that picks best.pt

    def __init__(self, config: QAConfig) -> None:
        super().__init__()
        if config.arch not in ARCHS:
            raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {config.arch!r}")
        self.config = config
        self.net = ARCHS[config.arch](config)

    def forward(self, batch: dict) -> tuple[Tensor, Tensor]:
        """See :meth:`MemN2N.forward`."""
        return self.net(batch)

    @property
    def linear_start_active(self) -> bool:
        """True while MemN2N's memory softmax is removed (linear start)."""
        return self.net.linear_start_active

    def on_evaluate(self, metrics: dict[str, float]) -> bool:
        """Forward the trainer's metrics to the network (MemN2N's linear start)."""
        return self.net.on_evaluate(metrics)
