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

With entity slots (:mod:`textrnn.data.entities`), each example also keeps its
entity words in order of first mention (``entities`` (N, K), -1 after the last),
a word the vocabulary lacks is stored under an id of its own above the
vocabulary, and each batch reads them as ``@entK`` tokens (:func:`read_slots`).
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Sequence
from itertools import chain

import torch

from textrnn.collate import IGNORE_INDEX, bucket_batches, epoch_generator
from textrnn.data.babi import QAExample
from textrnn.data.entities import answerable_from_story, first_mentions, slot_names
from textrnn.data.focus import Focus
from textrnn.data.slot_lists import list_lookup, list_meanings, list_ranks, list_table
from textrnn.data.slot_reading import Lists, UnknownIds, read_slots, shuffled_order, slot_views
from textrnn.vocab import Vocab


def build_vocabs(train_examples: Sequence[QAExample],
                 entity_slots: int = 0) -> tuple[Vocab, Vocab]:
    """Build the word and answer vocabularies from the TRAINING examples only.

    Each whole answer string is one answer class, as in the bAbI and MemN2N
    papers: task 8's lists (``"apple,football"``) and task 19's paths
    (``"n,w"``) are single classes, not word sequences.

    Args:
        train_examples: the training split's examples.
        entity_slots: K; both vocabularies end with ``@ent1 .. @entK``.

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
    if entity_slots:
        slots = slot_names(entity_slots)
        word_vocab = Vocab(word_vocab.itos + slots, specials=word_vocab.specials)
        answer_vocab = Vocab(answer_vocab.itos + slots, specials=())
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


class _Every:
    """Holds every batch number: ``QABatches.shard(EVERY)`` is the whole epoch."""

    def __contains__(self, i: object) -> bool:
        return True


EVERY = _Every()


def _encode(examples: Sequence[QAExample], word_vocab: Vocab, answer_vocab: Vocab,
            memory_size: int, entity_slots: int = 0, entities: frozenset[str] = frozenset(),
            names: frozenset[str] = frozenset(), list_slots: int = 0,
            slotted: frozenset[str] | None = None) -> dict[str, torch.Tensor]:
    """Encode all examples into the tables described in the module docstring.

    With ``entity_slots`` K > 0, an unknown word gets an id of its own from
    ``len(word_vocab)`` up (``read_slots`` turns it into a slot or ``<unk>``), and
    every example lists its first K entity words: those in ``entities``, and every
    unknown one, with which of them training may hide (``hideable``): all, if the
    answer is in the story; else only the ``names``; with ``list_slots`` L, a list
    answer's items as entity ranks (``answer_list``, :mod:`textrnn.data.slot_lists`).
    With ``slotted`` (``slot_reading="all"``), the words of ``slotted`` are read as
    unknown ones: the entity words are the unknown words, every one a slot.
    """
    if memory_size < 1:
        raise ValueError(f"memory_size must be >= 1, got {memory_size}")
    stoi, unk = dict(word_vocab.stoi), word_vocab.unk_id
    if slotted is not None:
        # A slotted word is read as a word never seen: a slot, or <unk> beyond K entities,
        # so a story of known names is the same story as one of new names, even past K.
        for word in slotted:
            stoi.pop(word, None)
    if entity_slots:
        unknown_ids = UnknownIds(stoi, len(word_vocab))  # stoi grows by the unknown words it meets
        stoi_get = unknown_ids.get
    else:
        def stoi_get(w: str, default: int) -> int:
            return stoi.get(w, default)
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
                table.append([stoi_get(w, unk) for w in sentence])
            row_of_object[id(sentence)] = row
        return row

    story_rows, question_rows, supports, entity_rows, answer_ranks = [], [], [], [], []
    answer_lists: list[list[int]] = []
    entity_words: list[list[str]] = []
    hideable: list[list[bool]] = []
    previous: list[list[str]] = []
    known = len(word_vocab)

    if slotted is not None:
        entities = frozenset()  # the slotted words are unknown ones now

    def is_entity(word: str) -> bool:
        return word in entities or stoi[word] >= known  # stoi has every word by now
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
        if entity_slots:
            kept = [*ex.story[offset:], ex.question]
            names_ = first_mentions(kept, is_entity)[:entity_slots]
            entity_rows.append([stoi[w] for w in names_])
            entity_words.append(names_)
            answer = ex.answer.lower()
            answer_ranks.append(names_.index(answer) if answer in names_ else -1)
            answer_lists.append(list_ranks(answer, names_, list_slots) if list_slots else [])
            from_story = answerable_from_story(ex)
            hideable.append([from_story or w in names for w in names_])
    # Questions are rows of the sentence table too: they repeat as much as statements do.
    sentences, sentence_lengths = _pad(table)  # (N_sent, W), (N_sent,)
    rows_t, story_lengths = _pad(story_rows, min_len=1)  # (N, S >= 1), (N,)
    support, _ = _pad(supports, pad_id=-1)  # (N, K)
    answers = [answer_vocab.stoi.get(ex.answer, IGNORE_INDEX) for ex in examples]
    slots = {}
    if entity_slots:
        slots = {"entities": _pad(entity_rows, pad_id=-1, min_len=entity_slots)[0],  # (N, K)
                 "answer_rank": torch.tensor(answer_ranks, dtype=torch.long),  # (N,)
                 "hideable": _pad([[int(h) for h in row] for row in hideable],
                                  min_len=entity_slots)[0].bool(),  # (N, K)
                 "answer_list": _pad(answer_lists, pad_id=-1,
                                     min_len=max(list_slots, 1))[0],  # (N, L)
                 "entity_words": entity_words}  # the words of "entities", for the chat
    return {
        **slots,
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
        entity_slots: K > 0 reads unknown words as slots ``@ent1 .. @entK`` (both
            vocabularies must end with them; see :mod:`textrnn.data.entities`).
        entities: the entity words of the training set.
        names: those of them that name one-off people and things (hidden in training
            even where the answer comes from what the data teaches, not the story).
        slot_draws: without ``shuffle``, average the answer over this many numberings of
            the slots (:func:`slot_views`).
        bucket: with ``shuffle``, batch stories of similar length together, sorting
            chunks of this many batches (:func:`~textrnn.collate.bucket_batches`); a
            batch is padded to its longest story, so mixed kinds (2 to 50 sentences)
            waste ~3x the work in random batches. 0 = plain shuffled batches.
        entity_dropout: with ``shuffle`` (training), the share of examples that read
            known entity words as slots, each with a rate drawn from U(0, 1) per
            example; slot numbers are drawn at random.
        slotted: with ``entity_slots``, read every story with these known words as slots,
            in training and answering alike (``slot_reading="all"``,
            :func:`~textrnn.data.entities.slotted_words`); ``entities``, ``names`` and
            ``entity_dropout`` are then unused. None: only unknown words are slots, and
            training hides known ones at random.
        list_slots: with ``entity_slots``, L > 1 reads a list answer of hidden words as
            the list class of their slots (:mod:`textrnn.data.slot_lists`).
        focus: with ``shuffle``, φ of :mod:`textrnn.data.focus`: after each evaluation
            (:meth:`on_evaluate`) this share of the next epoch goes to the tasks by their
            validation error. 0 = every epoch is each question once.

    Each batch is a dict of tensors: ``story`` (B, S, W) long, ``story_lengths``
    (B,), ``sentence_lengths`` (B, S), ``question`` (B, Wq) long,
    ``question_lengths`` (B,), ``answer`` (B,) long, ``task`` (B,) long and
    ``support`` (B, K) long. Sentences are in story order, oldest first; all
    padding is 0 and is described by the lengths.
    """

    def __init__(self, examples: Sequence[QAExample], word_vocab: Vocab, answer_vocab: Vocab,
                 batch_size: int = 32, shuffle: bool = False, seed: int = 0,
                 memory_size: int = 50, entity_slots: int = 0,
                 entities: frozenset[str] = frozenset(), names: frozenset[str] = frozenset(),
                 entity_dropout: float = 0.0, slot_draws: int = 1, bucket: int = 0,
                 list_slots: int = 0, focus: float = 0.0,
                 slotted: frozenset[str] | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0.0 <= entity_dropout <= 1.0:
            raise ValueError(f"entity_dropout is a probability, got {entity_dropout}")
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.memory_size = memory_size
        self.epoch = 0
        self.word_vocab, self.answer_vocab = word_vocab, answer_vocab
        self.entity_slots, self.entity_dropout = entity_slots, entity_dropout
        self.slot_draws, self.bucket = slot_draws, bucket
        self.list_slots = list_slots if entity_slots and list_slots > 1 else 0
        self.read_all = slotted is not None
        self.encoded = _encode(examples, word_vocab, answer_vocab, memory_size, entity_slots,
                               frozenset(entities), frozenset(names), self.list_slots,
                               None if slotted is None else frozenset(slotted))
        self.lookup = (list_lookup(list_table(entity_slots, list_slots), entity_slots)
                       if self.list_slots else None)
        self.num_examples = len(examples)
        self.focus = Focus(self.encoded["task"], focus) if shuffle and focus > 0 else None

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffled order the next iteration follows."""
        self.epoch = epoch
        if self.focus is not None:
            self.focus.set_epoch(epoch)

    def on_evaluate(self, metrics: dict[str, float]) -> None:
        """The trainer's validation metrics: with ``focus``, they set the next epoch's mix."""
        if self.focus is not None:
            self.focus.on_evaluate(metrics)

    def state_dict(self) -> dict:
        """The epoch mix (``focus``), for a checkpoint; empty without focus."""
        return {"focus": self.focus.state_dict()} if self.focus is not None else {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        if self.focus is not None and "focus" in state:
            self.focus.load_state_dict(state["focus"])

    def __len__(self) -> int:
        return -(-self.num_examples // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for _, batch in self.shard(EVERY):
            yield batch

    def shard(self, keep: Container[int]) -> Iterator[tuple[int, dict | None]]:
        """This epoch's batches as ``(rows, batch)``, building only the ``i``-th where
        ``i in keep``; the others come as ``(rows, None)``, their random draws still made,
        so that a kept batch is the one the whole epoch has. One rank's share of the epoch
        under DDP (:class:`~textrnn.distributed.RoundRobin`): the other ranks' batches are
        never gathered. Iterating the batches is ``shard(EVERY)``."""
        if self.shuffle:
            # One generator per (seed, epoch): the order never depends on global RNG state.
            g = epoch_generator(self.seed, self.epoch)
            drawn = self.focus.indices(g) if self.focus is not None else None  # (N,) or None
            pool = drawn if drawn is not None else torch.arange(self.num_examples)
            if self.bucket:
                lengths = self.encoded["story_lengths"][pool].tolist()
                batches = [pool[torch.tensor(b)] for b in bucket_batches(
                    lengths, self.batch_size, True, g, self.bucket)]
            else:
                batches = pool[torch.randperm(len(pool), generator=g)].split(self.batch_size)
        else:
            g, batches = None, torch.arange(self.num_examples).split(self.batch_size)
        for i, idx in enumerate(batches):
            if i in keep:
                batch = _gather(self.encoded, idx)
                yield len(idx), self._read_slots(batch, idx, g) if self.entity_slots else batch
            else:
                if self.entity_slots and g is not None:
                    self._slot_draws(len(idx), g)
                yield len(idx), None

    def _slot_draws(self, B: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        """The random draws of one training batch's slot reading, in the order
        :meth:`_read_slots` uses them: renamed (B,), rate (B, 1), drop and order (B, K)
        uniforms."""
        K = self.encoded["entities"].shape[1]
        return (torch.rand(B, generator=g), torch.rand(B, 1, generator=g),
                torch.rand(B, K, generator=g), torch.rand(B, K, generator=g))

    def _read_slots(self, batch: dict, idx: torch.Tensor, g: torch.Generator | None) -> dict:
        entities = self.encoded["entities"].index_select(0, idx)  # (B, K)
        rank = self.encoded["answer_rank"].index_select(0, idx)  # (B,)
        hide = entities >= len(self.word_vocab)  # (B, K) unknown words are always slots
        lists = None
        if self.lookup is not None:
            lists = Lists(self.encoded["answer_list"].index_select(0, idx), self.lookup,
                          len(self.answer_vocab))
        if g is not None and self.read_all:  # training: the same words, shuffled numbers
            order = shuffled_order(hide & (entities >= 0), self._slot_draws(len(idx), g)[3])
            return read_slots(batch, entities, rank, self.word_vocab, self.answer_vocab, hide,
                              order, lists)
        if g is not None:  # training: hide known ones too, under shuffled slot numbers
            # A share entity_dropout of the examples hides each entity word with its own
            # rate r ~ U(0, 1): from none to all of them, as in a story of new names.
            hideable = self.encoded["hideable"].index_select(0, idx)  # (B, K)
            u_renamed, rate, u_drop, u_order = self._slot_draws(len(idx), g)
            renamed = u_renamed < self.entity_dropout  # (B,)
            drop = u_drop < rate  # (B, K)
            hide |= drop & hideable & renamed.unsqueeze(1)
            if lists is not None:  # a list is read whole: all its items slots, or none
                items, listed = lists.answer_list.clamp(min=0), lists.answer_list >= 0
                whole = (hide.gather(1, items) & listed).any(1, keepdim=True)  # (B, 1)
                hide = hide.scatter(1, items, hide.gather(1, items) | (whole & listed))
            order = shuffled_order(hide & (entities >= 0), u_order)  # (B, K)
            return read_slots(batch, entities, rank, self.word_vocab, self.answer_vocab, hide,
                              order, lists)
        return slot_views(batch, entities, rank, self.word_vocab, self.answer_vocab, hide,
                          self.slot_draws, lists=lists)


def encode_stories(stories: Sequence[list[list[str]]], questions: Sequence[list[str]],
                   word_vocab: Vocab, memory_size: int = 50, entity_slots: int = 0,
                   answer_vocab: Vocab | None = None, slot_draws: int = 1, list_slots: int = 0,
                   slotted: frozenset[str] | None = None,
                   ) -> tuple[dict[str, torch.Tensor], list[dict[int, str]]]:
    """Encode user stories and one question about each as one batch (for the chat).

    Args:
        stories: ``B`` stories, each a list of sentences as word tokens, oldest first.
        questions: ``B`` questions as word tokens; ``questions[b]`` is about ``stories[b]``.
        word_vocab: the model's word vocabulary.
        memory_size: keep only the most recent this many sentences of each story.
        entity_slots: the model's K; its unknown words are read as slots.
        answer_vocab: the model's answers (needed with ``entity_slots``).
        slot_draws: numberings of the slots to average the answer over.
        list_slots: the model's longest list class (0: none).
        slotted: the known words the model reads as slots too (``slot_reading="all"``).

    Returns:
        A batch like :class:`QABatches` yields, with ``answer`` -100 and ``task`` 0, and
        per example the words its slot answers (and list classes) stand for (answer id
        -> answer).

    Raises:
        ValueError: if ``stories`` and ``questions`` differ in length.

    >>> vocab = Vocab.from_tokens([["mary", "went", "home"]])
    >>> batch, _ = encode_stories([[["mary", "went", "home"], ["john", "left"]]],
    ...                           [["where", "mary"]], vocab, memory_size=1)
    >>> batch["story"], batch["question"], batch["story_lengths"]
    (tensor([[[1, 1]]]), tensor([[1, 5]]), tensor([1]))
    """
    if len(stories) != len(questions):
        raise ValueError(f"{len(stories)} stories but {len(questions)} questions")
    examples = [QAExample([list(s) for s in story], list(q), "", [])
                for story, q in zip(stories, questions, strict=True)]
    answer_vocab = answer_vocab if answer_vocab is not None else Vocab([], specials=())
    enc = _encode(examples, word_vocab, answer_vocab, memory_size, entity_slots,
                  slotted=slotted)
    idx = torch.arange(len(examples))
    batch = _gather(enc, idx)
    if not entity_slots:
        return batch, [{} for _ in examples]
    entities, rank = enc["entities"], enc["answer_rank"]
    hide = entities >= len(word_vocab)  # (B, K): the words the model does not know (or slotted)
    batch = slot_views(batch, entities, rank, word_vocab, answer_vocab, hide, slot_draws)
    first = answer_vocab.stoi["@ent1"]
    # every entity word here is hidden: an unknown word, or a slotted one read as unknown
    meanings = [{first + k: word for k, word in enumerate(words)}
                for words in enc["entity_words"]]
    if entity_slots and list_slots > 1:
        for meaning in meanings:
            slot_words = [meaning.get(first + k) for k in range(entity_slots)]
            meaning.update(list_meanings(list_slots, slot_words, len(answer_vocab)))
    return batch, meanings
