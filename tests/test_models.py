"""One round trip for every model in MODELS: build from a mini corpus, train a few steps
(the loss goes down), save, load in a fresh object, and predict the same.

Every registered model must have a case here (``test_every_model_has_a_case``), so a
new task cannot skip the contract.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from textrnn import checkpoint
from textrnn.device import eval_mode
from textrnn.errors import CheckpointError
from textrnn.models import MODELS, TaskModel
from textrnn.pipelines import Run
from textrnn.train import TrainConfig, fit

RESOURCES = Path(__file__).parent / "resources"


def build_qa() -> Run:
    from textrnn.pipelines import qa

    return qa.build(RESOURCES / "babi_tiny.txt", batch_size=4, seed=0, embedding_size=16)


def build_lm() -> Run:
    from textrnn.pipelines import lm

    return lm.build(RESOURCES / "text_tiny.txt", batch_size=4, bptt=16, seed=0,
                    embedding_size=16, hidden_size=32, num_layers=1, dropout=0.0)


def build_tagger() -> Run:
    from textrnn.pipelines import tagger

    return tagger.build(RESOURCES / "conll_tiny.txt", batch_size=2, seed=0,
                        word_embedding_size=8, char_embedding_size=4, char_hidden_size=4,
                        hidden_size=8, dropout=0.0, crf=True)


def build_classifier() -> Run:
    from textrnn.pipelines import classifier

    return classifier.build(RESOURCES / "sentiment_tiny.csv", batch_size=4, seed=0,
                            embedding_size=8, hidden_size=8, dropout=0.0)


def build_seq2seq() -> Run:
    from textrnn.pipelines import seq2seq

    return seq2seq.build(RESOURCES / "pairs_tiny.tsv", batch_size=4, seed=0,
                         embedding_size=8, hidden_size=16, dropout=0.0, label_smoothing=0.0)


CASES = {"qa": build_qa, "lm": build_lm, "tagger": build_tagger,
         "classifier": build_classifier, "seq2seq": build_seq2seq}


def test_every_model_has_a_case():
    assert set(CASES) == set(MODELS)


def batch_loss(model, batch) -> float:
    with eval_mode(model):
        return float(model.loss(batch))


@pytest.mark.parametrize("task", sorted(CASES))
def test_train_save_load_predict_the_same(task, tmp_path):
    torch.manual_seed(0)
    run = CASES[task]()
    model = run.model
    assert isinstance(model, TaskModel) and model.task == task
    assert isinstance(model, MODELS[task]) and model.vocabs
    first = next(iter(run.train_data))
    before = batch_loss(model, first)
    cfg = TrainConfig(epochs=1000, max_steps=30, lr=0.02, seed=0, threads=1, eval_every=15)
    result = fit(model, run.train_data, run.val_data, cfg, tmp_path)
    assert result["step"] == 30 and result["best_metric"] == model.best_metric
    assert batch_loss(model, first) < before  # it learned something from its batches

    bundle = checkpoint.load(tmp_path / "last.pt", task=task)
    assert bundle.model is not model and bundle.task == task
    assert {k: v.itos for k, v in bundle.vocabs.items()} == {
        k: v.itos for k, v in model.vocabs.items()}
    val = next(iter(run.val_data))
    with eval_mode(model):
        assert bundle.model.predict(val) == model.predict(val)
    other = next(t for t in sorted(MODELS) if t != task)
    with pytest.raises(CheckpointError, match=f"a '{task}' checkpoint, not a '{other}' one"):
        checkpoint.load(tmp_path / "last.pt", task=other)
