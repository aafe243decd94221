"""A small CoNLL corpus the tagger tests learn from in seconds, and a model over it."""

from __future__ import annotations

from pathlib import Path

import torch

from textrnn import models
from textrnn.data.conll import parse_conll
from textrnn.data.tagger_batches import build_vocabs
from textrnn.models.tagger import TaggerConfig
from textrnn.pipelines.tagger import batches

# Two people, a place and an organisation, in a few patterns the model can learn fast.
NAMES = ["Vincent", "Jules", "Mia", "Butch", "Marsellus"]
PLACES = ["Paris", "Berlin", "Rome"]
ORGS = ["Acme", "Globex"]


def corpus(n: int, seed: int) -> str:
    """n sentences in CoNLL columns (word POS chunk tag), BIO2 tags."""
    g = torch.Generator().manual_seed(seed)

    def pick(xs):
        return xs[int(torch.randint(len(xs), (1,), generator=g))]

    lines = ["-DOCSTART- -X- -X- O", ""]
    for i in range(n):
        a, b = pick(NAMES), pick(NAMES)
        rows = [(a, "B-PER"), ("and", "O"), (b, "B-PER"), ("went", "O"), ("to", "O")]
        rows += [(pick(PLACES), "B-LOC")] if i % 2 else [("New", "B-LOC"), ("York", "I-LOC")]
        rows += [("with", "O"), (pick(ORGS), "B-ORG"), ("Corp", "I-ORG"), (".", "O")]
        lines += [f"{w} NNP I-NP {t}" for w, t in rows] + [""]
    return "\n".join(lines)


def write_conll_dir(folder: Path) -> Path:
    """train.txt (60 sentences), valid.txt (10) and test.txt (10) in CoNLL columns."""
    for name, n, seed in (("train", 60, 0), ("valid", 10, 1), ("test", 10, 2)):
        (folder / f"{name}.txt").write_text(corpus(n, seed))
    return folder


def tiny(**overrides):
    """A small model and batches over the tiny corpus, the same for the same overrides."""
    sentences = parse_conll(corpus(60, 0).splitlines())
    vocabs = build_vocabs(sentences, lowercase=True, zero_digits=True)
    settings = dict(word_embedding_size=16, char_embedding_size=8, char_hidden_size=8,
                    hidden_size=16, dropout=0.0)
    settings.update(overrides)
    config = TaggerConfig(vocab_size=len(vocabs["words"]), num_chars=len(vocabs["chars"]),
                          tags=list(vocabs["tags"].itos), **settings)
    torch.manual_seed(0)
    model = models.build("tagger", config, vocabs)
    return model, vocabs, batches(sentences, vocabs, config, batch_size=16)
