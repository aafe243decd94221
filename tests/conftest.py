"""Shared fixtures: explicit seeds, a temporary run directory, the tiny text corpus."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

RESOURCES = Path(__file__).parent / "resources"

# The test models are tiny, so threads buy nothing; and on a busy machine (CI, several
# suites at once) OpenMP threads waiting on each other made one tiny LSTM step ~1000x slower.
torch.set_num_threads(1)


@pytest.fixture
def seed() -> int:
    """Seed every generator the code under test may draw from, and return the seed."""
    value = 1234
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)
    return value


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A fresh, not yet existing directory for one training run's outputs."""
    return tmp_path / "run"


@pytest.fixture
def tiny_text() -> Path:
    """Path of a 14-line public-domain text (Shakespeare's Sonnet 18)."""
    return RESOURCES / "text_tiny.txt"


@pytest.fixture
def make_tiny_lm(tiny_text: Path):
    """Factory: ``make(dropout=0.3, cell="lstm") -> (model, vocabs, train_batches, val_batches)``.

    A small char LSTM over the tiny text (train: lines 1-12, valid: 13-14), built
    from the same seed every call so that two calls give identical models.
    """
    from textrnn.data.text import StreamBatches, read_text, tokenize_lines
    from textrnn.models import build
    from textrnn.models.lm import LMConfig
    from textrnn.vocab import Vocab

    lines = read_text(tiny_text).splitlines(keepends=True)
    train_tokens = tokenize_lines("".join(lines[:12]), "char")
    val_tokens = tokenize_lines("".join(lines[12:]), "char")
    vocab = Vocab.from_tokens([train_tokens])

    def make(dropout: float = 0.3, cell: str = "lstm", num_layers: int = 2):
        torch.manual_seed(0)
        config = LMConfig(
            vocab_size=len(vocab),
            level="char",
            cell=cell,
            embedding_size=16,
            hidden_size=32,
            num_layers=num_layers,
            dropout=dropout,
        )
        train = StreamBatches(torch.tensor(vocab.encode(train_tokens)), batch_size=4, bptt=16)
        val = StreamBatches(torch.tensor(vocab.encode(val_tokens)), batch_size=2, bptt=16)
        return build("lm", config, {"tokens": vocab}), {"tokens": vocab}, train, val

    return make


@pytest.fixture(scope="session")
def qa_checkpoint(tmp_path_factory) -> Path:
    """A small QA model (the default arch, QRN) trained on generated 'Where is X?' stories
    (~25 s once per session).

    15 epochs of 6,000 questions: 100% validation accuracy, and the transcript of issue
    19 (names and places it never saw, read as entity slots) answered right; with
    3,000 questions it answered "Where is Alice?" with the other new place.
    """
    from textrnn.cli import main
    from textrnn.data.babi_gen import write_generated

    root = tmp_path_factory.mktemp("qa")
    write_generated(root / "gen", num_train=6000, num_test=300, seed=0, kinds=(1,))
    argv = ["train", "qa", "--data", str(root / "gen"), "--out", str(root / "run"),
            "--epochs", "15", "--threads", "1", "--seed", "0"]
    assert main(argv) == 0
    return root / "run" / "best.pt"
