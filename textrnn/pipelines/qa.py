"""Question answering on bAbI-format stories (the chatbot), as typed Python.

::

    from textrnn import checkpoint
    from textrnn.pipelines import qa
    from textrnn.train import TrainConfig, fit

    run = qa.build("data/generated", hops=3)                  # data, vocabularies, model
    fit(run.model, run.train_data, run.val_data, TrainConfig(epochs=20, lr=0.005), "runs/qa")
    qa.settle(run, "runs/qa")  # best.pt's metrics and temperature, as it answers
    bundle = checkpoint.load("runs/qa/best.pt", task="qa")
    qa.evaluate(bundle, "data/generated")["mean_accuracy"]
    qa.answer(bundle, ["Mary moved to the bathroom."], "Where is Mary?").answer  # 'bathroom'

``data`` is any of what :func:`textrnn.data.babi.task_files` reads: a bAbI folder
(with ``tasks=[1, 6]`` or every task), a folder of generated stories, or one file.
The last 10% of each training file is held out for validation (contiguous, so at
most one story is split); test files are only read by :func:`evaluate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from textrnn import checkpoint, models
from textrnn.chat import Answer, Answerer
from textrnn.checkpoint import Bundle
from textrnn.data.babi import GENERATED_TASK, TASK_NAMES, QAExample, read_babi, task_files
from textrnn.data.entities import all_entities, name_words, slotted_words
from textrnn.data.qa_batches import QABatches, build_vocabs
from textrnn.data.slot_lists import LONGEST
from textrnn.data.slot_reading import slotted
from textrnn.data.split import holdout
from textrnn.models.qa import QAConfig
from textrnn.pipelines import Run
from textrnn.vocab import Vocab

# Every model build() makes reads names, places and things as @ent1..@entK, K = as many as
# the most that one training story holds in its last memory_size sentences (bAbI's and the
# generated stories: 13), at most MAX_SLOTS. Each slot number is trained on 1/K of the
# words, so more slots than that are learnt worse: the quick start with 16 slots answered
# two and three facts 58-70% in 5 CPU-minutes, with 12 81-95%.
ENTITY_SLOTS = -1  # "as many as the training stories need"
MAX_SLOTS = 20
UNKNOWN_SLOTS = 12  # slot_reading="unknown": only new words are slots, 12 as before
SLOT_READING = "all"  # ... and known ones too (QAConfig.slot_reading)
# train qa's epochs: 30, or more on a small training set, so that it makes MIN_STEPS steps.
# Read with every name as a slot, bAbI 1k tasks 1,6 (57 steps an epoch) were still
# learning after 30 epochs (seed 1: validation 97.5%, QA6 test 90.8%); with 100, the
# same seed reaches 100% validation in 21 and 100% / 100% test.
EPOCHS = 30
MIN_STEPS = 6000
# The width d a model build() makes has when none is given: the QRN's is 128. Wider, it
# learnt the generated stories much faster per step: the quick start's 13 kinds, 5
# CPU-minutes, mean test error 1.86% (d = 50, 40k steps) -> 1.08% (80, 36k) -> 0.58%
# (128, 25k); with 200 (16k steps) it was no better than 128 on validation. The others
# keep QAConfig's 50, their papers' joint-training size.
WIDTH = -1  # "the arch's own"
ARCH_WIDTH = {"qrn": 128}
FAIL_ERROR = 0.05  # bAbI convention: a task is failed when its test error exceeds 5%
EVAL_BATCH_SIZE = 256  # validation batches: no gradients, so larger is cheaper
# The validations during training read each story in this many numberings of its slots,
# not the slot_draws the model answers with: they pick the best checkpoint and the focus of
# the next epoch, and one numbering ranks checkpoints as well, for 1/8 of the time (quick
# start: 2.0 s against 13.3 s a validation; 9 of them took 40% of its 5 CPU-minutes).
# settle() then validates best.pt as it answers, and stores those metrics in it.
TRAINING_DRAWS = 1
BUCKET = 50  # training batches hold stories of similar length, sorted in chunks of 50 batches
FOCUS = 0.5  # share of each epoch given to the tasks by validation error (textrnn.data.focus)
# QAConfig fields that build() fills in from the data, not from the caller.
DERIVED = ("vocab_size", "num_answers", "tasks")


def read_tasks(files: dict[int, Path]) -> dict[int, list[QAExample]]:
    """Read each task's file. Generated files carry no task number (``task=None``),
    which the batches encode as 0, the :data:`GENERATED_TASK` they are filed under."""
    return {task: read_babi(path) for task, path in files.items()}


def build(
    data: str | Path,
    *,
    tasks: list[int] | None = None,
    batch_size: int = 32,
    seed: int = 1234,
    focus: float = FOCUS,
    **settings: Any,
) -> Run:
    """Read the training files, hold out validation, build the vocabularies and the model.

    Args:
        data: a bAbI folder, a folder of generated stories, or one bAbI-format file.
        tasks: bAbI task numbers to train on jointly; None = every task found.
        batch_size: training questions per batch.
        seed: the initial weights and the shuffling depend on it only.
        focus: φ of :mod:`textrnn.data.focus`, the share of each epoch after the first
            that goes to the tasks by their validation error; 0 = each question once.
        **settings: :class:`~textrnn.models.qa.QAConfig` fields (``arch``, ``hops``,
            ``embedding_size``, ...); the sizes of the vocabularies come from the data.
            ``entity_slots`` is :data:`ENTITY_SLOTS` unless given (0 turns them off),
            ``embedding_size`` the arch's :data:`ARCH_WIDTH` (else QAConfig's).

    Returns:
        The model (carrying ``{"words", "answers"}`` vocabularies) and its batches.

    Raises:
        DataError: a missing or malformed file, or too few questions to hold some out.
        TypeError: a setting that is not a QAConfig field.
    """
    unknown = set(settings) - {f.name for f in fields(QAConfig)} | (set(settings) & set(DERIVED))
    if unknown:
        raise TypeError(f"not a QAConfig setting: {', '.join(sorted(unknown))}")
    per_task = read_tasks(task_files(data, tasks, "train"))
    train, valid = [], []
    for examples in per_task.values():
        task_train, task_valid = holdout(examples, data, what="questions")
        train += task_train
        valid += task_valid
    settings.setdefault("slot_reading", SLOT_READING)
    if settings.get("embedding_size", WIDTH) == WIDTH:
        arch = settings.get("arch", QAConfig.arch)
        settings["embedding_size"] = ARCH_WIDTH.get(arch, QAConfig.embedding_size)
    read_all = settings["slot_reading"] == "all"
    slotted_set = slotted_words(train) if read_all else set()
    if settings.get("entity_slots", ENTITY_SLOTS) == ENTITY_SLOTS:
        settings["entity_slots"] = (slots_needed(train, slotted_set, settings.get(
            "memory_size", QAConfig.memory_size)) if read_all else UNKNOWN_SLOTS)
    settings.setdefault("list_slots", LONGEST if settings["entity_slots"] else 0)
    words, answers = build_vocabs(train, settings["entity_slots"])
    vocabs = {"words": words, "answers": answers}
    if settings["entity_slots"] and read_all:
        vocabs["slotted"] = Vocab(sorted(slotted_set), specials=())
    config = QAConfig(vocab_size=len(words), num_answers=len(answers), tasks=sorted(per_task),
                      **settings)
    torch.manual_seed(seed)  # the initial weights depend on the seed only
    model = models.build("qa", config, vocabs)
    slots = {"memory_size": config.memory_size, "entity_slots": config.entity_slots,
             "list_slots": config.list_slots, "slotted": slotted(vocabs)}
    val_slots = {**slots, "slot_draws": min(TRAINING_DRAWS, config.slot_draws)}
    # Only the "unknown" reading hides known words at random, from these lists.
    entities = frozenset() if read_all else frozenset(all_entities(train))
    train_data = QABatches(train, words, answers, batch_size=batch_size, shuffle=True,
                           seed=seed, entities=entities,
                           names=frozenset(name_words(train, entities)),
                           entity_dropout=config.entity_dropout, bucket=BUCKET, focus=focus,
                           **slots)
    val_data = QABatches(valid, words, answers, batch_size=EVAL_BATCH_SIZE, shuffle=False,
                         **val_slots)
    return Run(model, train_data, val_data)


def settle(run: Run, out: str | Path) -> dict[str, float] | None:
    """Validate ``out/best.pt`` as it will answer (its ``slot_draws`` numberings of the
    slots) on ``run``'s validation questions, and store those metrics in it, the answer
    temperature and the "not sure" threshold among them.

    Returns:
        The new metrics, with ``val_slot_draws``, the numberings they were measured on;
        None when there is nothing to redo: no best.pt, or one settled already (a finished
        run resumed), or a model that answers with the one numbering of its training.
    """
    best = Path(out) / "best.pt"
    val_data = run.val_data
    if not best.is_file() or not isinstance(val_data, QABatches):
        return None
    bundle = checkpoint.load(best, task="qa")
    draws = bundle.config.slot_draws
    if draws == val_data.slot_draws or bundle.metrics.get("val_slot_draws") == draws:
        return None
    val_data.slot_draws = draws
    metrics = {**bundle.evaluate(val_data), "val_slot_draws": draws}
    checkpoint.update_metrics(best, metrics)
    return metrics


def slots_needed(examples: Sequence[QAExample], slotted: set[str], memory_size: int) -> int:
    """The most distinct ``slotted`` words one example reads (its question and the last
    ``memory_size`` sentences of its story), between 1 and :data:`MAX_SLOTS`.

    >>> from textrnn.data.babi import parse_babi
    >>> ex = parse_babi(["1 Mary went to the garden.", "2 John moved to the office.",
    ...                  "3 Where is Mary?\\tgarden\\t1"])
    >>> slots_needed(ex, {"mary", "john", "garden", "office"}, 50)
    4
    """
    most = max((len({w for s in [*ex.story[-memory_size:], ex.question] for w in s} & slotted)
                for ex in examples), default=0)
    return min(max(most, 1), MAX_SLOTS)


def default_epochs(steps_per_epoch: int) -> int:
    """:data:`EPOCHS`, or as many epochs as make :data:`MIN_STEPS` steps.

    >>> default_epochs(57), default_epochs(5000)
    (106, 30)
    """
    return max(EPOCHS, -(-MIN_STEPS // max(steps_per_epoch, 1)))


def batches(bundle: Bundle, examples: Sequence[QAExample], batch_size: int = 32) -> QABatches:
    """Evaluation batches of ``examples`` read the way ``bundle``'s model reads stories
    (its memory size, entity slots and slot numberings)."""
    return QABatches(examples, bundle.vocabs["words"], bundle.vocabs["answers"],
                     batch_size=batch_size, shuffle=False, memory_size=bundle.config.memory_size,
                     entity_slots=bundle.config.entity_slots,
                     slot_draws=bundle.config.slot_draws, list_slots=bundle.config.list_slots,
                     slotted=slotted(bundle.vocabs))


def evaluate(
    bundle: Bundle, data: str | Path, *, tasks: list[int] | None = None, batch_size: int = 32,
) -> dict:
    """Per-task test accuracy of a QA checkpoint on the test files under ``data``.

    Args:
        bundle: a loaded ``qa`` checkpoint.
        data: as for :func:`build`; its test files are read.
        tasks: tasks to test; None = those the model was trained on.
        batch_size: questions per forward pass.

    Returns:
        ``{"tasks": {task: {"accuracy", "error", "questions", "failed"}}, "mean_accuracy",
        "mean_error", "failed": [task, ...], "ece", "questions", "data"}``, each task with its bAbI
        ``"kind"`` name (``""`` for a file of no task); task keys are strings
        (``"0"`` for generated stories), a task fails above :data:`FAIL_ERROR` error.
    """
    tasks = tasks if tasks is not None else list(bundle.config.tasks) or None
    if tasks == [GENERATED_TASK]:
        tasks = None
    per_task = read_tasks(task_files(data, tasks, "test"))
    examples = [e for ex in per_task.values() for e in ex]
    metrics = bundle.evaluate(batches(bundle, examples, batch_size))
    results = {}
    for task, ex in per_task.items():
        acc = metrics.get(f"val_acc_task{task}", metrics["val_acc"])
        results[str(task)] = {"accuracy": acc, "error": 1 - acc, "questions": len(ex),
                              "failed": 1 - acc > FAIL_ERROR, "kind": TASK_NAMES.get(task, "")}
    errors = [r["error"] for r in results.values()]
    return {
        "tasks": results,
        "mean_accuracy": 1 - sum(errors) / len(errors),
        "mean_error": sum(errors) / len(errors),
        "failed": [t for t, r in results.items() if r["failed"]],
        "ece": metrics["val_ece"],  # expected calibration error of the confidence, all tasks
        "questions": len(examples),
        "data": str(data),
    }


def answer(bundle: Bundle, story: Sequence[str], question: str) -> Answer:
    """Answer one question about a story (a list of sentences) with a QA checkpoint:
    the answer, the model's confidence and the sentences it read it from.

    For many questions, keep an :class:`~textrnn.chat.Answerer` (``textrnn.load``
    returns one) and call ``answer_batch``.
    """
    return Answerer(bundle).answer(story, question)
