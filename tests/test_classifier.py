"""The classifier: exact on ragged batches, learns, round-trips; its CLI commands end to end."""

from __future__ import annotations

import csv
import io
import json
import random
import sys
from pathlib import Path

import pytest
import torch
from training import train_steps

from textrnn import checkpoint, models
from textrnn.checkpoint import load
from textrnn.cli import classifier as classifier_cli
from textrnn.cli import main
from textrnn.data.classifier_batches import make_batches
from textrnn.data.sentiment import LabeledText
from textrnn.models.classifier import Classifier, ClassifierConfig
from textrnn.pipelines import classifier
from textrnn.vocab import Vocab

POSITIVE = ["great", "wonderful", "superb", "moving", "funny"]
NEGATIVE = ["awful", "boring", "dull", "terrible", "waste"]
FILLER = ["the", "film", "was", "a", "plot", "and", "actors", "story", "this", "it"]


def _sentence(rng: random.Random, polarity: int) -> str:
    """Filler words with 1-2 cue words; polarity 0..4 (0, 1 negative, 2 neutral, 3, 4 positive)."""
    words = [rng.choice(FILLER) for _ in range(rng.randint(3, 25))]
    cues = {0: NEGATIVE * 2, 1: NEGATIVE, 2: [], 3: POSITIVE, 4: POSITIVE * 2}[polarity]
    strength = 2 if polarity in (0, 4) else 1
    for _ in range(strength if cues else 0):
        words.insert(rng.randrange(len(words) + 1), rng.choice(cues))
    if polarity in (0, 4):  # strong texts also say "very"
        words.insert(rng.randrange(len(words) + 1), "very")
    return " ".join(words)


def _write(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "source"])
        writer.writerows(rows)
    return path


@pytest.fixture
def reviews(tmp_path) -> Path:
    """train.csv / valid.csv / test.csv of toy neg/pos texts from two sources."""
    rng = random.Random(0)
    for split, n in (("train", 240), ("valid", 60), ("test", 80)):
        rows = []
        for i in range(n):
            label = i % 2
            text = _sentence(rng, 4 * label if i % 3 else 1 + 2 * label)
            rows.append((text, ("neg", "pos")[label], ("long", "short")[i % 4 == 0]))
        _write(tmp_path / f"{split}.csv", rows)
    return tmp_path


@pytest.fixture
def ratings(tmp_path) -> Path:
    """train.csv / test.csv of toy texts rated 1-5."""
    rng = random.Random(1)
    for split, n in (("train", 250), ("test", 60)):
        rows = [(_sentence(rng, i % 5), str(i % 5 + 1), "toy") for i in range(n)]
        _write(tmp_path / f"r{split}.csv", rows)
    return tmp_path


def _model(**overrides) -> Classifier:
    torch.manual_seed(0)
    config = ClassifierConfig(vocab_size=50, num_classes=3, embedding_size=8, hidden_size=6,
                              dropout=0.0, **overrides)
    return models.build("classifier", config, {}).eval()


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("pooling", ["max", "mean", "last"])
def test_ragged_batch_gives_each_text_its_own_logits(cell, pooling):
    model = _model(cell=cell, pooling=pooling, num_layers=2)
    texts = [torch.randint(4, 50, (n,)) for n in (7, 2, 11, 1)]
    ids = torch.zeros(len(texts), 11, dtype=torch.long)  # (B, T), <pad> = 0 ...
    ids[:, :] = 17  # ... but models must ignore padding by lengths, whatever id it holds
    for b, t in enumerate(texts):
        ids[b, : len(t)] = t
    lengths = torch.tensor([len(t) for t in texts])
    batched = model({"ids": ids, "lengths": lengths})  # (B, C)
    for b, t in enumerate(texts):
        alone = model({"ids": t[None], "lengths": torch.tensor([len(t)])})  # (1, C)
        torch.testing.assert_close(batched[b], alone[0], atol=1e-6, rtol=1e-5)


def test_empty_text_gets_finite_scores():
    for pooling in ("max", "mean", "last"):
        logits = _model(pooling=pooling)({"ids": torch.zeros(2, 3, dtype=torch.long),
                                          "lengths": torch.tensor([0, 3])})
        assert torch.isfinite(logits).all()


def test_bag_of_words_mlp_ignores_order_and_padding():
    model = _model(model="mlp", mlp_hidden=[16], bag="count")
    ids = torch.tensor([[5, 6, 7, 5, 9, 9]])
    scores = model({"ids": ids, "lengths": torch.tensor([4])})
    shuffled = model({"ids": torch.tensor([[7, 5, 6, 5]]), "lengths": torch.tensor([4])})
    torch.testing.assert_close(scores, shuffled)
    different = model({"ids": torch.tensor([[7, 5, 6, 6]]), "lengths": torch.tensor([4])})
    assert not torch.allclose(scores, different)
    with pytest.raises(ValueError, match="bag"):
        _model(model="mlp", bag="tfidf")


def _toy_batches(n: int = 64):
    rng = random.Random(0)
    examples = [LabeledText(_sentence(rng, 4 * (i % 2)), ("neg", "pos")[i % 2]) for i in range(n)]
    words = Vocab.from_tokens([e.text.split() for e in examples])
    labels = Vocab(["neg", "pos"], specials=())
    return examples, words, labels


@pytest.mark.parametrize("kind", ["rnn", "mlp"])
def test_loss_goes_down_and_predictions_round_trip(kind, tmp_path):
    examples, words, labels = _toy_batches()
    config = ClassifierConfig(vocab_size=len(words), num_classes=2, model=kind,
                              embedding_size=16, hidden_size=16, mlp_hidden=[16], dropout=0.0)
    torch.manual_seed(0)
    model = models.build("classifier", config, {"words": words, "labels": labels})
    batches = make_batches(examples, words, labels, 16, "toy", shuffle=True, seed=0)
    before = model.evaluate(batches)
    train_steps(model, batches, epochs=4, lr=0.02)
    after = model.evaluate(batches)
    assert after["val_loss"] < 0.5 * before["val_loss"] and after["val_acc"] >= 0.9
    checkpoint.save(tmp_path / "m.pt", model=model)
    bundle = load(tmp_path / "m.pt", task="classifier")
    assert bundle.vocabs == {"words": words, "labels": labels}
    batch = next(iter(batches))
    assert bundle.model.predict(batch) == model.predict(batch)
    probs = torch.tensor([p["probs"] for p in model.predict(batch)])
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(probs)))


def _train(data: Path, run: Path, *extra: str) -> None:
    assert main(["train", "classifier", "--data", str(data), "--out", str(run),
                 "--threads", "1", "--embedding-size", "16", "--hidden-size", "16",
                 "--mlp-hidden", "16", "--batch-size", "16", *extra]) == 0


def test_cli_train_eval_classify(reviews, tmp_path, capsys):
    run = tmp_path / "run"
    _train(reviews / "train.csv", run, "--epochs", "4", "--max-tokens", "12",
           "--head-tokens", "4", "--lr", "0.01")
    for name in ("best.pt", "last.pt", "metrics.jsonl"):
        assert (run / name).is_file()
    bundle = load(run / "best.pt")
    assert bundle.config.max_tokens == 12 and bundle.config.label_counts == [120, 120]
    assert bundle.metrics["val_acc"] > 0.8  # valid.csv beside --data was used
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data",
                 str(reviews / "test.csv"), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results["results"]) == {"all", "long", "short"}
    everything = results["results"]["all"]
    assert everything["examples"] == 80 and everything["accuracy"] > 0.8
    assert everything["majority_accuracy"] == pytest.approx(0.5)
    assert "mae" not in everything  # two classes: no MAE
    parts = results["results"]["long"], results["results"]["short"]
    assert sum(p["examples"] for p in parts) == 80
    assert sum(p["accuracy"] * p["examples"] for p in parts) / 80 == pytest.approx(
        everything["accuracy"], abs=1e-4)  # --json rounds to 4 decimals
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data",
                 str(reviews / "test.csv"), "--sources", "short"]) == 0
    table = capsys.readouterr().out
    assert "majority (neg)" in table and "long" not in table
    assert table.splitlines()[1].split()[:2] == ["all", "20"]  # only the short texts

    assert main(["classify", "--checkpoint", str(run / "best.pt"),
                 "the film was very great and superb", "awful boring waste"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["pos", "neg"]
    assert "neg 0." in lines[0] and "pos 0." in lines[0]
    assert main(["classify", "--checkpoint", str(run / "best.pt"), "--json", "dull"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["label"] == "neg" and sum(out["probs"].values()) == pytest.approx(1.0, abs=1e-3)


def test_cli_mlp_ratings_report_mae_and_stdin(ratings, tmp_path, capsys, monkeypatch):
    run = tmp_path / "mlp"
    _train(ratings / "rtrain.csv", run, "--model", "mlp", "--epochs", "6", "--lr", "0.01",
           "--bag", "count")
    bundle = load(run / "best.pt")
    assert bundle.config.ordinal and bundle.vocabs["labels"].itos == ["1", "2", "3", "4", "5"]
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data",
                 str(ratings / "rtest.csv"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["results"]["all"]
    assert row["majority_accuracy"] == pytest.approx(0.2)  # 5 balanced classes
    assert row["accuracy"] > 0.5 and row["mae"] < row["majority_mae"]
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data",
                 str(ratings / "rtest.csv")]) == 0
    assert "MAE" in capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.StringIO("very great superb moving\n\n"))
    assert main(["classify", "--checkpoint", str(run / "best.pt")]) == 0
    label, probs, text = capsys.readouterr().out.strip().split("\t")
    assert text == "very great superb moving" and probs.count(" 0.") + probs.count(" 1.") == 5


def test_cli_data_reviews_from_a_csv(tmp_path, capsys):
    src = _write(tmp_path / "combined.csv",
                 [(f"text {i}<br />more", str(i % 2), "imdb") for i in range(50)])
    assert main(["data", "reviews", "--from", str(src), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "train:" in out and "neg" in out and "pos" in out
    assert (tmp_path / "out" / "test.csv").is_file()


def test_user_errors_are_one_line_naming_file_and_line(reviews, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine film,pos\nno label field\n")
    assert main(["train", "classifier", "--data", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}:3:" in err and "Traceback" not in err

    run = tmp_path / "run"
    _train(reviews / "train.csv", run, "--max-steps", "2")
    unknown = _write(tmp_path / "unknown.csv", [("fine", "pos", ""), ("meh", "mixed", "")])
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(unknown)]) == 2
    err = capsys.readouterr().err
    assert f"{unknown}:3: label 'mixed' was not seen in training" in err
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data",
                 str(reviews / "test.csv"), "--sources", "nowhere"]) == 2
    assert "no texts from nowhere" in capsys.readouterr().err
    one_label = _write(tmp_path / "one.csv", [("a", "pos", "")] * 30)
    assert main(["train", "classifier", "--data", str(one_label), "--out", str(run)]) == 2
    assert "at least 2 labels" in capsys.readouterr().err
    monkeypatch_stdin = io.StringIO("")
    sys_stdin, sys.stdin = sys.stdin, monkeypatch_stdin
    try:
        assert main(["classify", "--checkpoint", str(run / "best.pt")]) == 2
    finally:
        sys.stdin = sys_stdin
    assert "nothing to classify" in capsys.readouterr().err


def test_task_contract():
    assert (Classifier.best_metric, Classifier.best_mode) == ("val_acc", "max")
    assert classifier_cli.TASK == Classifier.task == "classifier"
    for name in ("add_train_flags", "train", "add_eval_flags", "evaluate", "format_eval",
                 "add_commands"):
        assert callable(getattr(classifier_cli, name))
    for name in ("build", "evaluate", "classify"):
        assert callable(getattr(classifier, name))


def test_flags_map_onto_the_config_and_the_pipeline_builds_it(reviews):
    from textrnn.cli import build_parser, flags

    args = build_parser().parse_args([
        "train", "classifier", "--data", str(reviews / "train.csv"), "--out", "unused",
        "--cased", "--mlp-hidden", "0", "--model", "mlp", "--no-bidirectional",
        "--max-tokens", "0", "--bag", "log"])
    kwargs = flags.config_kwargs(ClassifierConfig, args)
    assert kwargs["lower"] is False and kwargs["mlp_hidden"] == [] and kwargs["model"] == "mlp"
    assert kwargs["bidirectional"] is False and kwargs["max_tokens"] == 0
    assert not {"vocab_size", "num_classes", "ordinal", "label_counts"} & set(kwargs)
    run = classifier.build(args.data, batch_size=8, seed=0, **kwargs)
    config = run.model.config
    assert (config.lower, config.mlp_hidden, config.bag, config.ordinal) == (False, [], "log",
                                                                            False)
    assert config.label_counts == [120, 120] and run.model.vocabs["labels"].itos == ["neg", "pos"]
    assert sum(len(b["label"]) for b in run.val_data) == 60  # valid.csv beside the data
    assert sum(len(b["label"]) for b in run.train_data) == 240
