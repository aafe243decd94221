"""Language models over characters, words or folk melodies, as typed Python.

::

    from textrnn import checkpoint
    from textrnn.pipelines import lm

    run = lm.build("data/shakespeare/train.txt", valid="data/shakespeare/valid.txt",
                   level="char", hidden_size=384, num_layers=1)
    # ... textrnn.train.fit(run.model, run.train_data, run.val_data, cfg, "runs/lm")
    bundle = checkpoint.load("runs/lm/best.pt", task="lm")
    print("".join(lm.sample(bundle, "ROMEO:\\n", max_tokens=200, seed=1)))
    lm.score(bundle, ["the apple and pear salad", "the apple and pair salad"])

The data is one UTF-8 text, read as one continuous stream in truncated-BPTT
windows (:mod:`textrnn.data.text`). Validation is ``valid``, else the last 10% of
the lines of ``data``; the vocabulary comes from the training part only.
:func:`sample_tune` continues an ABC tune from a model trained on
:mod:`textrnn.data.melodies` and writes it as ABC and MIDI
(:mod:`textrnn.data.music`).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, NamedTuple

import torch

from textrnn import models
from textrnn.checkpoint import Bundle
from textrnn.data import music
from textrnn.data.split import holdout, validation_file
from textrnn.data.text import (
    EOS,
    detokenize,
    eval_batch_size,
    read_text,
    stream_batches,
    tokenize_lines,
)
from textrnn.errors import DataError, TextrnnError
from textrnn.models.lm import LMConfig, default_cutoffs
from textrnn.pipelines import Run
from textrnn.tokenize import TOKENIZERS
from textrnn.vocab import Vocab

log = logging.getLogger(__name__)


def build(
    data: str | PathLike[str],
    *,
    valid: str | PathLike[str] | None = None,
    bptt: int = 128,
    min_count: int = 1,
    max_vocab: int | None = None,
    batch_size: int = 32,
    seed: int = 1234,
    **settings: Any,
) -> Run:
    """Read the text, build the vocabulary from the training part only, batch, make the model.

    Args:
        data: the training text (UTF-8).
        valid: the validation text; default: the last 10% of the lines of ``data``.
        bptt: the truncated-BPTT window length (how far gradients flow back in time).
        min_count: drop tokens seen fewer times in training (they become ``<unk>``).
        max_vocab: keep at most this many most frequent tokens (None = all).
        batch_size: parallel streams per training batch.
        seed: the initial weights.
        settings: :class:`~textrnn.models.lm.LMConfig` fields (``level``, ``cell``,
            ``hidden_size``, ``softmax``, ...); the vocabulary size comes from the data.
            With ``softmax="adaptive"`` and no ``cutoffs``, :func:`default_cutoffs`.

    Raises:
        DataError: on an unreadable or too short text, or bad model settings.
    """
    level = settings.get("level", LMConfig.level)
    text = read_text(data)
    valid_file = validation_file(data, valid)
    if valid_file is None:
        lines = text.splitlines(keepends=True)
        train_lines, val_lines = holdout(lines, data, what="lines")
        train_text, val_text, val_path = "".join(train_lines), "".join(val_lines), data
    else:
        train_text, val_text, val_path = text, read_text(valid_file), valid_file
    train_tokens = tokenize_lines(train_text, level)
    try:
        vocab = Vocab.from_tokens([train_tokens], min_count=min_count, max_size=max_vocab)
    except ValueError as err:
        raise DataError(f"bad vocabulary settings: {err}") from None
    val_ids = vocab.encode(tokenize_lines(val_text, level))
    train_data = stream_batches(vocab.encode(train_tokens), batch_size, bptt, data)
    val_data = stream_batches(val_ids, eval_batch_size(len(val_ids), batch_size, bptt), bptt,
                              val_path)
    if settings.get("softmax") == "adaptive":
        settings["cutoffs"] = tuple(settings.get("cutoffs") or default_cutoffs(len(vocab)))
    else:
        settings["cutoffs"] = ()  # only the adaptive softmax has clusters
    try:
        config = LMConfig(vocab_size=len(vocab), **settings)
    except TypeError as err:  # a setting that is not an LMConfig field
        raise TextrnnError(str(err)) from None
    torch.manual_seed(seed)  # the initial weights depend on the seed only
    try:
        model = models.build("lm", config, {"tokens": vocab})
    except ValueError as err:
        raise DataError(f"bad model settings: {err}") from None
    return Run(model, train_data, val_data)


def evaluate(bundle: Bundle, data: str | PathLike[str], *, bptt: int = 128,
             batch_size: int = 32) -> dict:
    """Loss, perplexity and bits per token of ``bundle``'s model on the text ``data``.

    Args:
        bundle: an ``lm`` checkpoint.
        data: the text to score, read in windows of ``bptt`` tokens in up to
            ``batch_size`` parallel streams, the state carried across windows.

    Returns:
        ``{"loss" (nats/token), "ppl", "bpc" (bits/token), "tokens"}``.
    """
    ids = bundle.vocabs["tokens"].encode(tokenize_lines(read_text(data), bundle.config.level))
    batches = stream_batches(ids, eval_batch_size(len(ids), batch_size, bptt), bptt, data)
    metrics = bundle.evaluate(batches)
    results = {key.removeprefix("val_"): value for key, value in metrics.items()}
    return {**results, "tokens": len(ids)}


class Scored(NamedTuple):
    """One sentence's score: log-probability in nats over its tokens, of which
    ``unknown`` are not in the vocabulary (each scored as ``<unk>``)."""

    sentence: str
    logp: float
    tokens: int
    unknown: int


def score(bundle: Bundle, sentences: list[str]) -> list[Scored]:
    """Each sentence's :class:`Scored`, most likely first.

    Word models read each sentence after an ``<eos>`` (as a new line) and score its own
    ``<eos>`` too; char models read it after a newline. An unknown word is scored as
    ``<unk>``, one class for every word the model never saw, so sentences with
    different ``unknown`` counts do not compare fairly (the CLI says so).

    Raises:
        DataError: on an empty sentence.
    """
    level, vocab = bundle.config.level, bundle.vocabs["tokens"]
    token_lists = [tokenize_lines(s.strip() + "\n", level) for s in sentences]
    if any(not tokens for tokens in token_lists):
        raise DataError("cannot score an empty sentence")
    start = vocab.eos_id if level == "word" else vocab.stoi.get("\n", vocab.unk_id)
    ids = [vocab.encode(t) for t in token_lists]
    logps = bundle.model.score(ids, start)
    ranked = [Scored(s, logp, len(t), sum(i == vocab.unk_id for i in row))
              for s, logp, t, row in zip(sentences, logps, token_lists, ids, strict=True)]
    return sorted(ranked, key=lambda r: -r.logp)


def sample(
    bundle: Bundle,
    prompt: str = "",
    *,
    max_tokens: int = 300,
    temperature: float = 0.8,
    top_k: int = 0,
    no_unk: bool = False,
    seed: int = 0,
    context: str = "",
    max_lines: int | None = None,
) -> Iterator[str]:
    """The prompt, then each sampled token's text, as soon as it is drawn.

    Args:
        bundle: an ``lm`` checkpoint.
        prompt: the text to continue (empty: a new line).
        max_tokens: the most tokens to generate.
        temperature: below 1 is safer, above 1 wilder, 0 greedy.
        top_k: sample among the ``top_k`` likeliest tokens; 0 = all.
        no_unk: never generate ``<unk>`` (the rare-token stand-in).
        seed: the sampling seed: the same seed gives the same text.
        context: text the model reads before the prompt, not shown.
        max_lines: stop after this many generated line ends (a word model's
            ``<eos>``, a char model's ``\\n``); 0 = only ``max_tokens`` stops. None:
            1 for word models (one line, as a line of the training text), 0 for char
            models (which learn their own line breaks).

    Yields:
        Pieces of text; joined, they are the prompt and its continuation.
    """
    level, vocab = bundle.config.level, bundle.vocabs["tokens"]
    prompt_tokens = TOKENIZERS[level](prompt) or tokenize_lines("\n", level)
    context_tokens = TOKENIZERS[level](context)
    generator = torch.Generator().manual_seed(seed)
    # <pad> and <bos> never occur in text; <eos> is a char model's unseen special;
    # <unk> stands for real (rare) words, so it goes only when asked.
    never = {vocab.pad_id, vocab.bos_id} | ({vocab.eos_id} if level == "char" else set())
    if no_unk:
        never.add(vocab.unk_id)
    ids = bundle.model.generate(
        vocab.encode(context_tokens + prompt_tokens),
        max_tokens=max_tokens,
        temperature=temperature,
        top_k=top_k or None,
        generator=generator,
        exclude_ids=sorted(i for i in never if i is not None),
    )
    if max_lines is None:
        max_lines = 1 if level == "word" else 0
    line_end = EOS if level == "word" else "\n"
    tokens = list(prompt_tokens)
    shown = detokenize(tokens, level)
    yield shown
    lines = 0
    for next_id in ids:
        tokens.append(vocab.itos[next_id])
        text = detokenize(tokens, level)  # appending a token only appends text
        yield text[len(shown):]
        shown = text
        lines += tokens[-1] == line_end
        if max_lines and lines >= max_lines:
            ids.close()  # the model leaves its eval mode now, not when collected
            break


@dataclass
class WrittenTune:
    """What :func:`sample_tune` wrote.

    Attributes:
        seed: the seed that gave the (valid) tune.
        abc, midi: the files written.
        notes: notes in the MIDI file.
        seconds: its length at 120 quarter notes a minute.
        complete: False when ``max_tokens`` ran out before the tune's end.
    """

    seed: int
    abc: Path
    midi: Path
    notes: int
    seconds: float
    complete: bool


def sample_tune(
    bundle: Bundle,
    prompt: str,
    abc: str | PathLike[str] | None = None,
    midi: str | PathLike[str] | None = None,
    *,
    retries: int = 0,
    seed: int = 0,
    **options: Any,
) -> Generator[str, None, WrittenTune]:
    """Continue a tune from ``prompt``, stop at its end, and write it as ``.abc`` and ``.mid``.

    The model first reads a blank line, as before every tune in its training file;
    the tune ends at the next blank line, which is not shown. ``\\n`` in the prompt
    (backslash, n) is a line break. A tune that is not valid ABC (or that music21
    cannot read) writes nothing: the next seed is tried, up to ``retries`` times
    (a note says so), then :class:`TextrnnError` is raised.

    Args:
        bundle: a char-level ``lm`` checkpoint trained on tunes.
        prompt: the header and a first note, e.g. ``X:1\\nM:4/4\\nL:1/8\\nK:G\\nG``.
        abc, midi: where the files go (at least one; the other takes its suffix).
        retries: how many more seeds to try after an invalid tune.
        seed: the first seed tried.
        options: :func:`sample`'s ``max_tokens``, ``temperature``, ``top_k``, ``no_unk``.

    Yields:
        The tune's text as it is sampled (a failed attempt ends with a line break).

    Returns:
        The :class:`WrittenTune` (a generator's return value: ``yield from`` gives it).
    """
    if bundle.config.level != "char":
        raise TextrnnError("--abc and --midi need a char-level model trained on tunes")
    if "|" not in bundle.vocabs["tokens"].stoi:  # every ABC tune has bar lines
        raise TextrnnError("--abc and --midi need a model trained on ABC tunes (textrnn data "
                           "melodies); this one never saw a bar line '|'")
    if abc is None and midi is None:
        raise TextrnnError("say where the tune goes: an .abc or a .mid path")
    abc_path = Path(abc) if abc else Path(midi).with_suffix(".abc")
    midi_path = Path(midi) if midi else abc_path.with_suffix(".mid")
    prompt = music.normalize_prompt(prompt)
    retries = max(retries, 0)
    for attempt in range(retries + 1):
        attempt_seed = seed + attempt
        text, held = "", ""  # held: newlines not shown yet (a tune's end is not shown)
        complete = False
        for piece in sample(bundle, prompt, seed=attempt_seed, context="\n\n", **options):
            text += piece
            end = music.end_of_tune(text)
            if end is not None:
                text, complete = text[:end], True
                break
            if piece == "\n":
                held += piece
            else:
                yield held + piece
                held = ""
        try:
            tune = music.tune_from_text(text)
            summary = music.write_midi(tune.text, midi_path)
        except DataError as err:
            unfinished = "" if complete else ", unfinished at max_tokens"
            if attempt < retries:
                yield "\n"
                log.info(f"seed {attempt_seed}: not valid ABC ({err}{unfinished}); "
                         f"trying seed {attempt_seed + 1}")
                continue
            raise TextrnnError(
                f"seed {attempt_seed}: the sampled tune is not valid ABC: {err}{unfinished}; "
                "nothing written (--abc-retries N tries the next N seeds)"
            ) from None
        title = f"textrnn sample, seed {attempt_seed}"
        abc_path.write_text(music.abc_file_text(tune, title), encoding="utf-8")
        return WrittenTune(attempt_seed, abc_path, midi_path, summary.notes, summary.seconds,
                           complete)


__all__ = ["WrittenTune", "build", "evaluate", "sample", "sample_tune", "score"]
