"""The seq2seq model, its pipeline and its commands: train seq2seq, eval, translate."""

from __future__ import annotations

import io
import json
import random

import pytest
import torch

from textrnn import checkpoint, models
from textrnn.cli import build_parser, flags, main
from textrnn.collate import pad_sequences
from textrnn.data.pairs import tokenize
from textrnn.errors import TextrnnError
from textrnn.models.seq2seq import ATTENTIONS, Seq2SeqConfig
from textrnn.pipelines import seq2seq
from textrnn.subword import SubwordVocab, vocab_from_dict
from textrnn.train import TrainConfig, fit

WORDS = "zero one two three four five six seven eight nine".split()
MOTS = "zéro un deux trois quatre cinq six sept huit neuf".split()


def write_pairs(path, n, seed, reverse=True, min_len=2, max_len=7):
    """A toy translation: digits as English words -> French words, in reverse order."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        digits = [rng.randrange(10) for _ in range(rng.randint(min_len, max_len))]
        out = digits[::-1] if reverse else digits
        lines.append(" ".join(WORDS[d] for d in digits) + " .\t"
                     + " ".join(MOTS[d] for d in out) + " .\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


# --- the model --------------------------------------------------------------------------
@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("input_feeding", [False, True])
def test_stepwise_decoding_matches_teacher_forcing(attention, cell, input_feeding):
    torch.manual_seed(2)
    config = Seq2SeqConfig(src_vocab_size=15, tgt_vocab_size=11, attention=attention,
                           cell=cell, embedding_size=8, hidden_size=12, num_layers=2,
                           input_feeding=input_feeding, tie_embeddings=cell == "gru")
    model = models.build("seq2seq", config, {}).eval()
    src, lengths = pad_sequences([[4, 5, 6, 7], [8, 9]])  # (2, 4)
    tgt_in = torch.tensor([[2, 4, 5, 6], [2, 7, 8, 0]])  # (2, 4)
    with torch.no_grad():
        logits, weights = model(src, lengths, tgt_in)  # (2, 4, 11)
        state, steps = model.start(src, lengths), []
        for t in range(tgt_in.shape[1]):
            logp, state, w = model.step(tgt_in[:, t], state)
            steps.append(logp)
        alone, _ = model(src[1:, :2], lengths[1:], tgt_in[1:])
    torch.testing.assert_close(torch.stack(steps, 1), torch.log_softmax(logits, -1))
    torch.testing.assert_close(alone, logits[1:], atol=1e-6, rtol=1e-5)  # padding-independent
    assert (weights is None) == (attention == "none")
    if weights is not None:
        assert weights.shape == (2, 4, 4) and torch.all(weights[1, :, 2:] == 0)


@pytest.mark.parametrize("vocab", ["word", "subword"])
def test_train_save_load_same_predictions(tmp_path, vocab):
    data = write_pairs(tmp_path / "train.tsv", 200, seed=0)
    run = seq2seq.build(data, hidden_size=32, embedding_size=16, batch_size=16, min_count=1,
                        dropout=0.0, vocab=vocab, vocab_size=40)
    model, vocabs = run.model, run.model.vocabs
    if vocab == "word":
        assert len(vocabs["source"]) == 4 + 11 and len(vocabs["target"]) == 4 + 11
    else:  # pieces, specials at textrnn's ids; no more than asked for
        assert isinstance(vocabs["target"], SubwordVocab) and len(vocabs["target"]) <= 40
        assert vocabs["target"].itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    before = model.evaluate(run.val_data)["val_loss"]
    cfg = TrainConfig(max_steps=30, eval_every=30, threads=1, lr=1e-2, device="cpu")
    fit(model, run.train_data, run.val_data, cfg, tmp_path / "run")
    after = model.evaluate(run.val_data)["val_loss"]
    assert after < before - 0.5
    data.unlink()  # the vocabularies come from the checkpoint alone
    bundle = checkpoint.load(tmp_path / "run" / "last.pt", task="seq2seq")
    batch = next(iter(run.val_data))
    assert bundle.model.predict(batch) == model.eval().predict(batch)
    assert bundle.config == model.config and bundle.vocabs == vocabs
    assert type(bundle.vocabs["source"]) is type(vocabs["source"])
    assert seq2seq.translate(bundle, ["one two ."])[0].text == seq2seq.translate(
        run_bundle(model), ["one two ."])[0].text


def run_bundle(model):
    """A Bundle around an in-memory model, as checkpoint.load would give."""
    return checkpoint.Bundle("seq2seq", model.eval(), model.vocabs, model.config)


def test_subword_vocab_trains_on_training_text_and_round_trips(tmp_path):
    texts = ["Jonas se leva pour s'enfuir à Tarsis.", "Et l'Éternel dit à Jonas: Lève-toi."]
    vocab = SubwordVocab.train(texts * 30, vocab_size=60)
    for text in texts:  # detokenised output is the text itself
        assert vocab.decode_text(vocab.encode_text(text)) == text
        assert vocab.encode(vocab.pieces(text)) == vocab.encode_text(text)
    assert 1 not in vocab.encode_text("Jonas")  # spelt from pieces, not <unk>
    again = vocab_from_dict(vocab.to_dict())
    assert again == vocab and again.encode_text(texts[0]) == vocab.encode_text(texts[0])
    path = tmp_path / "v.pt"
    torch.save({"v": vocab.to_dict()}, path)
    assert vocab_from_dict(torch.load(path, weights_only=True)["v"]) == vocab
    assert SubwordVocab.train(texts * 30, vocab_size=60) == vocab  # deterministic
    with pytest.raises(ValueError, match="model_type"):
        SubwordVocab.train(texts, vocab_size=60, model_type="word")


def test_max_len_cuts_training_pairs_only(tmp_path):
    write_pairs(tmp_path / "train.tsv", 100, seed=0, min_len=2, max_len=9)
    write_pairs(tmp_path / "valid.tsv", 20, seed=1, min_len=8, max_len=9)
    sizes = {"hidden_size": 8, "embedding_size": 8, "vocab": "word", "min_count": 1}
    run = seq2seq.build(tmp_path / "train.tsv", max_len=5, **sizes)
    assert all(len(s) <= 5 and len(t) <= 5 for s, t in run.train_data.pairs)
    assert 0 < len(run.train_data.pairs) < 100 and len(run.val_data.pairs) == 20
    with pytest.raises(TextrnnError, match="within max_len"):
        seq2seq.build(tmp_path / "train.tsv", max_len=1, **sizes)


# --- the pipeline -----------------------------------------------------------------------
def test_validation_pairs_come_from_valid_file_sibling_or_holdout(tmp_path):
    write_pairs(tmp_path / "train.tsv", 100, seed=0)
    write_pairs(tmp_path / "valid.tsv", 7, seed=1)
    write_pairs(tmp_path / "other.tsv", 3, seed=2)
    sizes = {"hidden_size": 8, "embedding_size": 4}
    beside = seq2seq.build(tmp_path / "train.tsv", **sizes)
    assert len(beside.val_data.pairs) == 7 and len(beside.train_data.pairs) == 100
    named = seq2seq.build(tmp_path / "train.tsv", valid=tmp_path / "other.tsv", **sizes)
    assert len(named.val_data.pairs) == 3
    (tmp_path / "pairs.tsv").write_bytes((tmp_path / "train.tsv").read_bytes())
    held = seq2seq.build(tmp_path / "pairs.tsv", **sizes)  # valid.tsv only beside a train.tsv
    assert len(held.val_data.pairs) == 5 and len(held.train_data.pairs) == 95
    def source_words(run):
        return [run.model.vocabs["source"].decode(src) for src, _ in run.train_data.pairs]

    assert source_words(held) == source_words(beside)[:95]  # the first 95 lines train


def test_batches_shift_targets_and_reshuffle_by_seed_and_epoch(tmp_path):
    run = seq2seq.build(write_pairs(tmp_path / "p.tsv", 300, seed=0), batch_size=8,
                        min_count=1, hidden_size=8, embedding_size=4, seed=3)
    tgt = run.model.vocabs["target"]
    batch = next(iter(run.train_data))
    assert batch["src"].shape[0] == 8 and torch.all(batch["src_lengths"] > 0)
    for tgt_in, tgt_out in zip(batch["tgt_in"].tolist(), batch["tgt_out"].tolist(), strict=True):
        n = sum(1 for i in tgt_out if i != 0)  # y <eos>
        assert tgt_in[0] == tgt.bos_id and tgt_out[n - 1] == tgt.eos_id
        assert tgt_in[1:n] == tgt_out[: n - 1] and set(tgt_in[n:] + tgt_out[n:]) <= {0}
    first = run.train_data.batches()
    run.train_data.set_epoch(1)
    assert run.train_data.batches() != first
    again = seq2seq.build(write_pairs(tmp_path / "p.tsv", 300, seed=0), batch_size=8,
                          min_count=1, hidden_size=8, embedding_size=4, seed=3)
    assert again.train_data.batches() == first


def test_bad_settings_are_user_errors(tmp_path):
    data = write_pairs(tmp_path / "p.tsv", 20, seed=0)
    with pytest.raises(TextrnnError, match="cell must be one of"):
        seq2seq.build(data, cell="rnn")
    with pytest.raises(TextrnnError, match="unexpected keyword argument 'hiden_size'"):
        seq2seq.build(data, hiden_size=8)
    with pytest.raises(TextrnnError, match="min_count >= 1"):
        seq2seq.build(data, min_count=0)


def test_readme_commands_parse_to_the_same_settings():
    """The README's commands give the settings its figures were measured with."""
    parser = build_parser()
    args = parser.parse_args(
        ["train", "seq2seq", "--data", "data/bible/en-bbe_fr-lsg/train.tsv", "--out",
         "runs/mt", "--max-minutes", "10", "--budget-clock", "cpu"])
    assert flags.config_kwargs(Seq2SeqConfig, args) == {
        "attention": "general", "cell": "gru", "embedding_size": 128, "hidden_size": 256,
        "num_layers": 1, "dropout": 0.1, "label_smoothing": 0.1, "lower": False,
        "impl": "fused", "input_feeding": False, "tie_embeddings": True}
    assert (args.vocab, args.vocab_size, args.max_len) == ("subword", 4000, 60)
    assert (args.batch_size, args.epochs, args.eval_every, args.threads, args.lr,
            args.schedule) == (64, 20, 500, 1, 3e-3, "linear")
    assert (args.max_minutes, args.budget_clock, args.seed) == (10.0, "cpu", 1234)
    assert parser.parse_args(["train", "seq2seq", "--data", "t.tsv", "--out", "r",
                              "--lower"]).lower is True
    args = parser.parse_args(["eval", "--checkpoint", "runs/mt/best.pt", "--data",
                              "data/bible/en-bbe_fr-lsg/test.tsv", "--beam", "5"])
    assert (args.beam, args.length_penalty, args.max_output_len, args.limit) == (5, 1.0, 0, 0)
    assert (args.no_repeat_ngram, args.min_output_len, args.coverage_penalty) == (4, 1, 0.0)
    args = parser.parse_args(["translate", "--checkpoint", "runs/mt/best.pt",
                              "And God said, Let there be light: and there was light.",
                              "--show-attention", "attention.png"])
    assert (args.beam, args.show_attention, args.device) == (5, "attention.png", "auto")
    assert args.sentences == ["And God said, Let there be light: and there was light."]
    assert (args.no_repeat_ngram, args.batch_size) == (seq2seq.NO_REPEAT_NGRAM, 32)


# --- the commands -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small general-attention model on the toy task, trained through the CLI."""
    root = tmp_path_factory.mktemp("s2s")
    write_pairs(root / "train.tsv", 600, seed=1)
    write_pairs(root / "valid.tsv", 40, seed=2)
    write_pairs(root / "test.tsv", 30, seed=3)
    assert main(["train", "seq2seq", "--data", str(root / "train.tsv"), "--out",
                 str(root / "run"), "--hidden-size", "32", "--embedding-size", "16",
                 "--batch-size", "16", "--max-steps", "60", "--eval-every", "30",
                 "--lr", "1e-2", "--threads", "1", "--dropout", "0"]) == 0
    return root


def test_train_writes_run_and_uses_sibling_valid(trained):
    text = (trained / "run" / "metrics.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["step"] for r in records] == [30, 60]
    assert records[-1]["val_loss"] < records[0]["val_loss"]
    assert {"val_loss", "val_ppl", "val_acc"} <= set(records[0])


def test_eval_prints_bleu_and_chrf_for_greedy_and_beam(trained, capsys):
    capsys.readouterr()
    ckpt, test = str(trained / "run" / "best.pt"), str(trained / "test.tsv")
    assert main(["eval", "--checkpoint", ckpt, "--data", test, "--json", "--beam", "3"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["pairs"] == 30 and results["beam"]["beam_size"] == 3
    for search in ("greedy", "beam"):
        assert 0 <= results[search]["bleu"] <= 100 and 0 <= results[search]["chrf"] <= 100
    assert results["greedy"]["chrf"] > 10  # 60 steps learn the words, if not yet the order
    assert results["greedy"]["empty"] == results["beam"]["empty"] == 0  # min_len 1
    assert main(["eval", "--checkpoint", ckpt, "--data", test, "--beam", "1"]) == 0
    table = capsys.readouterr().out
    assert "greedy  BLEU" in table and "beam" not in table.split("\n")[1]


def test_translate_prints_and_draws_attention(trained, capsys, monkeypatch):
    capsys.readouterr()
    ckpt, png = str(trained / "run" / "best.pt"), trained / "att.png"
    assert main(["translate", "--checkpoint", ckpt, "one two three .", "four five .",
                 "--beam", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(set(tokenize(line)) <= set(MOTS) | {"."} for line in lines)
    assert main(["translate", "--checkpoint", ckpt, "one two banana .",
                 "--show-attention", str(png)]) == 0
    captured = capsys.readouterr()
    assert "banana" in captured.err and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Standard input: read a batch at a time, one output line per input line, blank for blank.
    lines = ["six seven .", "", "one two three .", "four ."]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["translate", "--checkpoint", ckpt, "--beam", "1", "--batch-size", "3"]) == 0
    piped = capsys.readouterr().out.splitlines()
    assert len(piped) == 4 and piped[1] == "" and all(piped[i] for i in (0, 2, 3))
    assert main(["translate", "--checkpoint", ckpt, "--beam", "1", "four ."]) == 0
    assert capsys.readouterr().out.splitlines() == piped[3:]  # the same as given alone


def test_attention_map_has_title_axis_labels_and_colour_bar(trained, tmp_path):
    bundle = checkpoint.load(trained / "run" / "best.pt", task="seq2seq")
    long = " ".join(["one two three four five six seven"] * 3) + " ."
    for sentence in ("one two banana .", long):
        translation = seq2seq.translate(bundle, [sentence], beam_size=1,
                                        return_attention=True)[0]
        fig = seq2seq.attention_figure(translation)
        ax, bar = fig.axes  # the map and its colour bar
        source = " ".join(translation.source)
        assert ax.get_title() == source if len(source) <= 60 else (
            len(ax.get_title()) <= 60 and ax.get_title().endswith("…")
            and source.startswith(ax.get_title()[:-1]))
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("source tokens", "output tokens")
        assert [t.get_text() for t in ax.get_xticklabels()] == translation.source
        assert bar.get_ylabel() == "attention weight"
        assert bar.get_ylim() == (0.0, 1.0)
    png = seq2seq.save_attention(tmp_path / "maps" / "att.png", translation)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in png.parent.iterdir()] == ["att.png"]  # no temp file left


def test_user_errors_are_one_line(trained, tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("one .\tun .\ntwo .\n", encoding="utf-8")
    assert main(["train", "seq2seq", "--data", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip().endswith(
        f"{bad}:2: expected 2 tab-separated fields (source, target), got 1")
    ckpt = str(trained / "run" / "best.pt")
    assert main(["translate", "--checkpoint", ckpt, "a .", "b .", "--show-attention",
                 str(tmp_path / "x.png")]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert main(["translate", "--checkpoint", ckpt, "   "]) == 2
    assert "empty source sentence" in capsys.readouterr().err


@pytest.mark.slow
def test_attention_beats_no_attention_on_reversal(tmp_path):
    """Reversing 6-10 digits: attention gets most sentences exactly right, no attention not."""
    write_pairs(tmp_path / "train.tsv", 4000, seed=4, min_len=6, max_len=10)
    write_pairs(tmp_path / "valid.tsv", 100, seed=5, min_len=6, max_len=10)
    write_pairs(tmp_path / "test.tsv", 200, seed=6, min_len=6, max_len=10)
    bleu = {}
    for attention in ("general", "none"):
        run = tmp_path / attention
        assert main(["train", "seq2seq", "--data", str(tmp_path / "train.tsv"), "--out",
                     str(run), "--attention", attention, "--hidden-size", "64",
                     "--embedding-size", "32", "--max-steps", "1500", "--eval-every", "500",
                     "--lr", "3e-3", "--threads", "1", "--dropout", "0", "--vocab", "word",
                     "--schedule", "none", "--no-tie-embeddings", "--max-len", "0"]) == 0
        # (the settings this test was measured with, before issue 25's defaults)
        bundle = checkpoint.load(run / "best.pt", task="seq2seq")
        results = seq2seq.evaluate(bundle, tmp_path / "test.tsv", beam_size=1,
                                   no_repeat_ngram=0)  # digits may repeat
        assert "beam" not in results
        bleu[attention] = results["greedy"]["bleu"]
    assert bleu["general"] > 90 and bleu["general"] > bleu["none"] + 10


def test_checkpoint_of_an_older_textrnn_is_refused_in_one_line(tmp_path):
    """Before subwords: word vocabularies, an untied output layer, no tie_embeddings key."""
    data = write_pairs(tmp_path / "train.tsv", 50, seed=0)
    run = seq2seq.build(data, hidden_size=16, embedding_size=16, vocab="word", min_count=1,
                        tie_embeddings=False)
    checkpoint.save(tmp_path / "old.pt", model=run.model)
    raw = torch.load(tmp_path / "old.pt", weights_only=True)
    for key in ("tie_embeddings", "input_feeding"):
        del raw["model_config"][key]
    torch.save(raw, tmp_path / "old.pt")
    with pytest.raises(checkpoint.CheckpointError, match="older textrnn") as err:
        checkpoint.load(tmp_path / "old.pt", task="seq2seq")
    assert "\n" not in str(err.value)
    checkpoint.save(tmp_path / "new.pt", model=run.model)  # untied, said so: loads
    assert checkpoint.load(tmp_path / "new.pt").config.tie_embeddings is False
