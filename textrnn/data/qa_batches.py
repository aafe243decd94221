"""Turn bAbI :class:`~textrnn.data.babi.QAExample` records into padded tensor batches.

Everything is encoded once, up front, into a few tables; a batch is then a
few tensor gathers, with no Python loop over words::

    sentences (N_sent, W)   every distinct statement or question once (row 0 = empty)
    story_rows (N, S)       per example, the row of each kept sentence, oldest first,
                            0 after the story's end
    question_row (N,)       per example, the row of its question

    batch story = sentences[story_rows[idx]]          (B, S, W), trimmed to the batch

bAbI stories share most sentences (every question of a story repeats its
prefix), so the table stays small: 3.6k rows for 19 tasks x 10k questions.

Only the most recent ``memory_size`` sentences of a story are kept, as the
MemN2N paper does with 50 (Sukhbaatar et al. 2015, section 4.2); supporting-fact
indices are shifted to the kept sentences, and a fact that falls out becomes -1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain

import torch

from textrnn.collate import IGNORE_INDEX, epoch_generator
from textrnn.data.babi import QAExample
from textrnn.vocab import Vocab


def build_vocabs(train_examples: Sequence[QAExample]) -> tuple[Vocab, Vocab]:
    """Build the word and answer vocabularies from the TRAINING examples only.

    Each whole answer string is one answer class, as in the bAbI and MemN2N
    papers: task 8's lists (``"apple,football"``) and task 19's paths
    (``"n,w"``) are single classes, not word sequences.

    Args:
        train_examples: the training split's examples.

    Returns:
        ``(word_vocab, answer_vocab)``: words of stories and questions with the
        default specials (``<pad>`` = 0, ``<unk>``, ...); answers with no specials.

    >>> from textrnn.data.babi import parse_babi
    >>> examples = parse_babi(["1 Mary went to the garden.", "2 Where is Mary?\\tgarden\\t1"])
    >>> words, answers = build_vocabs(examples)
    >>> words.itos[4:], answers.itos
    (['mary', 'garden', 'is', 'the', 'to', 'went', 'where'], ['garden'])
    """
    sentences = [s for ex in train_examples for s in ex.story]
    word_vocab = Vocab.from_tokens([*sentences, *(ex.question for ex in train_examples)])
    answer_vocab = Vocab.from_tokens([[ex.answer] for ex in train_examples], specials=())
    return word_vocab, answer_vocab


def _pad(rows: list[list[int]], pad_id: int = 0,
         min_len: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists into ``(ids (N, T), lengths (N,))`` from one flat tensor.

    :func:`~textrnn.collate.pad_sequences` makes a tensor per row, which
    takes seconds for the 200k questions of 20 tasks x 10k.
    """
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)  # (N,)
    T = max(int(lengths.max()) if len(rows) else 0, min_len)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)  # (N, T)
    # A boolean-mask assignment fills row by row, the order chain() flattens in.
    ids[torch.arange(T) < lengths.unsqueeze(1)] = torch.tensor(list(chain.from_iterable(rows)),
                                                               dtype=torch.long)
    return ids, lengths


def _encode(examples: Sequence[QAExample], word_vocab: Vocab, answer_vocab: Vocab,
            memory_size: int) -> dict[str, torch.Tensor]:
    """Encode all examples into the tables described in the module docstring."""
    if memory_size < 1:
        raise ValueError(f"memory_size must be >= 1, got {memory_size}")
    stoi, unk = word_vocab.stoi, word_vocab.unk_id
    row_of_object: dict[int, int] = {}  # id(sentence list) -> row; shared lists hit here
    row_of_words: dict[tuple[str, ...], int] = {(): 0}  # equal sentences from other stories
    table: list[list[int]] = [[]]  # row 0: the empty sentence, used for padding

    def row_of(sentence: list[str]) -> int:
        row = row_of_object.get(id(sentence))
        if row is None:
            key = tuple(sentence)
            row = row_of_words.get(key)
            if row is None:
                row = row_of_words[key] = len(table)
                table.append([stoi.get(w, unk) for w in sentence])
            row_of_object[id(sentence)] = row
        return row

    story_rows, question_rows, supports = [], [], []
    previous: list[list[str]] = []
    rows: list[int] = []  # rows of every sentence of `previous`
    for ex in examples:
        # The questions of one story see growing prefixes of it: encode only what is new.
        shared = len(rows) if ex.story[: len(rows)] == previous else 0
        rows = rows[:shared] + [row_of(s) for s in ex.story[shared:]]
        previous = ex.story
        offset = max(len(rows) - memory_size, 0)  # sentences dropped from the front
        story_rows.append(rows[offset:])
        question_rows.append(row_of(ex.question))
        supports.append([i - offset if i >= offset else -1 for i in ex.support])
    # Questions are rows of the sentence table too: they repeat as much as statements do.
    sentences, sentence_lengths = _pad(table)  # (N_sent, W), (N_sent,)
    rows_t, story_lengths = _pad(story_rows, min_len=1)  # (N, S >= 1), (N,)
    support, _ = _pad(supports, pad_id=-1)  # (N, K)
    answers = [answer_vocab.stoi.get(ex.answer, IGNORE_INDEX) for ex in examples]
    return {
        "sentences": sentences, "sentence_lengths": sentence_lengths, "story_rows": rows_t,
        "story_lengths": story_lengths, "support": support,
        "question_row": torch.tensor(question_rows, dtype=torch.long),  # (N,)
        "answer": torch.tensor(answers, dtype=torch.long),  # (N,)
        "task": torch.tensor([ex.task or 0 for ex in examples], dtype=torch.long),  # (N,)
    }


def _gather(enc: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """The batch of examples ``idx`` (B,), padded only as far as the batch needs."""
    # index_select, not tensor[idx]: advanced indexing can take 100x longer on a busy CPU.
    def take(name: str, index: torch.Tensor = idx) -> torch.Tensor:
        table = enc[name]
        return table.index_select(0, index.flatten()).view(*index.shape, *table.shape[1:])

    story_lengths = take("story_lengths")  # (B,)
    question_row = take("question_row")  # (B,)
    question_lengths = take("sentence_lengths", question_row)  # (B,)
    S = max(int(story_lengths.max()), 1) if idx.numel() else 1
    rows = take("story_rows")[:, :S]  # (B, S)
    sentence_lengths = take("sentence_lengths", rows)  # (B, S), 0 for padding sentences
    W = max(int(sentence_lengths.max()), 1) if idx.numel() else 1
    Wq = max(int(question_lengths.max()), 1) if idx.numel() else 1
    return {
        "story": take("sentences", rows)[:, :, :W],  # (B, S, W)
        "story_lengths": story_lengths,  # (B,) sentences per story
        "sentence_lengths": sentence_lengths,  # (B, S) words per sentence
        "question": take("sentences", question_row)[:, :Wq],  # (B, Wq)
        "question_lengths": question_lengths,  # (B,)
        "answer": take("answer"),  # (B,) answer-vocab id or -100
        "task": take("task"),  # (B,) bAbI task number, 0 if unknown
        "support": take("support"),  # (B, K) kept-sentence index, -1 = none/dropped
    }


class QABatches:
    """A re-iterable of padded QA batches over a fixed list of examples.

    Args:
        examples: the examples, in any order.
        word_vocab: maps story and question words to ids (unknown -> ``<unk>``).
        answer_vocab: maps whole answer strings to class ids; an unknown answer
            (e.g. only in a test split) becomes -100.
        batch_size: examples per batch; only the last batch can be smaller.
        shuffle: reshuffle every epoch (training); else file order (evaluation).
        seed: with the epoch from :meth:`set_epoch`, fixes the shuffled order.
        memory_size: keep at most this many of the most recent sentences per story.

    Each batch is a dict of tensors: ``story`` (B, S, W) long, ``story_lengths``
    (B,), ``sentence_lengths`` (B, S), ``question`` (B, Wq) long,
    ``question_lengths`` (B,), ``answer`` (B,) long, ``task`` (B,) long and
    ``support`` (B, K) long. Sentences are in story order, oldest first; all
    padding is 0 and is described by the lengths.
    """

    def __init__(self, examples: Sequence[QAExample], word_vocab: Vocab, answer_vocab: Vocab,
                 batch_size: int = 32, shuffle: bool = False, seed: int = 0,
                 memory_size: int = 50) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.memory_size = memory_size
        self.epoch = 0
        self.encoded = _encode(examples, word_vocab, answer_vocab, memory_size)
        self.num_examples = len(examples)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffled order the next iteration follows."""
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.num_examples // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self.shuffle:
            # One generator per (seed, epoch): the order never depends on global RNG state.
            g = epoch_generator(self.seed, self.epoch)
            order = torch.randperm(self.num_examples, generator=g)  # (N,)
        else:
            order = torch.arange(self.num_examples)  # (N,)
        for idx in order.split(self.batch_size):
            yield _gather(self.encoded, idx)


def encode_stories(stories: Sequence[list[list[str]]], questions: Sequence[list[str]],
                   word_vocab: Vocab, memory_size: int = 50) -> dict[str, torch.Tensor]:
    """Encode user stories and one question about each as one batch (for the chat).

    Args:
        stories: ``B`` stories, each a list of sentences as word tokens, oldest first.
        questions: ``B`` questions as word tokens; ``questions[b]`` is about ``stories[b]``.
        word_vocab: the model's word vocabulary.
        memory_size: keep only the most recent this many sentences of each story.

    Returns:
        A batch like :class:`QABatches` yields, with ``answer`` -100 and ``task`` 0.

    Raises:
        ValueError: if ``stories`` and ``questions`` differ in length.
    """
    if len(stories) != len(questions):
        raise ValueError(f"{len(stories)} stories but {len(questions)} questions")
    examples = [QAExample([list(s) for s in story], list(q), "", [])
                for story, q in zip(stories, questions, strict=True)]
    enc = _encode(examples, word_vocab, Vocab([], specials=()), memory_size)
    return _gather(enc, torch.arange(len(examples)))


def encode_story(sentences: list[list[str]], question: list[str], word_vocab: Vocab,
                 memory_size: int = 50) -> dict[str, torch.Tensor]:
    """Encode one user story and question as a batch of size 1 (see :func:`encode_stories`).

    >>> vocab = Vocab.from_tokens([["mary", "went", "home"]])
    >>> batch = encode_story([["mary", "went", "home"], ["john", "left"]], ["where", "mary"],
    ...                      vocab, memory_size=1)
    >>> batch["story"], batch["question"], batch["story_lengths"]
    (tensor([[[1, 1]]]), tensor([[1, 5]]), tensor([1]))
    """
    return encode_stories([sentences], [question], word_vocab, memory_size)
