"""The tagger task end to end: batches, model round trip, train/eval/tag commands."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tagger_corpus import corpus, tiny, write_conll_dir
from training import train_steps

from textrnn import checkpoint, models
from textrnn.cli import main
from textrnn.data.conll import TaggedSentence, parse_conll
from textrnn.data.tagger_batches import build_vocabs
from textrnn.errors import DataError, TextrnnError
from textrnn.models.tagger import TaggerConfig, tag_types, tagging_scores
from textrnn.pipelines import tagger
from textrnn.pipelines.tagger import batches, document_agreement, tag


@pytest.fixture
def conll_dir(tmp_path: Path) -> Path:
    return write_conll_dir(tmp_path)


@pytest.mark.parametrize("overrides", [
    {"crf": True},
    {"crf": False, "char_encoder": "cnn", "case_embedding_size": 4},
    {"crf": True, "char_encoder": "none", "num_layers": 2},
    {"crf": True, "lm_weight": 0.1, "lm_vocab": 8},
])
def test_loss_drops_and_a_checkpoint_predicts_the_same(tmp_path, overrides):
    model, vocabs, data = tiny(**overrides)
    batch = next(iter(data))
    first = model.loss(batch).item()
    train_steps(model, [batch] * 30, lr=0.01)
    assert model.loss(batch).item() < 0.5 * first
    path = checkpoint.save(tmp_path / "m.pt", model=model)
    bundle = checkpoint.load(path, task="tagger")
    assert bundle.vocabs["words"].itos == vocabs["words"].itos
    assert bundle.config == model.config
    assert bundle.model.predict(batch) == model.predict(batch)
    assert [len(p) for p in model.predict(batch)] == batch["lengths"].tolist()


def test_predictions_do_not_depend_on_batch_company():
    """Padding and the other sentences in a batch must not change a sentence's tags."""
    model, vocabs, _ = tiny(crf=True)
    sentences = parse_conll(corpus(20, 3).splitlines())
    alone = [model.predict(next(iter(batches([s], vocabs, model.config, 1))))[0]
             for s in sentences]
    together = {}
    for batch in batches(sentences, vocabs, model.config, batch_size=8):
        for i, path in zip(batch["index"].tolist(), model.predict(batch), strict=True):
            together[i] = path
    assert [together[i] for i in range(len(sentences))] == alone


def test_tagging_scores_count_entities_and_tokens():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    r = tagging_scores(gold, pred)
    # PER right, ORG right once and wrong once (the LOC), LOC missed.
    assert r["types"]["ORG"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3),
                                 "support": 1}
    assert r["types"]["LOC"]["recall"] == 0.0
    assert (r["precision"], r["recall"], r["support"]) == (2 / 3, 2 / 3, 3)
    assert r["token_accuracy"] == 5 / 6  # one token of six has the wrong tag


def test_unknown_tag_in_validation_names_file_and_line(conll_dir):
    (conll_dir / "valid.txt").write_text("Jules B-PER\n\nVienna B-GPE\n")
    with pytest.raises(DataError) as err:
        tagger.build(conll_dir / "train.txt")
    assert str(err.value).startswith(f"{conll_dir / 'valid.txt'}:3: tag 'B-GPE'")


def test_train_also_adds_sentences_words_and_later_documents(conll_dir, caplog):
    extra = conll_dir / "extra.txt"
    extra.write_text("-DOCSTART- -X- -X- O\n\nZed B-PER\nwept O\n\n")
    data = conll_dir / "train.txt"
    plain = tagger.build(data)
    with caplog.at_level(logging.INFO, logger="textrnn"):
        both = tagger.build(data, train_also=[extra, conll_dir / "valid.txt"])
    vocabs = both.model.vocabs
    assert "zed" in vocabs["words"] and "zed" not in plain.model.vocabs["words"]
    assert len(both.train_data.words) == len(plain.train_data.words) + 1 + 10
    # The validation file named in train_also is said to be no longer held out.
    assert "valid.txt is both trained on and the validation file" in caplog.text
    # Each file's documents stay apart: the extra file's first one (numbered 1 in its
    # file, as our last one is in ours) does not join ours.
    document = dict(context="document", max_context_tokens=10000)
    ours = tagger.build(data, **document).train_data
    joined = tagger.build(data, train_also=[extra], **document).train_data
    assert [len(u) for u in ours.units] == [60]
    assert [len(u) for u in joined.units] == [60, 1]


def test_lm_objective_predicts_next_and_previous_true_words():
    model, vocabs, _ = tiny(crf=True, lm_weight=0.5, lm_vocab=6, lm_size=4)
    sentences = parse_conll(corpus(60, 0).splitlines())
    # Even with every input word dropped, the targets are the true words (rare ones <unk>).
    dropped = batches(sentences, vocabs, model.config, 16, shuffle=True, word_dropout=1.0)
    batch = next(iter(dropped))
    true = [vocabs["words"].encode(w.lower() for w in sentences[i].tokens)
            for i in batch["index"].tolist()]
    unk, H = vocabs["words"].unk_id, model.config.hidden_size
    for row, words, n in zip(batch["lm_targets"].tolist(), true, batch["lengths"].tolist(),
                             strict=True):
        assert row[:n] == [w if w < 6 else unk for w in words] and not any(row[n:])
    # The loss, written out token by token: forward state t -> word t+1, backward t -> t-1.
    h = model.encode(batch)  # (B, T, 2H)
    expected = 0.0
    for b, n in enumerate(batch["lengths"].tolist()):
        y = batch["lm_targets"][b]
        for t in range(n):
            for d, s, half in ((0, t + 1, slice(0, H)), (1, t - 1, slice(H, 2 * H))):
                if 0 <= s < n:
                    m = torch.tanh(model.lm_hidden[d](h[b, t, half]))
                    expected += F.cross_entropy(model.lm_output[d](m)[None], y[s][None])
    assert model.lm_loss_sum(h, batch).item() == pytest.approx(expected.item(), rel=1e-5)
    tags = model.loss_sum(model.output(h), batch)
    assert model.loss(batch).item() == pytest.approx(
        (tags + 0.5 * expected).item() / len(batch["lengths"]), rel=1e-5)
    with pytest.raises(ValueError, match="needs num_layers == 1"):
        tiny(lm_weight=0.1, num_layers=2)


def test_document_agreement_gives_a_word_its_type_elsewhere_in_the_document():
    tags = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    records = [TaggedSentence(["Tyson", "won"], [], doc=0),
               TaggedSentence(["TYSON", "lost"], [], doc=0),  # any case is the same word
               TaggedSentence(["Tyson", "lost"], [], doc=1)]
    vocabs = build_vocabs([TaggedSentence(["x"], ["O"])], lowercase=True, zero_digits=True)
    config = TaggerConfig(vocab_size=len(vocabs["words"]), num_chars=len(vocabs["chars"]),
                          tags=tags, hidden_size=4, word_embedding_size=4)
    # softmax output: type probabilities are its softmax
    model = models.build("tagger", config, vocabs).eval()
    data = batches(records, vocabs, config, batch_size=3)
    batch = next(iter(data))
    # Hand-made scores: "Tyson" surely a person in the first sentence; a near tie leaning to
    # a place in the others; "won" and "lost" plain words.
    clear, unsure, plain = [0, 0, 0, 8, 0], [0, 1.2, 0, 1.0, 0], [6, 0, 0, 0, 0]
    rows = {0: [clear, plain], 1: [unsure, plain], 2: [unsure, plain]}
    emissions = torch.tensor([rows[i] for i in batch["index"].tolist()])  # (3, 2, 5)
    scored = [(batch, emissions)]
    by_sentence = {}
    for beta in (0.0, 4.0):
        (_, agreed), = document_agreement(model, scored, data, records, beta)
        paths = model.decode(agreed, batch["lengths"])
        for i, path in zip(batch["index"].tolist(), paths, strict=True):
            by_sentence[beta, i] = [tags[t] for t in path]
    assert [by_sentence[0.0, i][0] for i in range(3)] == ["B-PER", "B-LOC", "B-LOC"]
    # With agreement the second sentence follows the first; the other document does not.
    assert [by_sentence[4.0, i][0] for i in range(3)] == ["B-PER", "B-PER", "B-LOC"]
    assert all(by_sentence[4.0, i][1] == "O" for i in range(3))


def test_train_eval_tag_commands(conll_dir, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    argv = ["train", "tagger", "--data", str(conll_dir / "train.txt"), "--out", str(run),
            "--crf", "--epochs", "5", "--threads", "1", "--hidden-size", "16",
            "--word-embedding-size", "16", "--char-hidden-size", "8", "--dropout", "0.1",
            "--batch-size", "8", "--lr", "0.02", "--unk-replace", "0.2"]
    assert main(argv) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["val_f1"] > 0.9  # the patterns are easy; chance is far below
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data",
                 str(conll_dir / "test.txt"), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results["types"]) == {"LOC", "ORG", "PER"} and results["support"] == 40
    assert results["f1"] > 0.9 and results["output"] == "crf"
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data",
                 str(conll_dir / "test.txt"), "--json", "--agreement", "4"]) == 0
    assert json.loads(capsys.readouterr().out)["f1"] > 0.9  # CRF marginals, documents
    assert main(["tag", "--checkpoint", str(run / "best.pt"), "--agreement", "-1", "Mia"]) == 2
    assert "--agreement is a weight >= 0" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data",
                 str(conll_dir / "test.txt")]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["type", "precision", "recall", "f1", "entities"]
    assert "overall" in table and "entity F1" in table
    assert main(["tag", "--checkpoint", str(run / "best.pt"),
                 "Vincent and Jules went to Rome with Acme Corp ."]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Vincent/B-PER and/O Jules/B-PER")
    assert out[1:] == ["  PER   Vincent", "  PER   Jules", "  LOC   Rome", "  ORG   Acme Corp"]
    assert main(["tag", "--checkpoint", str(run / "best.pt"), "--json",
                 "Vincent and Jules went to Rome with Acme Corp ."]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["tags"][:3] == ["B-PER", "O", "B-PER"] and len(record["tokens"]) == 10
    assert record["entities"][-1] == {"type": "ORG", "start": 7, "end": 9, "text": "Acme Corp"}
    # URLs, user names and U.S. are single tokens, as in CoNLL; --pretokenized splits
    # at spaces only.
    sentence = "Mail @vincent (http://a.example/x?y=1) in the U.S., Jules&Mia."
    assert main(["tag", "--checkpoint", str(run / "best.pt"), "--json", sentence]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == [
        "Mail", "@vincent", "(", "http://a.example/x?y=1", ")", "in", "the", "U.S.", ",",
        "Jules", "&", "Mia", "."]
    assert main(["tag", "--checkpoint", str(run / "best.pt"), "--json", "--pretokenized",
                 sentence]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == sentence.split()
    # No arguments: one sentence a line from standard input; blank lines are skipped.
    monkeypatch.setattr("sys.stdin", io.StringIO("Mia and Butch went to Paris\n\nAcme\n"))
    assert main(["tag", "--checkpoint", str(run / "best.pt")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Mia/B-PER and/O Butch/B-PER") and out[-2].startswith("Acme/")
    bundle = checkpoint.load(run / "best.pt")
    assert tag(bundle, [["Mia"], ["to", "Paris"]]) == [["B-PER"], ["O", "B-LOC"]]
    with pytest.raises(TextrnnError, match="cannot tag an empty sentence"):
        tag(bundle, [["Mia"], []])


def test_bad_data_is_one_line_naming_file_and_line(conll_dir, tmp_path, capsys):
    bad = conll_dir / "train.txt"
    bad.write_text("Jules B-PER\nand\n")
    code = main(["train", "tagger", "--data", str(bad), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"{bad}:2: expected a word and a tag" in err


def test_tag_rejects_other_checkpoints(tmp_path, capsys, make_tiny_lm):
    model, vocabs, _, _ = make_tiny_lm()
    path = checkpoint.save(tmp_path / "lm.pt", model=model)
    assert main(["tag", "--checkpoint", str(path), "hello"]) == 2
    assert "a 'lm' checkpoint, not a 'tagger' one" in capsys.readouterr().err


@pytest.mark.slow
def test_conll2003_two_epochs_reach_78_f1(tmp_path):
    """Real data: two epochs of the CRF tagger with CNN characters (~70 s of CPU; 81.3)."""
    from textrnn.data.conll import prepare_conll2003

    prepare_conll2003(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["train", "tagger", "--data", str(tmp_path / "data" / "train.txt"), "--out",
                 str(run), "--crf", "--char-encoder", "cnn", "--epochs", "2", "--schedule",
                 "linear", "--threads", "1"]) == 0
    assert checkpoint.load(run / "best.pt").metrics["val_f1"] > 0.78


def test_flags_map_onto_the_config(conll_dir, monkeypatch):
    runs = []
    monkeypatch.setattr("textrnn.cli.common.train", lambda args, run: runs.append(run) or 0)
    assert main(["train", "tagger", "--data", str(conll_dir / "train.txt"), "--out", "x",
                 "--crf", "--char-encoder", "cnn", "--no-lowercase", "--case-embedding-size",
                 "5", "--unk-replace", "0.25", "--seed", "7"]) == 0
    (run,) = runs
    c, vocabs = run.model.config, run.model.vocabs
    assert (c.crf, c.char_encoder, c.lowercase, c.case_embedding_size) == (True, "cnn", False, 5)
    assert "Vincent" in vocabs["words"] and "vincent" not in vocabs["words"]
    assert (run.train_data.unk_replace, run.train_data.seed) == (0.25, 7)
    val = run.val_data
    assert len(val) == 1 and sum(len(b["lengths"]) for b in val) == 10  # valid.txt was found


def documents(sizes: list[int]) -> list[TaggedSentence]:
    """Sentences of the tiny corpus, the first ``sizes[0]`` in document 0, and so on."""
    sentences = parse_conll(corpus(sum(sizes), 5).splitlines())
    doc = [d for d, n in enumerate(sizes) for _ in range(n)]
    for s, d in zip(sentences, doc, strict=True):
        s.doc = d
    return sentences


def test_document_context_reads_neighbours_and_scores_sentence_by_sentence():
    model, vocabs, _ = tiny(context="document", crf=True)
    sentences = documents([4, 3])
    bundle = checkpoint.Bundle(task="tagger", config=model.config, vocabs=vocabs, model=model)
    tokens = [s.tokens for s in sentences]
    tagged = tag(bundle, tokens, docs=[s.doc for s in sentences])
    assert [len(t) for t in tagged] == [len(t) for t in tokens]
    # A sentence's scores depend on its document's other sentences (that is the point)...
    data = batches(sentences, vocabs, model.config, batch_size=8)
    alone = batches(sentences[:1], vocabs, model.config, batch_size=1)
    with torch.no_grad():
        model.eval()
        row = data.units.index([0, 1, 2, 3])
        batch = next(iter(data))
        in_doc = model(batch)[batch["index"].tolist().index(row), :len(tokens[0])]
        by_itself = model(next(iter(alone)))[0]
    assert not torch.allclose(in_doc, by_itself)
    # ...and evaluation scores the sentences one by one: the same report as tagging each.
    metrics = model.evaluate(batches(sentences, vocabs, model.config, batch_size=8))
    report = tagging_scores([s.tags for s in sentences], tagged)
    assert metrics["val_f1"] == pytest.approx(report["f1"])


def test_train_and_eval_with_document_context(conll_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "tagger", "--data", str(conll_dir / "train.txt"), "--out", str(run),
                 "--context", "document", "--max-context-tokens", "60", "--batch-size", "2",
                 "--max-steps", "4", "--hidden-size", "8", "--threads", "1"]) == 0
    bundle = checkpoint.load(run / "best.pt")
    assert (bundle.config.context, bundle.config.max_context_tokens) == ("document", 60)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data",
                 str(conll_dir / "test.txt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sentences"] == 10
    # Agreement reads a row of several sentences token by token: each token's added score
    # is the mean type probabilities of its word's occurrences in the document.
    model = bundle.model.eval()
    sentences = parse_conll((conll_dir / "test.txt").read_text().splitlines())
    data = batches(sentences, bundle.vocabs, bundle.config, batch_size=2)
    with torch.no_grad():
        scored = [(b, model(b)) for b in data]
    agreed = document_agreement(model, scored, data, sentences, 1.0)
    probs, added = {}, {}
    for (batch, emissions), (_, after) in zip(scored, agreed, strict=True):
        p = model.type_probabilities(emissions, batch["lengths"])  # (B, T, C)
        for r, u in enumerate(batch["index"].tolist()):
            words = [w.lower() for i in data.units[u] for w in sentences[i].tokens]
            doc = sentences[data.units[u][0]].doc
            assert len(data.units[u]) > 1  # rows of several sentences
            for t, w in enumerate(words):
                probs.setdefault((doc, w), []).append(p[r, t])
                added.setdefault((doc, w), []).append(after[r, t] - emissions[r, t])
    _, column = tag_types(bundle.config.tags)
    for key, rows in probs.items():
        expected = torch.stack(rows).mean(0)[column]  # (K,)
        for a in added[key]:
            torch.testing.assert_close(a, expected)
    assert main(["train", "tagger", "--data", str(conll_dir / "train.txt"), "--out",
                 str(tmp_path / "bad"), "--context", "document", "--max-context-tokens",
                 "0"]) != 0
    assert "max_context_tokens must be >= 1" in capsys.readouterr().err


def test_word_dropout_reads_any_training_word_as_unk_but_never_padding(conll_dir, capsys):
    model, vocabs, _ = tiny()
    sentences = parse_conll(corpus(12, 4).splitlines())
    unk = vocabs["words"].unk_id
    plain = next(iter(batches(sentences, vocabs, model.config, 12)))["words"]
    dropped = next(iter(batches(sentences, vocabs, model.config, 12, shuffle=True,
                                word_dropout=1.0)))["words"]
    assert plain.ne(unk).all() and dropped.eq(0).equal(plain.eq(0))
    assert dropped[dropped != 0].eq(unk).all()
    half = batches(sentences, vocabs, model.config, 12, shuffle=True, word_dropout=0.5)
    share = next(iter(half))["words"].eq(unk).sum() / plain.ne(0).sum()
    assert 0.3 < share < 0.7
    assert main(["train", "tagger", "--data", str(conll_dir / "train.txt"), "--out",
                 str(conll_dir / "run"), "--word-dropout", "1.5"]) != 0
    assert "--word-dropout is a probability" in capsys.readouterr().err
