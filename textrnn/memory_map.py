"""Where a QA model looked: its attention over a story's sentences, hop by hop.

Every QA network answers with ``forward(batch) -> (logits (B, A), attention (B, K, S))``
(:mod:`textrnn.models.qa_base`); what the K rows mean depends on the network:

=============  =====  ==========================================================
arch           K      row k
=============  =====  ==========================================================
memn2n         hops   hop k's softmax p_i = softmax(m_iᵀ u^k) over the sentences
qrn            layers layer k's share of each sentence in its final forward query,
                      w_t ∝ z_t r_t Π_{j>t} (1 - z_j)
entnet         1 + 3  which sentences opened the gates of the slots the answer
                      read, a_t ∝ Σ_j p_j g_tj; then the gates g_tj themselves of
                      the :data:`SLOTS_SHOWN` slots the question read most (p_j)
lstm_reader    1      the story-word softmax of the match, summed per sentence
=============  =====  ==========================================================

:func:`read` asks :class:`textrnn.chat.Answerer`, so the story is encoded exactly as the
chat encodes it (the last ``memory_size`` sentences, unknown words as entity slots);
with slot draws the answer averages over the readings, and the weights are those of the
first reading (:meth:`~textrnn.models.qa_base.QANet.scores`). :func:`plot` draws them as
a heat map (matplotlib, imported there), :func:`to_json` gives the numbers.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from os import PathLike

from textrnn.checkpoint import Bundle
from textrnn.data.babi import sentence_words
from textrnn.errors import DataError, TextrnnError

# What a column of the picture is, per arch; and a line on what its numbers mean.
COLUMN = {"memn2n": "hop", "qrn": "layer", "entnet": "slots", "lstm_reader": "words"}
MEANING = {
    "memn2n": "each hop's softmax over the sentences",
    "qrn": "each layer's share of every sentence in its final query",
    "entnet": "first the sentences that opened the gates of the slots the answer read, "
              "then the gate g of each sentence for the slots the question read most "
              "(p: the question's weight on the slot)",
    "lstm_reader": "the story-word attention summed per sentence (one column: the LSTM "
                   "reader has no hops)",
}
LABEL_CHARS = 48  # a sentence label longer than this is cut with "…"
SLOTS_SHOWN = 3  # EntNet: the slots with the largest p_j get a column of their own
ANNOTATE_MAX = 400  # cells: at most this many get their number written in them


@dataclass
class MemoryMap:
    """A model's attention over one story, for one question.

    ``weights[k][i]`` is the weight column k (hop or layer) gave ``sentences[i]``, which
    is story sentence ``dropped + i`` (the oldest ``dropped`` are beyond the memory).
    """

    question: str
    answer: str
    confidence: float  # softmax probability of the answer, in [0, 1]
    sure: bool  # confidence at or above the checkpoint's validation threshold
    arch: str  # QAConfig.arch
    sentences: list[str]  # the sentences read, story order
    weights: list[list[float]]  # (K, S) as nested lists
    dropped: int = 0
    evidence: list[int] = field(default_factory=list)  # story indexes the chat shows
    labels: list[str] | None = None  # the columns' names where the arch gives them

    @property
    def columns(self) -> list[str]:
        """The x labels: ``hop 1 .. hop K`` (memn2n), ``layer 1 .. layer K`` (qrn), ..."""
        if self.labels is not None:
            return list(self.labels)
        name = COLUMN.get(self.arch, "hop")
        if len(self.weights) == 1 and self.arch in ("entnet", "lstm_reader"):
            return [name]
        return [f"{name} {k + 1}" for k in range(len(self.weights))]


def parse_story(lines: Iterable[str], path: str | PathLike[str] = "<story>") -> list[str]:
    """The sentences of a story file: one a line, blank lines skipped; bAbI's numbered
    lines (``1 Mary moved to the bathroom.``) lose their number.

    Raises:
        DataError: naming ``path`` and the line, for a question line, a line with no
            words, numbering that restarts (a second story) or a file with no sentence.

    >>> parse_story(["1 Mary moved to the bathroom.", "", "2 John went to the hallway."])
    ['Mary moved to the bathroom.', 'John went to the hallway.']
    >>> parse_story(["Mary left.", "Where is Mary?"])
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: <story>:2: a question, not a story sentence: give it with --question
    """
    sentences, last_id = [], 0
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text:
            continue
        head, _, rest = text.partition(" ")
        if head.isdigit() and rest.strip():
            if int(head) <= last_id:
                raise DataError(f"the numbering restarts at {head}: a second story; "
                                "give one story per file", path, number)
            last_id, text = int(head), rest.strip()
        if "\t" in text or text.endswith("?"):
            raise DataError("a question, not a story sentence: give it with --question",
                            path, number)
        if not sentence_words(text):
            raise DataError(f"no words in {text[:40]!r}", path, number)
        sentences.append(text)
    if not sentences:
        raise DataError("no story sentences in the file", path)
    return sentences


def read_story(path: str | PathLike[str]) -> list[str]:
    """:func:`parse_story` of a UTF-8 file; a missing or unreadable one is a DataError."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        reason = "not UTF-8 text" if isinstance(err, UnicodeDecodeError) else \
            (err.strerror or str(err)).lower()
        raise DataError(reason, path) from err
    return parse_story(lines, path)


def read(bundle: Bundle, story: list[str], question: str) -> MemoryMap:
    """Answer ``question`` about ``story`` with a QA checkpoint and keep its attention.

    Raises:
        CheckpointError: ``bundle`` is not a QA model (from :class:`~textrnn.chat.Answerer`).
        TextrnnError: an empty story or question.
    """
    from textrnn.chat import Answerer

    if not story:
        raise TextrnnError("no story to look at: give at least one sentence")
    if not sentence_words(question):
        raise TextrnnError(f"the question {question!r} has no words")
    answerer = Answerer(bundle)
    answer = answerer.answer(story, question)
    kept = list(story[answer.dropped:])
    weights, labels = answer.hops, None
    if bundle.config.arch == "entnet":
        gates, p = slot_gates(answerer, kept, question)
        top = sorted(range(len(p)), key=lambda j: -p[j])[:SLOTS_SHOWN]
        weights = [*weights, *([row[j] for row in gates] for j in top)]
        labels = ["slots", *(f"slot {j + 1}\np {p[j]:.2f}" for j in top)]
    return MemoryMap(question=question, answer=answer.answer, confidence=answer.confidence,
                     sure=answer.sure, arch=bundle.config.arch, sentences=kept,
                     weights=weights, dropped=answer.dropped,
                     evidence=[e.index for e in answer.evidence], labels=labels)


def slot_gates(answerer, kept: list[str], question: str
               ) -> tuple[list[list[float]], list[float]]:
    """An EntNet's gates over a story, read as the chat reads it (first slot reading).

    Returns:
        gates (S, M) as nested lists, g_tj of sentence t for slot j; p (M,) the
        question's softmax over the slots.
    """
    import torch

    from textrnn.data.babi import sentence_words as words

    batch, _ = answerer.encode([[words(s) for s in kept]], [words(question)])
    with torch.no_grad():
        gates, p, _, _ = answerer.model.net.read(batch)  # (1, S, M), (1, M)
    return gates[0].float().tolist(), p[0].float().tolist()


def to_json(found: MemoryMap) -> dict:
    """The numbers: per sentence its story index, text and weight per column."""
    return {
        "question": found.question, "answer": found.answer, "confidence": found.confidence,
        "sure": found.sure, "arch": found.arch, "meaning": MEANING.get(found.arch, ""),
        "columns": found.columns, "dropped": found.dropped, "evidence": found.evidence,
        "hops": found.weights,
        "sentences": [{"index": found.dropped + i, "sentence": s,
                       "weights": [row[i] for row in found.weights]}
                      for i, s in enumerate(found.sentences)],
    }


def label(index: int, sentence: str, chars: int = LABEL_CHARS) -> str:
    """A y tick: the 1-based story number and the sentence, cut to ``chars``.

    >>> label(0, "Mary moved to the bathroom.")
    '1. Mary moved to the bathroom.'
    >>> label(11, "Sandra journeyed back to the far end of the long hallway", chars=30)
    '12. Sandra journeyed back to…'
    """
    return f"{index + 1}. " + textwrap.shorten(sentence, chars - len(f"{index + 1}. ") + 1,
                                               placeholder="…")


def plot(found: MemoryMap, path: str | PathLike[str]) -> None:
    """A heat map: the sentences read along y (the chat's evidence in bold), the hops or
    layers along x, one colour scale from 0 to 1; written atomically to ``path``."""
    import numpy as np

    from textrnn.figures import figure, save_png

    values = np.array(found.weights, dtype=float).T.reshape(len(found.sentences), -1)  # (S, K)
    S, K = values.shape
    fig = figure(4.6 + 0.9 * K, 1.9 + 0.3 * max(S, 2))
    ax = fig.subplots()
    image = ax.imshow(values, aspect="auto", cmap="Blues", vmin=0.0, vmax=1.0,
                      interpolation="nearest")
    bar = "attention, or a slot's gate g" if found.arch == "entnet" else "attention weight"
    fig.colorbar(image, ax=ax, fraction=0.08, pad=0.03, label=bar)
    if S * K <= ANNOTATE_MAX:
        for (i, k), w in np.ndenumerate(values):
            ax.text(k, i, f"{w:.2f}", ha="center", va="center", fontsize="small",
                    color="white" if w > 0.55 else "black")
    ax.set_xticks(range(K), found.columns)
    ax.xaxis.tick_top()
    ax.set_yticks(range(S), [label(found.dropped + i, s) for i, s in enumerate(found.sentences)],
                  fontsize="small")
    for i, tick in enumerate(ax.get_yticklabels()):
        if found.dropped + i in found.evidence:
            tick.set_fontweight("bold")
    doubt = "" if found.sure else "not sure, "
    title = textwrap.shorten(f"“{found.question}” → {found.answer}", 60, placeholder="…")
    fig.suptitle(f"{title}  ({doubt}confidence {found.confidence:.2f})", fontsize="medium")
    note = f"{found.arch}: {MEANING.get(found.arch, '')}"
    if found.dropped:
        note += f"; the first {found.dropped} sentences are beyond the memory, not read"
    ax.set_xlabel("\n".join(textwrap.wrap(note, 30 + 9 * K)), fontsize="small")
    save_png(fig, path)
