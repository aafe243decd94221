"""What every question-answering network shares: its config and its task contract.

:class:`QAConfig` holds the settings of every architecture (each ignores what is
not its own); :class:`QANet` gives them one ``loss``, ``predict`` and ``evaluate``
over the answer scores that their ``forward`` returns. The networks are in
:mod:`textrnn.models.memn2n` and :mod:`textrnn.models.lstm_reader`;
:mod:`textrnn.models.qa` registers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textrnn.collate import IGNORE_INDEX
from textrnn.device import eval_mode
from textrnn.metrics import calibration_error, fit_temperature, unsure_threshold


@dataclass
class QAConfig:
    """Shape and training tricks of a :class:`QAModel`."""

    vocab_size: int  # word ids, len(word_vocab); comes from the training data
    num_answers: int  # answer classes, len(answer_vocab); each whole answer string is one
    # "qrn" (Seo et al. 2017; the default: the only one that meets the 1k defaults target),
    # "memn2n" (Sukhbaatar et al. 2015), "entnet" (Henaff et al. 2017) or "lstm_reader" (Keras)
    arch: str = "qrn"
    embedding_size: int = 50  # width d (MemN2N's joint-training size; qa.build gives a QRN 128)
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
    memory_slots: int = 20  # M, memory slots with keys (entnet; Henaff et al. use 20)
    qrn_layers: int = 2  # K stacked layers, both directions below the top (qrn; the paper's 2)
    # update and reset gates of width d, not scalars (qrn). On by default since 2026-12-02:
    # the quick start's 13 generated kinds, 5 CPU-min, mean error 5.68% -> 4.75% (positional
    # reasoning 76 -> 85%, three facts 97 -> 99%); en 1k tasks 1,6 still 100% / >= 99.9%.
    vector_gates: bool = True
    qrn_compare: bool = True  # the candidate also reads x ∘ q, to compare slots (qrn; ours)
    # H: a second reader beside the QRN, MemN2N's H hops with tables of their own, answer
    # scores added, each reader also trained on its own loss (qrn; ours): it follows a chain
    # "Greg is a swan, the swan Lily is white" (bAbI 16) that no QRN gate, reading only a
    # sentence and its layer's query, does; 0 = the QRN alone, as in older checkpoints
    qrn_hops: int = 0
    entity_slots: int = 0  # K: unseen words read as @ent1..@entK (textrnn.data.entities); 0=off
    entity_dropout: float = 0.5  # training: share of stories that read known names as slots
    slot_draws: int = 8  # answering: average over this many numberings of the slots
    # "all": every story is read with its names, places and things as slots, known or not
    # (vocabs["slotted"], textrnn.data.entities.slotted_words), so new names read exactly as
    # known ones; "unknown": only words never seen are, as in checkpoints from before it
    slot_reading: str = "unknown"
    # L: every set of 2..L slots is an answer of its own, a list of unseen things
    # (textrnn.data.slot_lists); 0 = off, as in checkpoints from before lists had them
    list_slots: int = 0
    tasks: list[int] = field(default_factory=list)  # bAbI tasks trained on; metadata only


def word_embedding(config: QAConfig) -> nn.Embedding:
    """The word table e of a QA network: (vocab_size, embedding_size), N(0, init_std²) as
    in the MemN2N paper, with the padding row 0 and kept 0."""
    embedding = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=0)
    nn.init.normal_(embedding.weight, std=config.init_std)
    embedding.weight.data[0].zero_()
    return embedding


class QANet(nn.Module):
    """The task contract shared by every QA network: loss, predict, evaluate.

    Subclasses implement ``forward(batch) -> (logits (B, A), attention (B, K, S))``,
    where ``attention[:, k]`` is hop k's softmax over the real sentences.
    """

    # Answering divides the scores by T (fitted on validation, val_temperature): averaging
    # the answer over 8 slot numberings makes it right more often but less sure than it
    # should be (quick start: ECE 0.058 at T = 1, 0.006 at the NLL-best T = 0.6).
    temperature: float = 1.0

    def calibrate(self, metrics: dict[str, float]) -> None:
        """Take the temperature fitted on a checkpoint's validation (``val_temperature``
        of its metrics; 1 in checkpoints from before it)."""
        self.temperature = float(metrics.get("val_temperature", 1.0))

    @property
    def linear_start_active(self) -> bool:
        """Whether the memory softmax is still removed (only MemN2N has linear start)."""
        return False

    def on_evaluate(self, metrics: dict[str, float]) -> bool:
        """Hook called after each evaluation; returns True when it changed the model."""
        return False

    def scores(self, batch: dict, readers: dict[str, Tensor] | None = None
               ) -> tuple[Tensor, Tensor]:
        """``forward``, with the slot answers that no word of the story stands for ruled
        out (``answer_mask``, from batches with entity slots); with other readings of the
        slots in the batch (``view_*``, :func:`~textrnn.data.qa_batches.slot_views`), the
        answer probabilities averaged over them, each slot answer mapped back to the
        first reading's number.

        Args:
            readers: when given, filled with each reader's own masked scores (B, A [+ C])
                of the first reading, for a network with two (``forward_readers``).

        Returns:
            logits (B, A) float (log-probabilities when averaged); attention (B, K, S) of
            the first reading.
        """
        net = getattr(self, "net", self)
        mask = batch.get("answer_mask")
        if readers is not None and hasattr(net, "forward_readers"):
            logits, attention, parts = net.forward_readers(batch)  # (B, A), (B, K, S), {}
            readers.update({name: self._answer_scores(part, mask) for name, part in parts.items()})
        else:
            logits, attention = self(batch)  # (B, A), (B, K, S)
        logits = self._answer_scores(logits, mask)  # (B, A [+ C])
        if "view_story" not in batch:
            return logits, attention
        K = self.config.entity_slots
        first = self.config.num_answers - K  # slot answers are last, then list classes
        lists = getattr(self, "lists", None)
        probs = torch.softmax(logits, -1)  # (B, A [+ C])
        for story, question, mask, order in zip(batch["view_story"], batch["view_question"],
                                                batch["view_answer_mask"], batch["view_order"],
                                                strict=True):
            view, _ = self({**batch, "story": story, "question": question})  # (B, A)
            p = torch.softmax(self._answer_scores(view, mask), -1)  # (B, A [+ C])
            # entity k was slot order[b, k] in this reading and slot k in the first one
            parts = [p[:, :first], p[:, first: first + K].gather(1, order)]  # (B, A-K), (B, K)
            if lists is not None:
                parts.append(lists.to_first_reading(p[:, first + K:], order))  # (B, C)
            probs = probs + torch.cat(parts, 1)  # (B, A [+ C])
        probs = probs / (1 + len(batch["view_story"]))  # rows sum to 1
        return probs.clamp(min=1e-30).log(), attention

    def _calibrated(self, logits: Tensor) -> Tensor:
        """``logits / temperature``: the scores answers are given with (never the loss's)."""
        return logits if self.temperature == 1.0 else logits / self.temperature

    def _answer_scores(self, logits: Tensor, mask: Tensor | None) -> Tensor:
        """(B, A) scores -> float, masked by ``answer_mask`` (B, A), then the list classes'
        scores appended when the model has them (:class:`~textrnn.models.qa_lists.ListAnswers`).
        """
        logits = logits.float()
        if mask is not None:
            logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        lists = getattr(self, "lists", None)
        return lists.extend(logits, mask) if lists is not None else logits

    def loss(self, batch: dict) -> Tensor:
        """Mean answer cross-entropy of a :class:`~textrnn.data.qa_batches.QABatches` batch;
        for a network with two readers (a QRN with ``qrn_hops``), in training, plus each
        reader's own.

        Returns:
            Scalar float tensor; answers of -100 (unknown) are left out.
        """
        readers: dict[str, Tensor] = {}
        logits, _ = self.scores(batch, readers if self.training else None)  # (B, A)
        loss = F.cross_entropy(logits.float(), batch["answer"], ignore_index=IGNORE_INDEX)
        for part in readers.values():
            loss = loss + F.cross_entropy(part, batch["answer"], ignore_index=IGNORE_INDEX)
        return loss

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
        confidence, answer = torch.softmax(self._calibrated(logits.float()), -1).max(-1)  # (B,)
        attention = attention.float().cpu()
        return [{"answer_id": int(answer[b]), "confidence": float(confidence[b]),
                 "attention": attention[b, -1, :n].tolist(), "hops": attention[b, :, :n].tolist()}
                for b, n in enumerate(batch["story_lengths"].tolist())]

    @torch.no_grad()
    def evaluate(self, batches) -> dict[str, float]:
        """Loss and accuracy over batches; an unknown answer (-100) counts as wrong.

        Returns:
            ``val_loss`` (mean over known answers), ``val_acc``, ``val_ece`` (expected
            calibration error of the answers' confidence, 10 bins, at the model's
            temperature), ``val_temperature`` (:func:`~textrnn.metrics.fit_temperature`
            on these answers: what a checkpoint of this validation answers with),
            ``val_unsure_below`` (:func:`~textrnn.metrics.unsure_threshold` at that
            temperature: the chat's "not sure" line), and ``val_acc_task{N}`` for every
            task id N > 0 present; with two readers ``val_loss_{name}``, each one's
            own loss on the first reading of the slots; ``linear_start`` (1) while the
            memory is read without softmax.
        """
        with eval_mode(self):
            loss_sum, known, correct, tasks, scores, answers = 0.0, 0, [], [], [], []
            reader_sums: dict[str, float] = {}
            for batch in batches:
                readers: dict[str, Tensor] = {}
                logits, _ = self.scores(batch, readers)  # (B, A)
                answer = batch["answer"]  # (B,)
                loss_sum += F.cross_entropy(logits.float(), answer, ignore_index=IGNORE_INDEX,
                                            reduction="sum").item()
                for name, part in readers.items():  # each reader's own, first reading
                    reader_sums[name] = reader_sums.get(name, 0.0) + F.cross_entropy(
                        part, answer, ignore_index=IGNORE_INDEX, reduction="sum").item()
                known += int((answer != IGNORE_INDEX).sum())
                correct.append((logits.argmax(-1) == answer).cpu())
                tasks.append(batch["task"].cpu())
                scores.append(logits.float().cpu())
                answers.append(answer.cpu())
        correct_t = torch.cat(correct).float() if correct else torch.zeros(0)  # (N,)
        task_t = torch.cat(tasks) if tasks else torch.zeros(0, dtype=torch.long)  # (N,)
        scores_t = torch.cat(scores) if scores else torch.zeros(0, 1)  # (N, A), before T
        fitted = fit_temperature(scores_t, torch.cat(answers)) if answers else 1.0
        conf_t = torch.softmax(self._calibrated(scores_t), -1).amax(-1)  # (N,)
        conf_fitted = torch.softmax(scores_t / fitted, -1).amax(-1)  # (N,)
        metrics = {"val_loss": loss_sum / max(known, 1),
                   "val_acc": correct_t.mean().item() if len(correct_t) else 0.0,
                   "val_ece": calibration_error(conf_t, correct_t),
                   "val_temperature": fitted,
                   "val_unsure_below": unsure_threshold(conf_fitted, correct_t)}
        for name, total in reader_sums.items():
            metrics[f"val_loss_{name}"] = total / max(known, 1)
        if self.linear_start_active:  # in the log: how long the memory read linearly
            metrics["linear_start"] = 1.0
        for task in task_t.unique().tolist():
            if task > 0:
                metrics[f"val_acc_task{task}"] = correct_t[task_t == task].mean().item()
        return metrics
