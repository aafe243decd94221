"""Chatting with a question-answering model: tell it a story, ask about it.

Two plain objects hold all the logic, so the terminal chat (``textrnn chat``)
and the web service (``textrnn serve``) are thin shells over them:

- :class:`Answerer` wraps a loaded QA checkpoint: ``answer(story, question)``
  returns the answer, the model's confidence, the story sentences it
  attended to (its evidence) and its attention per hop (``hops``; drawn by
  ``textrnn inspect memory``); ``answer_batch`` answers many in one forward pass.
- :class:`ChatSession` keeps one conversation's story: a statement is added to
  it, a line ending in ``?`` is answered, ``/reset``, ``/story`` and ``/help``
  are commands. Bad input (empty, too long, unknown words) gets a polite reply,
  never an exception.

>>> # bot = Answerer.from_checkpoint("runs/qa/best.pt")
>>> # bot.answer(["Mary moved to the bathroom."], "Where is Mary?").answer
>>> # 'bathroom'
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from textrnn import checkpoint
from textrnn.data.babi import sentence_words
from textrnn.data.qa_batches import encode_stories
from textrnn.data.slot_reading import slotted
from textrnn.device import to_device
from textrnn.errors import CheckpointError
from textrnn.vocab import Vocab

MAX_MESSAGE_CHARS = 1000  # longer chat messages are refused, not truncated
EVIDENCE_MIN_WEIGHT = 0.1  # a sentence is evidence if it gets at least this much attention,
EVIDENCE_RELATIVE = 0.5  # ...and at least half of what the most attended sentence gets,
EVIDENCE_MAX = 3  # ...and is among the most attended few

HELP = """\
Tell me a story, one or more sentences at a time, then ask about it:
  Mary moved to the bathroom.
  John went to the hallway.
  Where is Mary?
Commands: /story shows the story so far, /reset forgets it, /help shows this."""

# A sentence ends at . ! or ? followed by space or the end ("Mary left. Where is she?").
_SENTENCE_RE = re.compile(r"[^.!?]+[.!?]*")
# A sentence that starts with one of these is a question, with or without its "?":
# people type "where is mary" as often as "Where is Mary?".
QUESTION_WORDS = frozenset(
    "where who whom whose what which when why how is are was were do does did can could "
    "will would has have had".split())


# The reply to a question about no story, in the chat and the web API alike.
NO_STORY = ("I haven't been told a story yet. Tell me what happened first, "
            "e.g. 'Mary moved to the bathroom.'")


@dataclass
class Evidence:
    """A story sentence the model attended to."""

    index: int  # position in the story given to the model, 0-based
    sentence: str
    weight: float  # attention weight in [0, 1]


@dataclass
class Answer:
    """The model's answer to one question about one story."""

    answer: str
    confidence: float  # softmax probability of the answer, in [0, 1]
    evidence: list[Evidence] = field(default_factory=list)
    unknown_words: list[str] = field(default_factory=list)  # words the model never saw
    dropped: int = 0  # oldest story sentences beyond the model's memory, not read
    sure: bool = True  # confidence at or above the threshold chosen on validation
    # hops[k][i]: the weight hop k (a MemN2N hop, a QRN layer; one row for EntNet and the
    # LSTM reader) gave sentence i of those read, i.e. story sentence ``dropped + i``
    hops: list[list[float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "answer": self.answer,
            "confidence": self.confidence,
            "evidence": [e.__dict__ for e in self.evidence],
            "unknown_words": self.unknown_words,
            "dropped": self.dropped,
            "sure": self.sure,
            "hops": self.hops,
        }


class Answerer:
    """Answers questions about stories with a loaded QA checkpoint.

    Args:
        bundle: a :class:`textrnn.checkpoint.Bundle` whose task is ``"qa"``.
    """

    def __init__(self, bundle: checkpoint.Bundle) -> None:
        if bundle.task != "qa":
            raise CheckpointError(f"a chatbot needs a 'qa' checkpoint, got task {bundle.task!r}")
        self.bundle = bundle
        self.model = bundle.model.eval()
        self.words = bundle.vocabs["words"]
        self.answers = bundle.vocabs["answers"]
        self.memory_size = bundle.config.memory_size
        self.entity_slots = bundle.config.entity_slots  # unknown words are read as slots
        self.slotted = slotted(bundle.vocabs)  # ... and these known ones, if any
        # Below this confidence an answer was wrong more often than right on validation
        # (metrics saved with the checkpoint); 0 for checkpoints from before it existed.
        self.unsure_below = float(bundle.metrics.get("val_unsure_below", 0.0))
        self._lock = threading.Lock()  # one forward pass at a time per model

    @classmethod
    def from_checkpoint(cls, path: str, device: str = "cpu") -> Answerer:
        """Load ``path`` (see :func:`textrnn.checkpoint.load`; another task's file is
        refused in one line) and wrap it."""
        return cls(checkpoint.load(path, map_location=device, task="qa"))

    def info(self) -> dict:
        """Task, vocabulary sizes, memory size and the checkpoint's metrics."""
        return {
            "task": self.bundle.task,
            "arch": self.bundle.config.arch,
            "vocab_size": len(self.words),
            "num_answers": len(self.answers),
            "memory_size": self.memory_size,
            "step": self.bundle.step,
            "metrics": self.bundle.metrics,
        }

    def unknown(self, text: str) -> list[str]:
        """Words of ``text`` not in the model's vocabulary, in order, without repeats."""
        return self._unknown([_words(text)])

    def _unknown(self, sentences: Sequence[Sequence[str]]) -> list[str]:
        return list(dict.fromkeys(w for ws in sentences for w in ws if w not in self.words))

    def encode(self, story_words: list[list[list[str]]], question_words: list[list[str]]
               ) -> tuple[dict, list[dict[int, str]]]:
        """Stories (the kept sentences, as words) and their questions as one batch on the
        model's device, read as the model reads them (entity slots, slot readings), and
        per story what its slot and list answers stand for."""
        batch, meanings = encode_stories(story_words, question_words, self.words,
                                         self.memory_size, self.entity_slots, self.answers,
                                         self.bundle.config.slot_draws,
                                         self.bundle.config.list_slots,
                                         self.slotted)
        return to_device(batch, self.bundle.device), meanings

    def answer(self, story: Sequence[str], question: str) -> Answer:
        """Answer ``question`` about ``story`` (a list of sentences)."""
        return self.answer_batch([(story, question)])[0]

    def answer_batch(self, items: Sequence[tuple[Sequence[str], str]]) -> list[Answer]:
        """Answer several (story, question) pairs in one forward pass."""
        if not items:
            return []
        stories = [list(story)[-self.memory_size :] for story, _ in items]
        story_words = [[_words(s) for s in story] for story in stories]
        question_words = [_words(q) for _, q in items]
        batch, meanings = self.encode(story_words, question_words)
        with self._lock, torch.no_grad():
            predictions = self.model.predict(batch)
        results = []
        for (story, _), kept, words, q_words, pred, meaning in zip(
            items, stories, story_words, question_words, predictions, meanings, strict=True
        ):
            weights = _sentence_weights(pred)
            ranked = sorted(range(len(weights)), key=lambda i: -weights[i])[:EVIDENCE_MAX]
            floor = max(EVIDENCE_MIN_WEIGHT, EVIDENCE_RELATIVE * max(weights, default=0.0))
            dropped = len(story) - len(kept)
            evidence = [
                Evidence(index=i + dropped, sentence=kept[i], weight=weights[i])
                for i in sorted(ranked)
                if weights[i] >= floor
            ]
            results.append(Answer(
                # a slot answer is the word it stood for in this story
                answer=_answer_text(pred["answer_id"], meaning, self.answers),
                confidence=float(pred["confidence"]),
                evidence=evidence,
                unknown_words=self._unknown([*words, q_words]),
                dropped=dropped,
                sure=float(pred["confidence"]) >= self.unsure_below,
                hops=pred.get("hops") or [pred["attention"]],
            ))
        return results


def _answer_text(answer_id: int, meaning: dict[int, str], answers: Vocab) -> str:
    """A slot answer or list class is what it stood for in this story; any other answer
    is its own string (list classes have ids past the answer vocabulary)."""
    return meaning[answer_id] if answer_id in meaning else answers.itos[answer_id]


@functools.lru_cache(maxsize=16384)
def _words(sentence: str) -> list[str]:
    """:func:`sentence_words`, cached: a chat session's story is re-read at every question.

    Callers must not modify the returned list (it is shared).
    """
    return sentence_words(sentence)


def _sentence_weights(pred: dict) -> list[float]:
    """Per-sentence attention; with several hops, each sentence's largest weight.

    A two-fact question attends to one fact per hop, so the maximum over hops
    shows both.
    """
    hops = pred.get("hops") or [pred["attention"]]
    return [max(ws) for ws in zip(*hops, strict=True)] if hops[0] else []


def split_sentences(text: str) -> list[str]:
    """Split a chat line into sentences, keeping their end marks.

    >>> split_sentences("Mary left. John got the milk! Where is Mary?")
    ['Mary left.', 'John got the milk!', 'Where is Mary?']
    >>> split_sentences("  where is mary  ")
    ['where is mary']
    """
    return [s.strip() for s in _SENTENCE_RE.findall(text) if s.strip(" .!?")]


def is_question(sentence: str) -> bool:
    """A sentence ending in ``?``, or starting with a question word (any case).

    >>> is_question("Where is Mary?"), is_question("where is mary"), is_question("IS JOHN HERE")
    (True, True, True)
    >>> is_question("Mary is in the kitchen."), is_question("How many objects is John carrying")
    (False, True)
    """
    words = sentence.split(maxsplit=1)
    return sentence.rstrip().endswith("?") or bool(words) and words[0].lower() in QUESTION_WORDS


@dataclass
class Reply:
    """What the bot says back to one message."""

    kind: str  # "added" (statements stored), "answer", "info" or "error"
    text: str  # the reply as a person reads it
    answer: Answer | None = None
    added: list[str] = field(default_factory=list)  # statements stored by this message
    forgotten: list[str] = field(default_factory=list)  # oldest statements dropped


@dataclass
class Question:
    """A message's question, still to be answered (:meth:`ChatSession.take`)."""

    story: list[str]  # the session's story once the message's statements are in
    question: str  # the message's last question
    added: list[str]  # statements stored by this message
    forgotten: list[str]  # oldest statements dropped
    notes: list[str]  # what the reply says after the answer

    def reply(self, answer: Answer) -> Reply:
        """The reply, given the answer."""
        return Reply("answer", " ".join([format_answer(answer), *self.notes]), answer=answer,
                     added=self.added, forgotten=self.forgotten)


class Asks(Protocol):
    """What a :class:`ChatSession` needs of the model it asks: an :class:`Answerer`, or
    :class:`textrnn.sessions.BatchedAnswerer`, which answers through a batcher."""

    memory_size: int  # story sentences the model reads
    entity_slots: int  # 0: unknown words are <unk>, worth a warning

    def unknown(self, text: str) -> list[str]:
        """Words of ``text`` the model's vocabulary lacks."""
        ...

    def answer(self, story: Sequence[str], question: str) -> Answer:
        """The answer to one question about ``story``."""
        ...


class ChatSession:
    """One conversation: a growing story and questions about it.

    Statements are stored (at most the model's memory size; the oldest are
    dropped and the reply says so); a question (:func:`is_question`: a ``?`` at the
    end, or a question word at the start) is answered from the story so far. Safe
    to call from several threads: a lock guards the story.

    Args:
        answerer: the model to ask.
        max_message_chars: longer messages are refused politely.
    """

    def __init__(self, answerer: Asks, max_message_chars: int = MAX_MESSAGE_CHARS) -> None:
        self.answerer = answerer
        self.max_message_chars = max_message_chars
        self.story: list[str] = []
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget the story."""
        with self._lock:
            self.story.clear()

    def add(self, sentences: Sequence[str]) -> list[str]:
        """Append statements; returns the oldest ones dropped to stay within memory."""
        with self._lock:
            self.story.extend(sentences)
            overflow = len(self.story) - self.answerer.memory_size
            forgotten = self.story[:overflow] if overflow > 0 else []
            del self.story[: max(0, overflow)]
            return forgotten

    def send(self, text: str) -> Reply:
        """Handle one message and return the reply; never raises on bad input."""
        step = self.take(text)
        if isinstance(step, Reply):
            return step
        return step.reply(self.answerer.answer(step.story, step.question))

    def take(self, text: str) -> Reply | Question:
        """:meth:`send` up to the model: the message's statements stored, then the reply,
        or the :class:`Question` left to answer.

        For a caller that answers questions elsewhere: the server stores the statements
        where its sessions live and gives the question to its batcher itself.
        """
        text = (text or "").strip()
        if not text:
            return Reply("info", "Tell me something, or ask a question (/help for help).")
        if len(text) > self.max_message_chars:
            return Reply("error", f"That message is too long ({len(text)} characters; "
                                  f"the limit is {self.max_message_chars}).")
        if text.startswith("/"):
            return self._command(text)
        sentences = split_sentences(text)
        statements = [s for s in sentences if not is_question(s)]
        questions = [s for s in sentences if is_question(s)]
        if not statements and not questions:
            return Reply("info", "I could not find any words in that (/help for help).")
        forgotten = self.add(statements) if statements else []
        notes = []
        # A model with entity slots reads unknown words as names: nothing to warn about.
        unknown = [] if self.answerer.entity_slots else self.answerer.unknown(" ".join(sentences))
        if unknown:
            notes.append(f"(I don't know the word{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(repr(w) for w in unknown)}; I'll do my best.)")
        if forgotten:
            notes.append(f"(I can keep {self.answerer.memory_size} sentences in mind, so I "
                         f"forgot the oldest {len(forgotten)}: {forgotten[0]!r}"
                         f"{' ...' if len(forgotten) > 1 else ''})")
        if not questions:
            n = len(statements)
            text = f"Noted ({n} sentence{'s' if n > 1 else ''}; {len(self.story)} in the story)."
            return Reply("added", " ".join([text, *notes]), added=statements,
                         forgotten=forgotten)
        with self._lock:
            story = list(self.story)
        if not story:
            return Reply("info", NO_STORY)
        return Question(story, questions[-1], statements, forgotten, notes)

    def _command(self, text: str) -> Reply:
        command = text.split()[0].lower()
        if command == "/reset":
            self.reset()
            return Reply("info", "Story forgotten. Tell me a new one.")
        if command == "/story":
            with self._lock:
                lines = [f"{i + 1}. {s}" for i, s in enumerate(self.story)]
            return Reply("info", "\n".join(lines) if lines else "The story is empty.")
        if command == "/help":
            return Reply("info", HELP)
        return Reply("error", f"Unknown command {command!r}. Commands: /story, /reset, /help.")


def format_answer(answer: Answer) -> str:
    """``bathroom  (confidence 0.99; from: "Mary moved to the bathroom.")``, or with
    ``not sure, my best guess;`` first when the confidence is under the threshold."""
    because = "; ".join(f'"{e.sentence}"' for e in answer.evidence)
    evidence = f"; from: {because}" if because else ""
    doubt = "" if answer.sure else "not sure, my best guess; "
    return f"{answer.answer}  ({doubt}confidence {answer.confidence:.2f}{evidence})"
