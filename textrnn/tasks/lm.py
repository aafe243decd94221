"""The ``lm`` task: train, evaluate and sample a language model on a plain text file.

It also brings ``textrnn data melodies`` (ABC folk tunes, :mod:`textrnn.data.melodies`)
and ``textrnn sample --abc tune.abc``, which continues a tune and writes it as ABC and
MIDI (:mod:`textrnn.music`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import torch

from textrnn.checkpoint import Bundle
from textrnn.data.melodies import prepare_melodies
from textrnn.data.text import StreamBatches, detokenize, read_text, tokenize_lines
from textrnn.errors import DataError, TextrnnError
from textrnn.models.lm import LAYERS, LanguageModel, LMConfig, default_cutoffs
from textrnn.tokenize import TOKENIZERS
from textrnn.train import to_device
from textrnn.vocab import Vocab

_DEFAULTS = {f.name: f.default for f in fields(LMConfig) if f.name != "vocab_size"}
VALID_FRACTION = 0.1  # without --valid, the last 10% of the lines of --data are held out


def _batches(ids: list[int], batch_size: int, bptt: int, path: str) -> StreamBatches:
    try:
        return StreamBatches(torch.tensor(ids, dtype=torch.long), batch_size, bptt)
    except ValueError as err:
        raise DataError(str(err), path=path) from None


def _cutoffs(text: str) -> tuple[int, ...]:
    """``"2000,5000"`` -> (2000, 5000), for ``--cutoffs``."""
    try:
        return tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ids like 2000,5000, got {text!r}") from None


def _eval_batch_size(n_tokens: int, batch_size: int, bptt: int) -> int:
    """Up to ``batch_size`` rows, but few enough that each row holds a full window."""
    return max(1, min(batch_size, n_tokens // (bptt + 1)))


class LMTask:
    """Next-token prediction over one continuous text (truncated BPTT)."""

    help = "language model on a UTF-8 text file (char or word level)"
    best_metric, best_mode = "val_loss", "min"

    def add_train_args(self, parser: argparse.ArgumentParser) -> None:
        """Add the model and data flags of ``train lm``."""
        d = _DEFAULTS
        parser.add_argument(
            "--valid",
            metavar="FILE",
            help="validation text (default: the last 10%% of the lines of --data)",
        )
        parser.add_argument(
            "--level",
            choices=("char", "word"),
            default=d["level"],
            help="tokenize into characters or words (default: %(default)s)",
        )
        parser.add_argument(
            "--cell",
            choices=sorted(LAYERS),
            default=d["cell"],
            help="recurrent cell (default: %(default)s)",
        )
        parser.add_argument(
            "--embedding-size",
            type=int,
            default=d["embedding_size"],
            help="token embedding width (default: %(default)s)",
        )
        parser.add_argument(
            "--hidden-size",
            type=int,
            default=d["hidden_size"],
            help="recurrent state width (default: %(default)s)",
        )
        parser.add_argument(
            "--num-layers",
            type=int,
            default=d["num_layers"],
            help="stacked recurrent layers (default: %(default)s)",
        )
        parser.add_argument(
            "--dropout",
            type=float,
            default=d["dropout"],
            help="dropout rate (default: %(default)s)",
        )
        parser.add_argument(
            "--tie-weights",
            action="store_true",
            help="share embedding and output weights (needs equal sizes)",
        )
        parser.add_argument(
            "--softmax",
            choices=("full", "adaptive"),
            default=d["softmax"],
            help="output layer: full softmax, or the adaptive softmax (frequent words in a "
                 "head, rare ones in smaller clusters; much faster for word vocabularies, "
                 "not with --tie-weights) (default: %(default)s)",
        )
        parser.add_argument(
            "--cutoffs",
            type=_cutoffs,
            default=None,
            metavar="IDS",
            help="adaptive softmax cluster boundaries in frequency rank, e.g. 2000,5000 "
                 "(default: a fifth and a half of the vocabulary)",
        )
        parser.add_argument(
            "--impl",
            choices=("fused", "cells"),
            default=d["impl"],
            help="fused kernels or the readable cell loop (default: %(default)s)",
        )
        parser.add_argument(
            "--bptt",
            type=int,
            default=128,
            help="truncated-BPTT window length (default: %(default)s)",
        )
        parser.add_argument(
            "--min-count",
            type=int,
            default=1,
            help="drop tokens seen fewer times in training (default: %(default)s)",
        )
        parser.add_argument(
            "--max-vocab",
            type=int,
            default=None,
            help="keep at most this many most frequent tokens (default: all)",
        )

    def build(self, args: argparse.Namespace):
        """Read the text, build the vocabulary from the training part only, batch, make the model.

        Returns:
            ``(model, {"tokens": vocab}, train_batches, val_batches)``.
        """
        text = read_text(args.data)
        if args.valid:
            train_text, val_text, val_path = text, read_text(args.valid), args.valid
        else:
            lines = text.splitlines(keepends=True)
            cut = len(lines) - max(1, int(len(lines) * VALID_FRACTION))
            if cut < 1:
                raise DataError(
                    "need at least 2 lines to hold some out for validation (or pass --valid)",
                    path=args.data,
                )
            train_text, val_text, val_path = "".join(lines[:cut]), "".join(lines[cut:]), args.data
        train_tokens = tokenize_lines(train_text, args.level)
        vocab = Vocab.from_tokens([train_tokens], min_count=args.min_count, max_size=args.max_vocab)
        val_ids = vocab.encode(tokenize_lines(val_text, args.level))
        train_data = _batches(vocab.encode(train_tokens), args.batch_size, args.bptt, args.data)
        val_batch_size = _eval_batch_size(len(val_ids), args.batch_size, args.bptt)
        val_data = _batches(val_ids, val_batch_size, args.bptt, val_path)
        config = LMConfig(
            vocab_size=len(vocab),
            level=args.level,
            cell=args.cell,
            embedding_size=args.embedding_size,
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
            dropout=args.dropout,
            tie_weights=args.tie_weights,
            impl=args.impl,
            softmax=args.softmax,
            cutoffs=(args.cutoffs or default_cutoffs(len(vocab))) if args.softmax == "adaptive"
            else (),
        )
        torch.manual_seed(args.seed)  # the initial weights depend on --seed only
        try:
            model = LanguageModel(config)
        except ValueError as err:
            raise DataError(f"bad model settings: {err}") from None
        return model, {"tokens": vocab}, train_data, val_data

    def add_eval_args(self, group: argparse._ArgumentGroup) -> None:
        """Add the ``eval`` flags for language-model checkpoints."""
        group.add_argument(
            "--bptt",
            type=int,
            default=128,
            help="lm: window length the text is read in (default: %(default)s)",
        )

    def evaluate(self, bundle: Bundle, args: argparse.Namespace) -> dict:
        """Loss, perplexity and bits per token of ``bundle``'s model on ``args.data``."""
        level = bundle.config.level
        ids = bundle.vocabs["tokens"].encode(tokenize_lines(read_text(args.data), level))
        batch_size = _eval_batch_size(len(ids), args.batch_size, args.bptt)
        device = bundle.model.embedding.weight.device
        batches = (to_device(b, device) for b in _batches(ids, batch_size, args.bptt, args.data))
        metrics = bundle.model.evaluate(batches)
        results = {key.removeprefix("val_"): value for key, value in metrics.items()}
        return {**results, "tokens": len(ids)}

    def format_eval(self, results: dict) -> str:
        """One line: ``loss 1.4321  ppl 4.19  bpc 2.066  (203513 tokens)``."""
        return (
            f"loss {results['loss']:.4f}  ppl {results['ppl']:.2f}  "
            f"bpc {results['bpc']:.3f}  ({results['tokens']} tokens)"
        )

    def score(self, bundle: Bundle, sentences: list[str]) -> list[tuple[str, float, int]]:
        """``(sentence, log-probability in nats, tokens)`` for each sentence, best first."""
        level, vocab = bundle.config.level, bundle.vocabs["tokens"]
        token_lists = [tokenize_lines(s.strip() + "\n", level) for s in sentences]
        if any(not tokens for tokens in token_lists):
            raise DataError("cannot score an empty sentence")
        start = vocab.eos_id if level == "word" else vocab.stoi.get("\n", vocab.unk_id)
        logps = bundle.model.score([vocab.encode(t) for t in token_lists], start)
        ranked = zip(sentences, logps, map(len, token_lists), strict=True)
        return sorted(ranked, key=lambda r: -r[1])

    def add_sample_args(self, group: argparse._ArgumentGroup) -> None:
        """Add the melody flags of ``sample``: write the sampled tune as ABC and MIDI."""
        group.add_argument(
            "--abc",
            metavar="FILE",
            help="lm on tunes: continue the prompt (a header and a first note; \\n for line "
            "breaks) to the tune's end and write it to FILE as ABC, and as MIDI",
        )
        group.add_argument(
            "--midi",
            metavar="FILE",
            help="lm on tunes: where the MIDI goes (default: --abc with .mid)",
        )
        group.add_argument(
            "--abc-retries",
            type=int,
            default=0,
            metavar="N",
            help="lm on tunes: if the tune is not valid ABC, try the next N seeds "
            "(default: %(default)s)",
        )

    def add_data_commands(self, datasets) -> None:
        """Add ``data melodies``: the Essen folk songs as ABC text, split by tune."""
        p = datasets.add_parser(
            "melodies",
            help="folk melodies in ABC notation (music21's Essen corpus), split by tune",
            description="Write train/valid/test.txt of normalised ABC tunes (X:, M:, L:, K: "
            "and the music; one blank line between tunes) from music21's Essen folk songs.",
        )
        p.add_argument(
            "--out",
            default="data/melodies",
            metavar="DIR",
            help="output directory (default: %(default)s)",
        )
        p.set_defaults(func=_cmd_data_melodies)

    def sample(self, bundle: Bundle, args: argparse.Namespace) -> Iterator[str]:
        """The prompt, then each sampled token as text, as soon as it is drawn.

        Word models stop at ``<eos>`` (the end of the line) or ``args.max_tokens``;
        ``args.no_unk`` keeps ``<unk>`` out of the sample. With ``args.abc`` or
        ``args.midi``, a char model continues a tune to its end and writes the files
        (:meth:`sample_tune`).
        """
        if getattr(args, "abc", None) or getattr(args, "midi", None):
            yield from self.sample_tune(bundle, args)
        else:
            yield from self._stream(bundle, args, args.prompt, args.seed)

    def sample_tune(self, bundle: Bundle, args: argparse.Namespace) -> Iterator[str]:
        """Continue a tune from ``args.prompt``, stop at its end, write ``.abc`` and ``.mid``.

        The model first reads a blank line, as before every tune in its training file;
        the tune ends at the next blank line. A tune that is not valid ABC (or that
        music21 cannot read) raises :class:`TextrnnError` and writes nothing, unless
        ``args.abc_retries`` allows trying the next seeds. Notes go to stderr.
        """
        from textrnn import music  # imports music21 when the tune is written

        if bundle.config.level != "char":
            raise TextrnnError("--abc and --midi need a char-level model trained on tunes")
        abc_path = Path(args.abc) if args.abc else Path(args.midi).with_suffix(".abc")
        midi_path = Path(args.midi) if args.midi else abc_path.with_suffix(".mid")
        prompt = music.normalize_prompt(args.prompt)
        for attempt in range(max(args.abc_retries, 0) + 1):
            seed = args.seed + attempt
            text, held = "", ""  # held: newlines not shown yet (a tune's end is not shown)
            for piece in self._stream(bundle, args, prompt, seed, context="\n\n"):
                text += piece
                end = music.end_of_tune(text)
                if end is not None:
                    text = text[:end]
                    break
                if piece == "\n":
                    held += piece
                else:
                    yield held + piece
                    held = ""
            else:
                print(f"\n(reached --max-tokens {args.max_tokens} before the tune's end)",
                      file=sys.stderr)
            try:
                tune = music.tune_from_text(text)
                summary = music.write_midi(tune.text, midi_path)
            except DataError as err:
                if attempt < args.abc_retries:
                    print(f"\nseed {seed}: not valid ABC ({err}); trying seed {seed + 1}",
                          file=sys.stderr)
                    yield "\n"
                    continue
                raise TextrnnError(
                    f"seed {seed}: the sampled tune is not valid ABC: {err}; nothing written "
                    "(--abc-retries N tries the next N seeds)"
                ) from None
            title = f"textrnn sample, seed {seed}"
            abc_path.write_text(music.abc_file_text(tune, title), encoding="utf-8")
            print(f"\nwrote {abc_path} and {midi_path}: {summary.notes} notes, "
                  f"{summary.seconds:.1f} s at 120 quarter notes a minute", file=sys.stderr)
            return

    def _stream(
        self, bundle: Bundle, args: argparse.Namespace, prompt: str, seed: int, context: str = ""
    ) -> Iterator[str]:
        """Yield ``prompt``, then each sampled token's text; the model reads ``context`` first."""
        level, vocab = bundle.config.level, bundle.vocabs["tokens"]
        prompt_tokens = TOKENIZERS[level](prompt) or tokenize_lines("\n", level)
        context_tokens = TOKENIZERS[level](context)
        generator = torch.Generator().manual_seed(seed)
        # <pad> and <bos> never occur in text; <eos> is a char model's unseen special;
        # <unk> stands for real (rare) words, so it goes only when asked.
        never = {vocab.pad_id, vocab.bos_id} | ({vocab.eos_id} if level == "char" else set())
        if args.no_unk:
            never.add(vocab.unk_id)
        ids = bundle.model.generate(
            vocab.encode(context_tokens + prompt_tokens),
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            top_k=args.top_k or None,
            generator=generator,
            exclude_ids=sorted(i for i in never if i is not None),
            stop_id=vocab.eos_id if level == "word" else None,
        )
        tokens = list(prompt_tokens)
        shown = detokenize(tokens, level)
        yield shown
        for next_id in ids:
            tokens.append(vocab.itos[next_id])
            text = detokenize(tokens, level)  # appending a token only appends text
            yield text[len(shown) :]
            shown = text


def _cmd_data_melodies(args: argparse.Namespace) -> int:
    """``data melodies``: write train/valid/test.txt of ABC tunes, split by tune."""
    skipped: list[DataError] = []
    for split, (path, tunes) in prepare_melodies(args.out, skipped=skipped).items():
        print(f"{split}: {path} ({tunes} tunes, {path.stat().st_size} bytes)")
    if skipped:
        print(f"skipped {len(skipped)} tunes that are not in the supported ABC:", file=sys.stderr)
        for err in skipped:
            print(f"  {err}", file=sys.stderr)
    return 0
