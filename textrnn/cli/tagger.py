"""``textrnn train tagger``, the tagger's ``eval`` flags and ``textrnn tag``: flags and
printing over :mod:`textrnn.pipelines.tagger`.

::

    textrnn data conll2003 --out data/conll2003
    textrnn train tagger --data data/conll2003/train.txt --out runs/ner --crf --threads 1
    textrnn eval --checkpoint runs/ner/best.pt --data data/conll2003/test.txt
    textrnn tag --checkpoint runs/ner/best.pt "Vincent and Jules take the place"
"""

from __future__ import annotations

import argparse
import json

from textrnn.cli import common, flags
from textrnn.data.conll import bio_spans
from textrnn.tokenize import word_tokenize

# The model and pipeline modules import torch: each function below imports what it uses,
# so that building the parser (textrnn --help) does not.

TASK = "tagger"
HELP = "named-entity tagging of CoNLL column files (BiLSTM + chars, softmax or CRF)"

# Where a flag's help says more than its field's comment: how it meets the other flags.
_HELP = {
    "context": "what the BiLSTM reads as one sequence: each sentence, or a whole document "
               "(-DOCSTART- to -DOCSTART-); --batch-size then counts documents",
    "lm_weight": "weight of a second, language-model objective (Rei 2017): the BiLSTM's "
                 "forward half predicts the next word, its backward half the previous one; "
                 "0.1 in the paper; needs --num-layers 1; 0 = off",
}


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """The data flags of ``train tagger``, and one per :class:`TaggerConfig` setting."""
    from textrnn.models.tagger import CHAR_ENCODERS, CONTEXTS, TaggerConfig

    parser.add_argument("--valid", metavar="FILE",
                        help="validation file (default: valid.txt beside --data if there, "
                             "else the last 10%% of its sentences)")
    parser.add_argument("--train-also", action="append", default=[], metavar="FILE",
                        help="another CoNLL file to train on as well (repeatable), e.g. "
                             "valid.txt for a final model trained on train+valid, as is "
                             "usual for CoNLL-2003 test figures; when it is the "
                             "validation file, validation scores are no longer held out "
                             "and last.pt is the model to take")
    flags.add_config_flags(parser, TaggerConfig, skip=("tags",),
                           choices={"char_encoder": CHAR_ENCODERS, "context": CONTEXTS},
                           help=_HELP)
    parser.add_argument("--min-count", type=int, default=1,
                        help="words seen fewer times in training become <unk> "
                             "(default: %(default)s)")
    parser.add_argument("--unk-replace", type=float, default=0.5,
                        help="probability that a training singleton is read as <unk> "
                             "(word dropout; default: %(default)s)")
    parser.add_argument("--word-dropout", type=float, default=0.0,
                        help="probability that any training word is read as <unk>, so "
                             "that characters and context learn to carry unseen words "
                             "(default: %(default)s)")
    # Adam on batches of 32 sentences, the rate decaying linearly to 0, the gradient
    # clipped at 5 as in Lample et al. On CoNLL-2003 (CRF, CNN characters, 2 epochs) a
    # rate of 2e-3 reached 71.5 validation F1, 5e-3 79.0, 1e-2 81.3 and 2e-2 80.8.
    parser.set_defaults(lr=1e-2, grad_clip=5.0, epochs=10, batch_size=32, schedule="linear")


def train(args: argparse.Namespace) -> int:
    """``train tagger``: build the run with the pipeline, then fit it."""
    from textrnn.models.tagger import TaggerConfig
    from textrnn.pipelines import tagger

    run = tagger.build(args.data, valid=args.valid, train_also=args.train_also,
                       min_count=args.min_count, unk_replace=args.unk_replace,
                       word_dropout=args.word_dropout, batch_size=args.batch_size,
                       seed=args.seed, **flags.config_kwargs(TaggerConfig, args))
    return common.train(args, run)


def _add_ensemble_flag(parser, prefix: str = "") -> None:
    parser.add_argument("--ensemble", action="append", default=[], metavar="FILE",
                        help=f"{prefix}another tagger checkpoint of the same data, whose scores "
                             "are averaged with --checkpoint's (Viterbi over the mean); "
                             "repeat for more")


def _add_agreement_flag(parser, prefix: str, scope: str) -> None:
    parser.add_argument("--agreement", type=float, default=0.0, metavar="BETA",
                        help=f"{prefix}pull a word's tags towards the entity type it has "
                             f"elsewhere in {scope}: add BETA times the mean type "
                             "probabilities of the word's occurrences to its tag scores "
                             "(4 was best on CoNLL-2003 validation; default: 0, off)")


def add_eval_flags(group: argparse._ArgumentGroup) -> None:
    """``--ensemble`` and ``--agreement``; ``--data`` names a CoNLL file."""
    _add_ensemble_flag(group, "tagger: ")
    _add_agreement_flag(group, "tagger: ", "each -DOCSTART- document")


def evaluate(bundle, args: argparse.Namespace) -> dict:
    """Entity-level scores on the CoNLL file ``--data``, with any ``--ensemble`` members."""
    from textrnn.pipelines import tagger

    bundle = tagger.join_ensemble(bundle, args.ensemble, first=args.checkpoint)
    return tagger.evaluate(bundle, args.data, agreement=args.agreement,
                           batch_size=args.batch_size)


def format_eval(results: dict) -> str:
    """A per-type table (precision, recall, F1, entities), then the overall line."""
    lines = [f"{'type':<8} {'precision':>9} {'recall':>7} {'f1':>7} {'entities':>8}"]
    for name, r in [*results["types"].items(), ("overall", results)]:
        lines.append(f"{name:<8} {r['precision']:>9.2%} {r['recall']:>7.2%} "
                     f"{r['f1']:>7.2%} {r['support']:>8}")
    lines.append(f"entity F1 {results['f1']:.2%} (seqeval, conlleval reading; micro over "
                 f"types), token accuracy {results['token_accuracy']:.2%}, "
                 f"{results['sentences']} sentences, {results['output']} output"
                 + (f", ensemble of {results['models']}" if results.get("models", 1) > 1
                    else ""))
    return "\n".join(lines)


def cmd_tag(args: argparse.Namespace) -> int:
    """``tag``: print each sentence's tokens with their tags, then its entities."""
    from textrnn.pipelines import tagger

    bundle = common.load(args, task=TASK)
    bundle = tagger.join_ensemble(bundle, args.ensemble, first=args.checkpoint)
    # --pretokenized: the user's tokens as they are (as in the training file's first column)
    split = str.split if args.pretokenized else word_tokenize
    token_lists = [split(t) for t in common.texts_or_stdin(args.texts, "tag")]
    tagged = tagger.tag(bundle, token_lists, agreement=args.agreement)
    for tokens, tags in zip(token_lists, tagged, strict=True):
        spans = bio_spans(tags)
        if args.json:  # one object per sentence, as classify --json
            entities = [{"type": kind, "start": start, "end": end,
                         "text": " ".join(tokens[start:end])} for kind, start, end in spans]
            print(json.dumps({"tokens": tokens, "tags": tags, "entities": entities},
                             ensure_ascii=False))
            continue
        print(" ".join(f"{w}/{t}" for w, t in zip(tokens, tags, strict=True)))
        for kind, start, end in spans:
            print(f"  {kind:<5} {' '.join(tokens[start:end])}")
        if not spans:
            print("  (no entities)")
    return 0


def add_commands(commands) -> None:
    """``textrnn tag``."""
    p = commands.add_parser(
        "tag", help="tag named entities in sentences with a tagger checkpoint",
        description="Print each sentence's tokens with their tags, then its entities. "
                    "Sentences come from the arguments, or one per line on standard input; "
                    "a model trained with --context document reads them as one document.")
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="a tagger checkpoint")
    p.add_argument("texts", nargs="*", metavar="SENTENCE",
                   help="sentences to tag (default: read lines from standard input)")
    _add_ensemble_flag(p)
    _add_agreement_flag(p, "", "the sentences given, as one document")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per sentence: tokens, tags and entities (token "
                        "spans, end exclusive)")
    p.add_argument("--pretokenized", action="store_true",
                   help="the sentences are tokens separated by spaces: split them there "
                        "only (default: the word tokenizer, which keeps URLs, e-mail "
                        "addresses, @user, #tag and U.S. whole)")
    flags.add_device_flags(p)
    p.set_defaults(func=cmd_tag)
