"""The renamed bAbI test: the same stories about people, places and things never seen.

In each task's test file, every name (an entity word written with a capital, and
never after "a", "the" or "of": "Sheep are afraid of wolves" names no one) is
replaced, consistently within the file, by a name from a list disjoint from the
training vocabulary, and every other entity word (places, objects, and every thing
after "the" such as bAbI 17's shapes, 18's boxes and 19's rooms) by a noun from
another such list, unless the task's training file answers some question from what
it teaches about that word rather than from the story (:func:`knowledge_cues`:
"Sumit is hungry. Where will sumit go?" -> kitchen keeps "hungry" and "kitchen").
A model that has learned the tasks rather than the names should score the same on
it (``textrnn data renamed``, then ``textrnn eval``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path

from textrnn.data.babi import QAExample, answer_tokens, read_babi, sentence_words, task_files
from textrnn.data.entities import all_entities, knowledge_cues, name_words
from textrnn.data.split import Written
from textrnn.errors import DataError

# Names and nouns that bAbI never uses (checked against the training words at run time).
NEW_NAMES = (
    "Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia Peggy Rupert "
    "Sybil Trent Uma Victor Walter Xena Yusuf Zoe Amara Bruno Chidi Dmitri Esme Farah Gustav "
    "Hana Ines Jonas Kofi Leona Mateo Nadia Oskar Priya Quinn").split()
NEW_NOUNS = (
    "attic cellar garage library porch studio barn pantry lobby gallery chapel workshop "
    "balcony greenhouse laundry armory stable vault tower basement violin kettle lantern "
    "compass ladder pillow blanket teapot hammer wallet candle mirror scarf basket helmet "
    "ribbon trumpet saddle shovel bucket crimson violet amber teal indigo maroon beige olive "
    "cone prism cylinder oval pyramid wedge sloth otter badger ferret walrus gecko "
    "weary sleepy gloomy").split()
_WORD_RE = re.compile(r"[A-Za-z]+")
_COMMON_RE = re.compile(r"\b(?:a|an|the|of)\s+([A-Za-z]+)", re.IGNORECASE)  # not a name


def renaming(lines: Iterable[str], entities: set[str], taken: set[str],
             keep: set[str] = frozenset()) -> dict[str, str]:
    """Lower-cased entity word -> its new lower-cased word, in order of first appearance;
    the words in ``keep`` stay, unless they are written as names.

    Raises:
        DataError: when the lists run out of words.
    """
    lines = list(lines)
    names = (n.lower() for n in NEW_NAMES if n.lower() not in taken)
    nouns = (n for n in NEW_NOUNS if n not in taken)
    common = {m.group(1).lower() for line in lines for m in _COMMON_RE.finditer(line)}
    mapping: dict[str, str] = {}
    for line in lines:
        for word in _WORD_RE.findall(line):
            key = word.lower()
            name = word[0].isupper() and key not in common
            if key in entities and key not in mapping and (name or key not in keep):
                mapping[key] = next(names if name else nouns, None)
                if mapping[key] is None:
                    raise DataError(f"more than the {len(NEW_NAMES)} names and "
                                    f"{len(NEW_NOUNS)} nouns there are to rename with")
    return mapping


def rename_line(line: str, mapping: dict[str, str]) -> str:
    """``line`` with each mapped word replaced, its capital kept; ids and tabs untouched.

    >>> rename_line("3 Where is Mary?\\tgarden\\t1", {"mary": "alice", "garden": "attic"})
    '3 Where is Alice?\\tattic\\t1'
    """
    def swap(match: re.Match) -> str:
        word = match.group(0)
        new = mapping.get(word.lower())
        if new is None:
            return word
        return new.capitalize() if word[0].isupper() else new

    return _WORD_RE.sub(swap, line)


def write_renamed(source: str | PathLike[str], out: str | PathLike[str]) -> dict[str, Written]:
    """Write a renamed copy of every test file under ``source`` (a bAbI folder) into ``out``.

    The words to rename come from each task's training file; the new words are
    checked to be absent from every training file.

    Returns:
        Task -> the file written, with its questions and renamed words.
    """
    per_task = {t: read_babi(path) for t, path in task_files(source, None, "train").items()}
    train = [e for examples in per_task.values() for e in examples]
    taken = {w for ex in train for s in [*ex.story, ex.question] for w in s}
    taken |= {w for ex in train for w in sentence_words(ex.answer.replace(",", " "))}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for task, path in task_files(source, None, "test").items():
        lines = path.read_text(encoding="utf-8").splitlines()
        examples = per_task.get(task, [])
        entities = all_entities(examples)
        mapping = renaming(lines, entities, taken, knowledge_cues(examples))
        target = out / path.name
        target.write_text("".join(rename_line(line, mapping) + "\n" for line in lines),
                          encoding="utf-8")
        written[f"qa{task}"] = Written(target, {"questions": len(read_babi(target)),
                                                "renamed words": len(mapping)})
    return written


def rename_examples(examples: Sequence[QAExample], train: Sequence[QAExample],
                    taken: set[str]) -> list[QAExample]:
    """``examples`` (parsed, lower-cased) renamed as :func:`write_renamed` renames a file,
    with the names told apart by :func:`~textrnn.data.entities.name_words` (there is no
    capital to go by): e.g. a renamed validation split, to choose settings on. Without
    capitals an adjective that knowledge answers come from (task 20's "hungry") reads as
    a name and is renamed, so it matches :func:`write_renamed` only where no question is
    answered from knowledge (tasks 1 and 6, where the settings were chosen).

    Args:
        examples: the examples to rename, in order (one mapping for all of them).
        train: the training examples the entity words and knowledge cues come from.
        taken: words the new ones must not be (every training word).
    """
    entities = all_entities(train)
    names, keep = name_words(train, entities), knowledge_cues(train)
    new_names = iter(n.lower() for n in NEW_NAMES if n.lower() not in taken)
    new_nouns = iter(n for n in NEW_NOUNS if n not in taken)
    mapping: dict[str, str] = {}

    def new(word: str) -> str:
        if word in entities and word not in mapping and (word in names or word not in keep):
            mapping[word] = next(new_names if word in names else new_nouns)
        return mapping.get(word, word)

    out = []
    for ex in examples:
        story = [[new(w) for w in s] for s in ex.story]
        question = [new(w) for w in ex.question]
        answer = ",".join(new(w.lower()) for w in answer_tokens(ex.answer))
        out.append(QAExample(story, question, answer, list(ex.support), ex.task))
    return out
