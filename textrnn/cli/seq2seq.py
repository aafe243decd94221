"""``train seq2seq``, its ``eval`` flags and ``translate``: flags and output over
:mod:`textrnn.pipelines.seq2seq`.

::

    textrnn data bible --src en-bbe --tgt fr-lsg        # every verse: data/bible/en-bbe_fr-lsg
    textrnn train seq2seq --data data/bible/en-bbe_fr-lsg/train.tsv --out runs/mt \
        --max-minutes 10 --budget-clock cpu
    textrnn eval --checkpoint runs/mt/best.pt --data data/bible/en-bbe_fr-lsg/test.tsv --beam 5
    textrnn translate --checkpoint runs/mt/best.pt "At the first God made the heaven and the earth."
    textrnn translate --checkpoint runs/mt/best.pt < english.txt > french.txt
"""

from __future__ import annotations

import argparse
import sys
import typing

from textrnn.cli import common, flags
from textrnn.errors import TextrnnError

# The model, layer and pipeline modules import torch: each function below imports what it
# uses, so that building the parser (textrnn --help) does not.
if typing.TYPE_CHECKING:
    from textrnn.checkpoint import Bundle

TASK = "seq2seq"
# = textrnn.pipelines.seq2seq's NO_REPEAT_NGRAM and COVERAGE_PENALTY (it imports torch)
NO_REPEAT_NGRAM, COVERAGE_PENALTY = 4, 0.0
HELP = "translation on a TSV of sentence pairs (attention encoder-decoder)"


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """The data and model flags of ``train seq2seq``."""
    from textrnn.layers import IMPLS
    from textrnn.models.seq2seq import ATTENTIONS, CELLS, Seq2SeqConfig
    from textrnn.subword import VOCABS

    parser.add_argument("--valid", metavar="FILE",
                        help="validation pairs (default: valid.tsv beside a train.tsv, "
                             "else the last 5%% of --data)")
    flags.add_config_flags(parser, Seq2SeqConfig,
                           choices={"attention": ATTENTIONS, "cell": CELLS, "impl": IMPLS})
    parser.add_argument("--vocab", choices=VOCABS, default="subword",
                        help="subword (= unigram) or bpe sentencepiece models learnt from the "
                             "training pairs, or word vocabularies (default: %(default)s)")
    parser.add_argument("--vocab-size", type=int, default=4000,
                        help="subword pieces per side, specials included "
                             "(default: %(default)s)")
    parser.add_argument("--max-len", type=int, default=60, metavar="N",
                        help="train on the pairs of at most N tokens (pieces or words) a side; "
                             "0 = all; validation and test are never cut (default: %(default)s)")
    parser.add_argument("--min-count", type=int, default=2,
                        help="--vocab word: drop words seen fewer times in training "
                             "(default: %(default)s)")
    parser.add_argument("--max-vocab", type=int, default=16000,
                        help="--vocab word: most words kept per side, most frequent first "
                             "(default: %(default)s)")
    # Chosen on the validation books for a 10-minute CPU run (docs/results.md): a high
    # learning rate decayed linearly to 0 over the budget (or the 20 epochs).
    parser.set_defaults(batch_size=64, eval_every=500, epochs=20, lr=3e-3, schedule="linear")


def train(args: argparse.Namespace) -> int:
    """``train seq2seq``: build the run through the pipeline, then fit it."""
    from textrnn.models.seq2seq import Seq2SeqConfig
    from textrnn.pipelines import seq2seq

    run = seq2seq.build(args.data, valid=args.valid, vocab=args.vocab,
                        vocab_size=args.vocab_size, min_count=args.min_count,
                        max_vocab=args.max_vocab, max_len=args.max_len,
                        batch_size=args.batch_size, seed=args.seed,
                        **flags.config_kwargs(Seq2SeqConfig, args))
    return common.train(args, run)


def _add_search_flags(group, prefix: str) -> None:
    """The search flags shared by ``eval`` and ``translate``."""
    group.add_argument("--beam", type=int, default=5,
                       help=f"{prefix}beam size; 1 = greedy only (default: %(default)s)")
    group.add_argument("--length-penalty", type=float, default=1.0,
                       help=f"{prefix}rank by log p / length^this; 0 = raw log p "
                            "(default: %(default)s)")
    group.add_argument("--max-output-len", type=int, default=0,
                       help=f"{prefix}most output tokens; 0 = 2 x source length + 10 "
                            "(default: %(default)s)")
    group.add_argument("--no-repeat-ngram", type=int, default=NO_REPEAT_NGRAM, metavar="N",
                       help=f"{prefix}never repeat an N-token n-gram in an output; 0 = off "
                            "(default: %(default)s)")
    group.add_argument("--coverage-penalty", type=float, default=COVERAGE_PENALTY,
                       metavar="BETA",
                       help=f"{prefix}beam search: add BETA x Σ_s log min(attention to s, 1) "
                            "(Wu et al. 2016); 0 = off (default: %(default)s)")
    group.add_argument("--min-output-len", type=int, default=1,
                       help=f"{prefix}fewest output tokens (default: %(default)s: no output is "
                            "empty)")


def add_eval_flags(group: argparse._ArgumentGroup) -> None:
    """The ``eval`` flags for seq2seq checkpoints."""
    _add_search_flags(group, "seq2seq: ")
    group.add_argument("--limit", type=int, default=0,
                       help="seq2seq: evaluate the first N pairs only; 0 = all "
                            "(default: %(default)s)")


def evaluate(bundle: Bundle, args: argparse.Namespace) -> dict:
    """Test loss, BLEU and chrF of ``args.data``, greedy and with ``--beam``."""
    from textrnn.pipelines import seq2seq

    return seq2seq.evaluate(bundle, args.data, beam_size=args.beam, batch_size=args.batch_size,
                            max_len=args.max_output_len or None,
                            length_penalty=args.length_penalty, limit=args.limit or None,
                            no_repeat_ngram=args.no_repeat_ngram, min_len=args.min_output_len,
                            coverage_penalty=args.coverage_penalty,
                            progress=True)


def format_eval(results: dict) -> str:
    """A line per search, then a few example translations."""
    lines = [f"{results['pairs']} pairs  loss {results['loss']:.4f}  ppl {results['ppl']:.2f}"]
    for name in ("greedy", "beam"):
        if name in results:
            r = results[name]
            label = "greedy" if name == "greedy" else f"beam {r['beam_size']}"
            lines.append(f"{label:>8}  BLEU {r['bleu']:6.2f}  chrF {r['chrf']:6.2f}  "
                         f"empty {r.get('empty', 0)}  ({r['seconds']:.0f}s)")
    searched = results.get("beam", results.get("greedy"))
    for ex in searched["examples"] if searched else []:
        lines += ["", f"  source:      {ex['source']}", f"  reference:   {ex['reference']}",
                  f"  translation: {ex['translation']}"]
    return "\n".join(lines)


def _stdin_chunks(size: int):
    """Standard input's lines, ``size`` at a time, without their newlines, as they come."""
    chunk = []
    for line in sys.stdin:
        chunk.append(line.rstrip("\r\n"))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def cmd_translate(args: argparse.Namespace) -> int:
    """``translate``: print one translation per sentence given, or per line of standard
    input (read and translated ``--batch-size`` lines at a time, a blank line for a blank
    line, so the output lines up with a file piped in)."""
    from pathlib import Path

    from textrnn.pipelines import seq2seq

    if Path(args.checkpoint).is_dir():  # a `textrnn export` folder: ONNX Runtime
        from textrnn import runtime

        bundle = runtime.load(args.checkpoint, threads=max(getattr(args, "threads", 1), 1),
                              task=TASK)
    else:
        bundle = common.load(args, task=TASK)
    show = args.show_attention
    if show and len(args.sentences) != 1:
        raise TextrnnError("--show-attention draws one sentence; give exactly one")
    if show and not bundle.model.has_attention:
        raise TextrnnError(f"{args.checkpoint}: this model has no attention to show "
                           "(trained with --attention none)")
    if args.beam < 1:
        raise TextrnnError(f"--beam must be at least 1, got {args.beam}")
    if args.batch_size < 1:
        raise TextrnnError(f"--batch-size must be at least 1, got {args.batch_size}")
    search = dict(beam_size=args.beam, max_len=args.max_output_len or None,
                  length_penalty=args.length_penalty, no_repeat_ngram=args.no_repeat_ngram,
                  min_len=args.min_output_len, coverage_penalty=args.coverage_penalty,
                  batch_size=args.batch_size)
    given = args.sentences and args.sentences != ["-"]
    chunks = [args.sentences] if given else _stdin_chunks(args.batch_size)
    for chunk in chunks:
        # Given sentences must all be text (an empty one is an error); blank input lines
        # get blank output lines.
        texts = chunk if given else [line for line in chunk if line.strip()]
        out = seq2seq.translate(bundle, texts, return_attention=bool(show),
                                **search) if texts else []
        translations = iter(out)
        for line in chunk:
            print(next(translations).text if given or line.strip() else "", flush=not given)
    if show:
        seq2seq.save_attention(show, out[0])
        print(f"attention map: {show}", file=sys.stderr)
    return 0


def add_commands(commands) -> None:
    """``textrnn translate``."""
    tr = commands.add_parser(
        "translate",
        help="translate sentences with a seq2seq checkpoint",
        description="Translate each sentence given (or each line of standard input), one "
        "translation per line.",
    )
    tr.add_argument("--checkpoint", required=True, metavar="PATH",
                    help="a seq2seq checkpoint, or the folder `textrnn export` made of one "
                    "(run with ONNX Runtime: pip install 'textrnn[onnx]')")
    tr.add_argument("sentences", nargs="*", metavar="SENTENCE",
                    help="sentences to translate (default: the lines of standard input)")
    _add_search_flags(tr, "")
    tr.add_argument("--batch-size", type=int, default=32,
                    help="sentences translated together (default: %(default)s)")
    tr.add_argument("--show-attention", metavar="FILE.png", default=None,
                    help="save the attention map of the (one) sentence as a PNG")
    flags.add_device_flags(tr)
    tr.set_defaults(func=cmd_translate)
