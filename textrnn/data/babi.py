"""Parse the bAbI question-answering tasks into plain records.

bAbI (Weston et al. 2015, "Towards AI-Complete Question Answering: A Set of
Prerequisite Toy Tasks", arXiv:1502.05698) has 20 tasks, each a file of short
stories. Every line starts with an id; ids restart at 1 for a new story; a
question line carries its answer and the ids of the supporting facts after
tabs::

    1 Mary moved to the bathroom.
    2 John went to the hallway.
    3 Where is Mary? <TAB>bathroom<TAB>1

Questions are not story sentences: a question sees every statement before it
in its story, and supporting ids name statements only. Answers are one word,
or a comma-separated list for task 8 (``apple,football``) and task 19 (``n,w``).

Everything here is pure Python (no torch): turning records into tensors is
the job of the vocabulary and collate step.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from textrnn.errors import DataError, decode_utf8
from textrnn.tokenize import word_tokenize

log = logging.getLogger(__name__)

GENERATED_PREFIX = "generated_qa_"  # textrnn data generate wrote generated_qa_{split}.txt
GENERATED_TASK = 0  # task id of generated stories and single files (no bAbI task number)
SPLITS = ("train", "valid", "test")  # "valid" exists in bAbI's en-valid/ folders
# The names bAbI v1.2 gives its tasks in its file names (qa6_yes-no-questions_train.txt).
TASK_NAMES = dict(enumerate((
    "single-supporting-fact", "two-supporting-facts", "three-supporting-facts",
    "two-arg-relations", "three-arg-relations", "yes-no-questions", "counting", "lists-sets",
    "simple-negation", "indefinite-knowledge", "basic-coreference", "conjunction",
    "compound-coreference", "time-reasoning", "basic-deduction", "basic-induction",
    "positional-reasoning", "size-reasoning", "path-finding", "agents-motivations"), start=1))

# "12 Mary moved to the bathroom." -> id "12", text "Mary moved to the bathroom."
_LINE_RE = re.compile(r"([0-9]+)(?:[ \t]+(.*))?")
# "qa6_yes-no-questions_train.txt" and en-valid's "qa6_train.txt"
_TASK_RE = re.compile(r"qa(\d+)_")


@dataclass(frozen=True)
class QAExample:
    """One bAbI question with the story it is asked about.

    Attributes:
        story: the statements before the question, each a list of lower-cased
            word tokens without punctuation; shape ``(num_sentences, sentence_len)``
            (ragged).
        question: the question's tokens, lower-cased, without the ``?``.
        answer: the raw answer string, e.g. ``"bathroom"``, ``"yes"``,
            ``"apple,football"`` or ``"n,w"`` (see :func:`answer_tokens`).
        support: 0-based indices into ``story`` of the supporting facts, in
            the order the file lists them.
        task: the bAbI task number (1-20), or ``None`` if unknown.
    """

    story: list[list[str]]
    question: list[str]
    answer: str
    support: list[int]
    task: int | None = None


def sentence_words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``, punctuation dropped."""
    # word_tokenize gives punctuation marks as one-character tokens; a word
    # token always starts with a letter or digit.
    return [t for t in word_tokenize(text, lower=True) if t[0].isalnum()]


class _Malformed(Exception):
    """A line breaks the format; :func:`parse_babi` adds the path and line number."""


def _parse_question(text: str, index_of_id: dict[int, int]) -> tuple[list[str], str, list[int]]:
    """Split ``question<TAB>answer<TAB>ids`` and map the ids to story positions."""
    fields = text.split("\t")
    if len(fields) != 3:
        raise _Malformed(
            "a question line needs 3 tab-separated fields "
            f"(question, answer, supporting ids), got {len(fields)}"
        )
    question_text, answer, support_text = (f.strip() for f in fields)
    question = sentence_words(question_text)
    if not question:
        raise _Malformed("the question has no words")
    if not answer:
        raise _Malformed("the answer is empty")
    support = []
    for token in support_text.split():
        if not (token.isascii() and token.isdigit()):
            raise _Malformed(f"supporting id {token!r} is not a number")
        if int(token) not in index_of_id:
            raise _Malformed(f"supporting id {token} names no earlier statement in this story")
        support.append(index_of_id[int(token)])
    return question, answer, support


def parse_babi(
    lines: Iterable[str], path: str | None = None, task: int | None = None
) -> list[QAExample]:
    """Parse bAbI lines into one :class:`QAExample` per question.

    Args:
        lines: the file's lines, with or without line endings (CRLF is fine).
        path: the file name, used only in error messages.
        task: stored in every example's ``task``.

    Returns:
        The questions in file order.

    Raises:
        DataError: on a malformed line, naming ``path`` and the 1-based line.

    >>> lines = ["1 Mary moved to the bathroom.", "2 John went to the hallway.",
    ...          "3 Where is Mary? \\tbathroom\\t1", "4 Mary went to the garden.",
    ...          "5 Where is Mary?\\tgarden\\t4",
    ...          "1 Sandra got the milk there.", "2 What is Sandra carrying?\\tmilk\\t1"]
    >>> first, second, third = parse_babi(lines, task=1)
    >>> first.story
    [['mary', 'moved', 'to', 'the', 'bathroom'], ['john', 'went', 'to', 'the', 'hallway']]
    >>> first.question, first.answer, first.support, first.task
    (['where', 'is', 'mary'], 'bathroom', [0], 1)
    >>> len(second.story), second.support   # the question on line 3 is not in the story
    (3, [2])
    >>> third.story, third.answer           # ids restarted at 1: a new story
    ([['sandra', 'got', 'the', 'milk', 'there']], 'milk')
    >>> parse_babi(["1 Mary moved to the bathroom.", "2 Where is Mary?\\tbathroom\\t3"],
    ...            path="qa1.txt")
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: qa1.txt:2: supporting id 3 names no earlier statement in this story
    """
    examples: list[QAExample] = []
    story: list[list[str]] = []
    index_of_id: dict[int, int] = {}  # statement id -> position in `story`
    last_id = 0  # 0: no story open yet

    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip()  # trailing spaces, "\r\n" and "\n"
        if not line:
            continue
        try:
            match = _LINE_RE.fullmatch(line)
            if match is None:
                raise _Malformed(f"expected 'ID text' with a numeric id, got {line[:60]!r}")
            line_id, text = int(match.group(1)), (match.group(2) or "").strip()
            if not text:
                raise _Malformed(f"line with id {line_id} has no text")

            if line_id == 1:
                story, index_of_id = [], {}
            elif last_id == 0:
                raise _Malformed(f"a story must start at id 1, got id {line_id}")
            elif line_id <= last_id:
                raise _Malformed(
                    f"id {line_id} after id {last_id}: ids must increase within a story "
                    "and restart at 1 for a new one"
                )
            last_id = line_id

            if "\t" not in text:
                words = sentence_words(text)
                if not words:
                    raise _Malformed(f"statement {line_id} has no words")
                index_of_id[line_id] = len(story)
                story.append(words)
            else:
                question, answer, support = _parse_question(text, index_of_id)
                # A shallow copy: later statements must not leak into this
                # question's story; the sentence lists are shared to save memory.
                examples.append(QAExample(list(story), question, answer, support, task))
        except _Malformed as e:
            raise DataError(str(e), path=path, line=lineno) from None
    return examples


def answer_tokens(answer: str) -> list[str]:
    """Split a bAbI answer into its words (tasks 8 and 19 list several).

    >>> answer_tokens("bathroom")
    ['bathroom']
    >>> answer_tokens("apple,football")
    ['apple', 'football']
    >>> answer_tokens("n, w")
    ['n', 'w']
    """
    return [part.strip() for part in answer.split(",") if part.strip()]


def parse_tasks(text: str) -> list[int] | None:
    """``"1,6"`` -> [1, 6]; ``"all"`` -> None (every task found).

    Raises:
        ValueError: for anything else, or a number outside 1-20.

    >>> parse_tasks("1, 6,20"), parse_tasks("all")
    ([1, 6, 20], None)
    """
    if text.strip().lower() == "all":
        return None
    try:
        tasks = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise ValueError(f"expected task numbers like 1,6 or 'all', got {text!r}") from None
    if not tasks or any(not 1 <= t <= 20 for t in tasks):
        raise ValueError(f"bAbI tasks are numbered 1-20, got {text!r}")
    return tasks


def task_of_filename(name: str | Path) -> int | None:
    """The task number in a bAbI file name, or ``None`` if it has none.

    >>> task_of_filename("qa6_yes-no-questions_train.txt")
    6
    >>> task_of_filename("/data/en-valid/qa19_valid.txt")
    19
    >>> task_of_filename("generated_qa_train.txt") is None
    True
    """
    match = _TASK_RE.match(Path(name).name)
    return int(match.group(1)) if match else None


def find_task_files(
    root: str | Path,
    tasks: list[int] | None = None,
    split: Literal["train", "valid", "test"] = "train",
) -> dict[int, Path]:
    """Find each task's file for one split in a bAbI folder such as ``.../en-10k``.

    Args:
        root: a folder of ``qa{N}_*_{split}.txt`` files.
        tasks: the task numbers wanted; ``None`` means every task in ``root``.
        split: ``"train"``, ``"test"`` or (for en-valid folders) ``"valid"``.

    Returns:
        ``{task: path}`` in ascending task order.

    Raises:
        DataError: ``root`` is not a folder, a wanted task has no file there,
            or a task has two files.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError("not a directory of bAbI task files", path=root)
    found: dict[int, Path] = {}
    for file in sorted(root.glob(f"qa*_{split}.txt")):
        task = task_of_filename(file)
        if task is None:
            continue
        if task in found:
            raise DataError(
                f"two {split} files for task {task}: {found[task].name} and {file.name}",
                path=root,
            )
        found[task] = file
    if tasks is None:
        if not found:
            raise DataError(f"no bAbI {split} files (qa*_{split}.txt)", path=root)
        return dict(sorted(found.items()))
    for task in tasks:
        if task not in found:
            raise DataError(f"no {split} file for task {task} (qa{task}_*_{split}.txt)", path=root)
    return {task: found[task] for task in sorted(set(tasks))}


def read_babi(path: str | Path) -> list[QAExample]:
    """Read a bAbI file (UTF-8); the task number comes from its name.

    Raises:
        DataError: the file is missing, not UTF-8, malformed, or has no question.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("no such bAbI file", path=path) from None
    except IsADirectoryError:
        raise DataError("is a directory, expected a bAbI task file", path=path) from None
    except OSError as e:  # unreadable (permissions, I/O error): one line, not a traceback
        raise DataError(f"cannot read: {e.strerror or e}", path=path) from None
    text = decode_utf8(data, path)  # a bad byte's error names its line
    examples = parse_babi(text.splitlines(), path=str(path), task=task_of_filename(path))
    if not examples:
        raise DataError("no questions (lines with tab-separated answers) found", path=path)
    return examples


def task_files(data: str | Path, tasks: list[int] | None, split: str) -> dict[int, Path]:
    """Map task id -> the ``split`` file of each task under ``data``.

    ``data`` names one of: a folder of bAbI task files (``.../en-10k`` or ``.../en``);
    the ``tasks_1-20_v1-2`` folder itself (then ``en-10k`` is used); a folder of
    generated stories (``textrnn data generate``; task :data:`GENERATED_TASK`); or a
    single file in the bAbI format (``tasks`` is then ignored). ``tasks=None`` means
    every task with a test file. bAbI v1.2's en-10k has no qa3 training file: it is
    taken from the sibling ``en/`` folder (1k questions), and a note says so.

    Raises:
        DataError: a missing folder, file or task.
    """
    path = Path(data)
    if not path.exists():
        raise DataError("no such file or folder", path=data)
    if path.is_file():
        return {task_of_filename(path) or GENERATED_TASK: path}  # one file, one "task"
    generated = path / f"{GENERATED_PREFIX}{split}.txt"  # the one-file generated folders
    if generated.is_file() and not any(path.glob(f"qa*_{split}.txt")):
        return {GENERATED_TASK: generated}
    if (path / "en-10k").is_dir():
        path = path / "en-10k"
    # "All tasks" means those with a test file: en-10k has qa3's test file but no train file.
    wanted = tasks if tasks is not None else list(find_task_files(path, None, "test"))
    found = find_task_files(path, None, split) if any(path.glob(f"qa*_{split}.txt")) else {}
    missing = [t for t in wanted if t not in found]
    sibling = path.parent / "en"
    if missing and path.name == "en-10k" and sibling.is_dir():
        found.update(find_task_files(sibling, missing, split))
        log.info("%s has no %s file for task(s) %s; using %s's", path, split, missing, sibling)
    still_missing = [t for t in wanted if t not in found]
    if still_missing:
        find_task_files(path, still_missing, split)  # raises a DataError naming the task
    return {t: found[t] for t in wanted}
