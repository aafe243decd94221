"""Names, places and objects the model never saw: entity slots.

A person tells the chatbot about *their* people and places. A word the training
set never held has no embedding, so every such word would read as ``<unk>`` and
"Where is Alice?" could not tell Alice from Bob. Entity slots fix that:

- the word vocabulary gets K slot tokens ``@ent1 .. @entK`` and the answer
  vocabulary K slot answers of the same names;
- in a story, each distinct word the model does not know is read as a slot token,
  in order of first mention (story, then question), and an answer that is a
  slot is mapped back to its word: "Where is Alice?" -> ``@ent3`` -> "garden";
- so that slots learn to stand for any name, training reads each entity word of
  an example (:func:`entity_words`: names, places, objects) as a slot with
  probability ``entity_dropout``, and the slot numbers are shuffled per example,
  so no slot means a fixed word.

Two readings (``QAConfig.slot_reading``):

- ``"all"`` (the default since 2026-12-02): every known entity word but the cues that
  knowledge answers come from (:func:`slotted_words`; "hungry" people go to the
  kitchen, so "hungry" stays a word) is read as a slot too, in training and in
  answering alike. A story of new names is then read exactly as the same story of
  known ones, so the model answers about a person's own people and places as well as
  about the training set's; the price is that no name keeps an embedding of its own.
- ``"unknown"`` (checkpoints from before): known words keep their own embedding; only
  words the model never saw, or that training hid on purpose, are slots. Stories of
  all-new names are then read differently from the ones the model knows best, and
  the renamed bAbI test lost up to 20 points on some kinds.

We chose slots over a pointer
into the story because they work unchanged with every architecture (the model
sees words and answers classes, as before) and the answer of a question about an
unseen name is still a single class.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textrnn.data.babi import QAExample, answer_tokens

SLOT = "@ent{}"  # slot k (1-based) as a word and as an answer
# Answers that are not entities: truth values, counts, directions (bAbI 6, 7, 8, 10, 19).
FUNCTION_ANSWERS = frozenset(
    "yes no maybe nothing none zero one two three four five six seven eight nine ten "
    "n s e w north south east west".split())
# First words of statements that are not the names of their subjects.
NOT_SUBJECTS = frozenset(
    "the a an this that these those yesterday in on at after before then following "
    "afterwards he she they it there if".split())


def slot_names(count: int) -> list[str]:
    """``["@ent1", ..., "@ent<count>"]``.

    >>> slot_names(3)
    ['@ent1', '@ent2', '@ent3']
    """
    return [SLOT.format(k) for k in range(1, count + 1)]


def entity_words(examples: Iterable[QAExample]) -> set[str]:
    """The words of the training set that name someone or something: every word of an
    answer (but yes/no, counts, directions, ...) and the first word of every statement
    (its subject: "Mary moved ...", but not "The kitchen is ...").

    >>> from textrnn.data.babi import parse_babi
    >>> ex = parse_babi(["1 Mary went to the garden.", "2 The box is big.",
    ...                  "3 Where is Mary?\\tgarden\\t1", "4 Is Mary in the garden?\\tyes\\t1"])
    >>> sorted(entity_words(ex))
    ['garden', 'mary']
    """
    words: set[str] = set()
    for ex in examples:
        words.update(w for w in answer_tokens(ex.answer.lower()) if w not in FUNCTION_ANSWERS)
        words.update(s[0] for s in ex.story if s and s[0] not in NOT_SUBJECTS)
    return words


# Words that follow "the" but name a relation, not a thing ("to the left of", bAbI 17).
RELATION_WORDS = frozenset("left right top bottom middle side end way".split())
NOT_THINGS = RELATION_WORDS | FUNCTION_ANSWERS  # after "the", but not a thing


def thing_words(examples: Iterable[QAExample]) -> set[str]:
    """The words right after "the" in the stories and questions, but relations: the
    places and objects that no answer names ("the triangle", "the red square", "the
    chest"; bAbI 17-19 answer yes/no or directions, so :func:`entity_words` misses them).

    >>> from textrnn.data.babi import parse_babi
    >>> ex = parse_babi(["1 The red square is to the left of the triangle.",
    ...                  "2 Is the triangle to the right of the red square?\\tyes\\t1"])
    >>> sorted(thing_words(ex))
    ['red', 'triangle']
    """
    return {s[i + 1] for ex in examples for s in [*ex.story, ex.question]
            for i in range(len(s) - 1)
            if s[i] == "the" and s[i + 1] not in NOT_THINGS}


def all_entities(examples: Sequence[QAExample]) -> set[str]:
    """:func:`entity_words` and :func:`thing_words` together: every word a slot may
    stand for, what training hides and the renamed test renames."""
    return entity_words(examples) | thing_words(examples)


def name_words(examples: Iterable[QAExample], entities: set[str]) -> set[str]:
    """The entity words that name a one-off someone or something: never seen right after
    "a", "an", "the" or "of" ("Gertrude is a sheep. Sheep are afraid of wolves." names
    Gertrude, but not sheep or wolves, whose meaning the training data teaches), and
    never an answer that the story does not hold.

    >>> from textrnn.data.babi import parse_babi
    >>> ex = parse_babi(["1 Gertrude is a sheep.", "2 Sheep are afraid of wolves.",
    ...                  "3 What is gertrude afraid of?\\twolf\\t1 2"])
    >>> sorted(name_words(ex, {"gertrude", "sheep", "wolves"}))
    ['gertrude']
    """
    examples = list(examples)
    common = {s[i + 1] for ex in examples for s in [*ex.story, ex.question]
              for i in range(len(s) - 1) if s[i] in ("a", "an", "the", "of")}
    taught = {w for ex in examples if not answerable_from_story(ex)  # knowledge answers
              for w in answer_tokens(ex.answer.lower())}
    return set(entities) - common - taught


def first_mentions(sentences: Sequence[Sequence[str]], is_entity) -> list[str]:
    """The distinct words of ``sentences`` for which ``is_entity(word)`` holds, in order of
    first mention.

    >>> first_mentions([["alice", "went", "home"], ["bob", "saw", "alice"]],
    ...                lambda w: w in {"alice", "bob", "home"})
    ['alice', 'home', 'bob']
    """
    return list(dict.fromkeys(w for s in sentences for w in s if is_entity(w)))


def answerable_from_story(example: QAExample) -> bool:
    """Whether hiding the example's names keeps its answer derivable from the story: the
    answer is a word of the story or question, or a yes/no/count/direction. Not so for
    answers from what the training data teaches ("Sumit is hungry. Where will sumit
    go?" -> kitchen): hiding "hungry" there would teach noise.

    >>> from textrnn.data.babi import parse_babi
    >>> a, b, c = parse_babi(["1 Mary went to the garden.", "2 Where is Mary?\\tgarden\\t1",
    ...     "3 Is Mary in the garden?\\tyes\\t1", "4 Where will mary go?\\tkitchen\\t1"])
    >>> answerable_from_story(a), answerable_from_story(b), answerable_from_story(c)
    (True, True, False)
    """
    seen = {w for s in [*example.story, example.question] for w in s}
    return all(w in seen or w in FUNCTION_ANSWERS for w in answer_tokens(example.answer.lower()))


def knowledge_cues(examples: Sequence[QAExample]) -> set[str]:
    """The words of the stories whose answers the story does not hold: what the training
    data teaches about them ("hungry" people go to the kitchen) is what those answers
    come from, so renaming them would make the question unanswerable.

    >>> from textrnn.data.babi import parse_babi
    >>> ex = parse_babi(["1 Sumit is hungry.", "2 Where will sumit go?\\tkitchen\\t1",
    ...                  "1 Mary went to the garden.", "2 Where is Mary?\\tgarden\\t1"])
    >>> sorted(knowledge_cues(ex))
    ['go', 'hungry', 'is', 'kitchen', 'sumit', 'where', 'will']
    """
    return {w for ex in examples if not answerable_from_story(ex)
            for w in [*(w for s in [*ex.story, ex.question] for w in s),
                      *answer_tokens(ex.answer.lower())]}


# A word that at least this share of its stories answer from knowledge, not from the story,
# is a cue that knowledge comes from ("hungry", "wolves"): bAbI en-10k's cues are >= 0.2,
# every other word <= 0.07 (task 20's pajamas), so the line falls in a wide gap.
CUE_SHARE = 0.1


def slotted_words(examples: Sequence[QAExample]) -> set[str]:
    """The known words that every story is read with as slots (``slot_reading="all"``):
    :func:`all_entities` but the cues that knowledge answers come from (a word that
    :data:`CUE_SHARE` of its examples answer from what the training data teaches), and
    with the one-off names among those cues ("Gertrude is a sheep. What is gertrude
    afraid of?") slotted again. A story of known names is then read exactly as the same
    story with new ones.

    >>> from textrnn.data.babi import parse_babi
    >>> ex = parse_babi(["1 Gertrude is a sheep.", "2 Sheep are afraid of wolves.",
    ...                  "3 What is gertrude afraid of?\\twolf\\t1 2",
    ...                  "1 Mary went to the garden.", "2 Where is Mary?\\tgarden\\t1"])
    >>> sorted(slotted_words(ex))
    ['garden', 'gertrude', 'mary']
    """
    entities = all_entities(examples)
    seen: dict[str, int] = dict.fromkeys(entities, 0)
    taught = dict(seen)
    subjects = {s[0] for ex in examples for s in ex.story if s}
    for ex in examples:
        knowledge = not answerable_from_story(ex)
        words = {w for s in [*ex.story, ex.question] for w in s}
        for word in (words | set(answer_tokens(ex.answer.lower()))) & entities:
            seen[word] += 1
            taught[word] += knowledge
    cues = {w for w in entities if taught[w] >= CUE_SHARE * seen[w] > 0}
    return (entities - cues) | (cues & name_words(examples, entities) & subjects)
