"""ONNX export and the ONNX Runtime path: the same answers, scores within 1e-5, at batch
sizes and lengths the export never saw (1, and longer than any in training), ragged
batches as one at a time; and bad exports as one line that leaves no file behind.

Every model is exported by ``textrnn export`` in a process of its own (the exporter
keeps state between exports), several at once.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from tagger_corpus import corpus, tiny  # noqa: E402
from test_qa import toy_examples  # noqa: E402
from training import train_steps  # noqa: E402

from textrnn import checkpoint, models, runtime  # noqa: E402
from textrnn.chat import Answerer  # noqa: E402
from textrnn.cli import main  # noqa: E402
from textrnn.data.classifier_batches import encode_text, make_batches  # noqa: E402
from textrnn.data.conll import parse_conll  # noqa: E402
from textrnn.data.qa_batches import QABatches, build_vocabs, encode_stories  # noqa: E402
from textrnn.data.sentiment import LabeledText  # noqa: E402
from textrnn.models.classifier import ClassifierConfig  # noqa: E402
from textrnn.models.qa import QAConfig  # noqa: E402
from textrnn.pipelines import classifier as classifier_pipeline  # noqa: E402
from textrnn.pipelines import tagger as tagger_pipeline  # noqa: E402
from textrnn.runtime import RuntimeLoadError  # noqa: E402
from textrnn.vocab import Vocab  # noqa: E402

RESOURCES = Path(__file__).parent / "resources"
TOL = 1e-5  # max abs difference allowed on scores
WORDS = ["the", "film", "was", "a", "plot", "great", "awful", "dull", "superb", "it"]


# --- tiny trained checkpoints ------------------------------------------------------------

def _qa(path: Path, arch: str, entity_slots: int = 0, **settings) -> Path:
    """A few epochs on qa1-like toy stories (1-6 sentences); answers need not be right."""
    torch.manual_seed(0)
    examples = toy_examples(128)
    words, answers = build_vocabs(examples, entity_slots=entity_slots)
    config = QAConfig(vocab_size=len(words), num_answers=len(answers), arch=arch,
                      embedding_size=16, entity_slots=entity_slots, slot_draws=3, **settings)
    model = models.build("qa", config, {"words": words, "answers": answers})
    data = QABatches(examples, words, answers, batch_size=16, shuffle=True, seed=0,
                     entity_slots=entity_slots)
    train_steps(model, data, epochs=2, lr=0.01, grad_clip=40.0)
    return checkpoint.save(path, model=model)


def _texts(n: int, seed: int) -> list[LabeledText]:
    rng = random.Random(seed)
    return [LabeledText(" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12))),
                        ("neg", "pos")[i % 2]) for i in range(n)]


def _classifier(path: Path) -> Path:
    """The default recurrent classifier (bi-GRU, max pooling), small; texts of <= 12 words."""
    examples = _texts(48, 0)
    words = Vocab.from_tokens([e.text.split() for e in examples])
    labels = Vocab(["neg", "pos"], specials=())
    config = ClassifierConfig(vocab_size=len(words), num_classes=2, embedding_size=8,
                              hidden_size=8, dropout=0.0)
    torch.manual_seed(0)
    model = models.build("classifier", config, {"words": words, "labels": labels})
    train_steps(model, make_batches(examples, words, labels, 16, shuffle=True), lr=0.02)
    return checkpoint.save(path, model=model)


def _tagger(path: Path, **overrides) -> Path:
    model, _, data = tiny(**overrides)
    train_steps(model, [next(iter(data))] * 5, lr=0.01)
    return checkpoint.save(path, model=model)


def _lm(path: Path) -> Path:
    """A 2-layer char LSTM, 20 steps on the tiny text in windows of 16 characters."""
    from textrnn.data.text import StreamBatches, read_text, tokenize_lines
    from textrnn.models.lm import LMConfig

    tokens = tokenize_lines(read_text(RESOURCES / "text_tiny.txt"), "char")
    vocab = Vocab.from_tokens([tokens])
    torch.manual_seed(0)
    config = LMConfig(vocab_size=len(vocab), embedding_size=8, hidden_size=16, dropout=0.0)
    model = models.build("lm", config, {"tokens": vocab})
    data = StreamBatches(torch.tensor(vocab.encode(tokens)), batch_size=4, bptt=16)
    train_steps(model, [next(iter(data))] * 20, lr=0.01)
    return checkpoint.save(path, model=model)


BUILDERS = {
    # the chatbot's default arch, with slots and list classes
    "qrn": lambda p: _qa(p, "qrn", entity_slots=3, list_slots=3),
    "qrn_scalar": lambda p: _qa(p, "qrn", vector_gates=False),  # checkpoints before 2026-12-02
    "qrn_hops": lambda p: _qa(p, "qrn", qrn_hops=2),  # with MemN2N's reader, in linear start
    "memn2n": lambda p: _qa(p, "memn2n"),  # still in linear start: the frozen flag
    "classifier": _classifier,
    # char BiLSTM, case feature, 2 layers (the CNN char encoder is not exported here: time)
    "tagger": lambda p: _tagger(p, crf=True, num_layers=2, case_embedding_size=4),
    "lm": _lm,
}


def export_cli(*args: str) -> subprocess.CompletedProcess:
    """``textrnn export ...`` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "textrnn", "export", *args],
                          capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """name -> (checkpoint, exported file), each exported by its own process, in parallel."""
    root = tmp_path_factory.mktemp("export")
    files = {name: (build(root / f"{name}.pt"), root / f"{name}.onnx")
             for name, build in BUILDERS.items()}
    jobs = {name: subprocess.Popen(
        [sys.executable, "-m", "textrnn", "export", "--checkpoint", str(ck), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (ck, out) in files.items()}
    for name, job in jobs.items():
        stdout, stderr = job.communicate(timeout=240)
        assert job.returncode == 0, f"{name}: {stderr[-2000:]}"
        assert f"model -> {files[name][1]}" in stdout
    return files


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| over finite entries; the others must be the same in both."""
    assert a.shape == b.shape and a.dtype == b.dtype
    finite = torch.isfinite(a)
    assert torch.equal(finite, torch.isfinite(b)) and torch.equal(a[~finite], b[~finite])
    return float((a[finite] - b[finite]).abs().max()) if finite.any() else 0.0


# --- the chatbot ---------------------------------------------------------------------------

STORY = ["mary went to the garden", "john went to the kitchen", "mary went to the office"]
LONG = [f"{p} went to the {q}" for p, q in zip(["mary", "john", "sandra", "daniel"] * 4,
                                                ["hallway", "garden", "kitchen", "office",
                                                 "bathroom"] * 4, strict=False)]
ITEMS = [
    (STORY[:1], "where is mary"),  # one sentence
    (STORY, "where is john"),
    (LONG, "where is sandra"),  # 16 sentences; training stories had at most 6
    ([*STORY, "bob went to the moon and then the garden and then the very far away moon"],
     "where is bob"),  # an unknown name and place (slots, for qrn), a 16-word sentence
    (["zed went to the garden"], "where is zed"),
]


@pytest.mark.parametrize("arch", ["qrn", "qrn_scalar", "qrn_hops", "memn2n"])
def test_chatbot_scores_and_answers_match_torch(exported, arch):
    ck, onnx_file = exported[arch]
    torch_bot, onnx_bot = Answerer.from_checkpoint(str(ck)), runtime.load(onnx_file)
    assert isinstance(onnx_bot, Answerer) and onnx_bot.info()["arch"] == arch.split("_")[0]
    assert onnx_bot.info()["num_answers"] == torch_bot.info()["num_answers"]
    config = torch_bot.bundle.config
    for size in (1, 2, len(ITEMS)):  # the export saw a batch of 2
        items = ITEMS[:size] if size > 1 else ITEMS[2:3]
        stories = [[s.split() for s in story] for story, _ in items]
        questions = [q.split() for _, q in items]
        batch, _ = encode_stories(stories, questions, torch_bot.words, config.memory_size,
                                  config.entity_slots, torch_bot.answers, config.slot_draws)
        with torch.no_grad():
            want = torch_bot.model.scores(batch)
            got = onnx_bot.model.scores(batch)
        assert max_diff(got[0], want[0]) <= TOL  # answer log-probabilities
        assert max_diff(got[1], want[1]) <= TOL  # evidence weights, every hop
        if arch == "qrn" and size == len(ITEMS):
            assert "view_story" in batch  # unknown names: answers averaged over readings
    want, got = torch_bot.answer_batch(ITEMS), onnx_bot.answer_batch(ITEMS)
    for w, g in zip(want, got, strict=True):
        assert g.answer == w.answer and g.sure == w.sure
        assert abs(g.confidence - w.confidence) <= TOL
        assert [e.index for e in g.evidence] == [e.index for e in w.evidence]
    # one question at a time (slot numbers are drawn per batch, so compare like with like)
    for (story, q), w in zip(ITEMS, want, strict=False):
        g, w = onnx_bot.answer(story, q), torch_bot.answer(story, q)
        assert g.answer == w.answer and abs(g.confidence - w.confidence) <= TOL
    # a ragged batch gives each example the network outputs it gets alone
    together = _forward(onnx_bot, ITEMS)
    for i, item in enumerate(ITEMS):
        logits, attention = _forward(onnx_bot, [item])
        S = attention.shape[-1]
        assert max_diff(together[0][i: i + 1], logits) <= 1e-6
        assert max_diff(together[1][i: i + 1, :, :S], attention) <= 1e-6
        assert (together[1][i, :, S:] == 0).all()


def _forward(bot: Answerer, items) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's logits (B, A) and attention (B, K, S) on the first slot reading."""
    config = bot.bundle.config
    batch, _ = encode_stories([[s.split() for s in story] for story, _ in items],
                              [q.split() for _, q in items], bot.words, config.memory_size,
                              config.entity_slots, bot.answers, 1)
    with torch.no_grad():
        return bot.model(batch)


def test_serve_runtime_onnx_answers_over_http(exported):
    from fastapi.testclient import TestClient

    from textrnn.cli import build_parser
    from textrnn.cli.qa import _answerer
    from textrnn.serve import create_app

    ck, onnx_file = exported["qrn"]
    args = build_parser().parse_args(["serve", "--checkpoint", str(onnx_file),
                                      "--runtime", "onnx"])
    bot = _answerer(args)
    with TestClient(create_app(bot)) as client:
        body = client.post("/api/answer", json={"story": STORY, "question": "Where is Mary?"})
        assert body.status_code == 200
    want = Answerer.from_checkpoint(str(ck)).answer(STORY, "Where is Mary?")
    assert body.json()["answer"] == want.answer
    assert body.json()["confidence"] == pytest.approx(want.confidence, abs=1e-4)  # rounded
    wrong = build_parser().parse_args(["serve", "--checkpoint", str(exported["classifier"][1]),
                                       "--runtime", "onnx"])
    with pytest.raises(RuntimeLoadError, match="a 'classifier' model, not a 'qa' one"):
        _answerer(wrong)


# --- classifier and tagger -----------------------------------------------------------------

def test_classifier_logits_and_labels_match_torch(exported):
    ck, onnx_file = exported["classifier"]
    torch_bundle, onnx_bundle = checkpoint.load(ck), runtime.load(onnx_file)
    texts = [e.text for e in _texts(9, seed=1)]  # held out
    texts += ["great", "", " ".join(WORDS * 4)]  # 1 word, none, 40 (training: <= 12)
    for group in (texts[-3:-2], texts):  # batch sizes 1 and 12; the export saw 2
        ids = [encode_text(t, torch_bundle.vocabs["words"]) for t in group]
        lengths = torch.tensor([len(i) for i in ids])
        padded = torch.zeros(len(ids), max(int(lengths.max()), 1), dtype=torch.long)
        for row, i in enumerate(ids):
            padded[row, : len(i)] = torch.tensor(i, dtype=torch.long)
        batch = {"ids": padded, "lengths": lengths}
        with torch.no_grad():
            assert max_diff(onnx_bundle.model(batch), torch_bundle.model(batch)) <= TOL
    want = classifier_pipeline.classify(torch_bundle, texts)
    got = runtime.classify(onnx_bundle, texts)
    assert [label for label, _ in got] == [label for label, _ in want]
    for (_, g), (_, w) in zip(got, want, strict=True):
        assert max(abs(g[k] - w[k]) for k in w) <= TOL
    # one at a time; an empty text alone is a batch of length 0, which torch refuses too
    alone = [runtime.classify(onnx_bundle, [t])[0] if t else got[i] for i, t in enumerate(texts)]
    for (la, pa), (lb, pb) in zip(alone, got, strict=True):
        assert la == lb and max(abs(pa[k] - pb[k]) for k in pa) <= 1e-6


def test_tagger_emissions_and_tags_match_torch(exported):
    ck, onnx_file = exported["tagger"]
    torch_bundle, onnx_bundle = checkpoint.load(ck), runtime.load(onnx_file)
    held_out = [s.tokens for s in parse_conll(corpus(10, 2).splitlines())]
    sentences = [*held_out, ["Mia"], [t for s in held_out[:4] for t in s]]  # 1 and 40 tokens
    config = torch_bundle.config
    for batch in tagger_pipeline.batches(
            [parse_conll(corpus(1, 3).splitlines())[0]], torch_bundle.vocabs, config, 1):
        with torch.no_grad():  # a batch of one sentence
            assert max_diff(onnx_bundle.model(batch), torch_bundle.model(batch)) <= TOL
    records = [s for s in parse_conll(corpus(10, 2).splitlines())]
    for batch in tagger_pipeline.batches(records, torch_bundle.vocabs, config, 7):
        with torch.no_grad():
            want = torch_bundle.model(batch)
            got = onnx_bundle.model(batch)
        real = torch.arange(want.shape[1]) < batch["lengths"][:, None]  # (B, T)
        assert max_diff(got[real], want[real]) <= TOL  # padded rows are ignored by every user
    tags = runtime.tag(onnx_bundle, sentences)
    assert tags == tagger_pipeline.tag(torch_bundle, sentences)
    assert [runtime.tag(onnx_bundle, [s])[0] for s in sentences] == tags


def test_lm_steps_with_state_and_streams_the_same_sample(exported):
    from textrnn.pipelines import lm

    ck, onnx_file = exported["lm"]
    torch_bundle, onnx_bundle = checkpoint.load(ck), runtime.load(onnx_file)
    g = torch.Generator().manual_seed(0)
    V = torch_bundle.config.vocab_size
    for B, T in ((1, 1), (3, 200)):  # the export saw 2 x 3; training windows were 16 long
        x = torch.randint(1, V, (B, T), generator=g)
        with torch.no_grad():
            want, want_state = torch_bundle.model(x)
            got, got_state = onnx_bundle.model(x)
            assert max_diff(got, want) <= TOL
            for a, b in zip(got_state, want_state, strict=True):  # c grows to ~30 in 200 steps
                torch.testing.assert_close(a, b, rtol=1e-5, atol=TOL)
            # a stream fed step by step, state in and out, ends where one call over it does
            state = None
            for t in range(min(T, 20)):
                step, state = onnx_bundle.model(x[:, t: t + 1], state)
                assert max_diff(step[:, 0], got[:, t]) <= TOL
    options = {"max_tokens": 60, "temperature": 0.8, "top_k": 5, "seed": 3}
    assert list(lm.sample(onnx_bundle, "Shall I", **options)) == \
        list(lm.sample(torch_bundle, "Shall I", **options))


@pytest.mark.parametrize("name", ["classifier", "tagger"])
def test_int8_quantisation_keeps_the_metadata_and_roughly_the_scores(exported, tmp_path, name):
    import onnx

    from textrnn.export import _quantize, _write_atomic

    ck, onnx_file = exported[name]
    out = tmp_path / "int8.onnx"
    _write_atomic(out, _quantize(onnx.load(onnx_file)).SerializeToString())
    float_bundle, int8_bundle = runtime.load(onnx_file), runtime.load(out)
    assert int8_bundle.model.meta["quantize"] == "int8"
    assert out.stat().st_size < onnx_file.stat().st_size
    if name == "classifier":
        texts = [e.text for e in _texts(20, seed=2)]
        want, got = runtime.classify(float_bundle, texts), runtime.classify(int8_bundle, texts)
        assert max(abs(g[k] - w[k]) for (_, g), (_, w) in zip(got, want, strict=True)
                   for k in w) < 0.05
    else:
        sentences = [s.tokens for s in parse_conll(corpus(10, 2).splitlines())]
        want, got = runtime.tag(float_bundle, sentences), runtime.tag(int8_bundle, sentences)
        same = sum(a == b for w, g in zip(want, got, strict=True)
                   for a, b in zip(w, g, strict=True))
        assert same >= 0.9 * sum(map(len, want))


# --- bad input -----------------------------------------------------------------------------

def test_export_errors_are_one_line_and_leave_no_file(tmp_path, capsys, exported):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    ck = exported["classifier"][0]
    cases = [
        ([str(corrupt), str(tmp_path / "a.onnx")], "truncated, corrupt or not a torch file"),
        ([str(foreign), str(tmp_path / "a.onnx")], "not a textrnn checkpoint"),
        ([str(tmp_path / "none.pt"), str(tmp_path / "a.onnx")], "no such checkpoint"),
        ([str(ck), str(tmp_path / "no" / "a.onnx")], "no folder"),
        ([str(ck), str(tmp_path)], "is a folder"),
    ]
    for (source, out), message in cases:
        assert main(["export", "--checkpoint", source, "--out", out]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("textrnn: error: ") and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.pt", "foreign.pt"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_an_unwritable_folder_is_one_line_and_an_old_file_stays(tmp_path):
    from textrnn.export import ExportError, _write_atomic

    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ExportError, match="cannot write"):
            _write_atomic(target, b"new")
    finally:
        tmp_path.chmod(0o700)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp_file(tmp_path, monkeypatch):
    from textrnn import export as export_module

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(export_module.ExportError, match="No space left on device"):
        export_module._write_atomic(tmp_path / "m.onnx", b"data")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "m.onnx").write_bytes(b"old")
    with pytest.raises(export_module.ExportError, match="No space left on device"):
        export_module._write_atomic(tmp_path / "m.onnx", b"new")
    assert [p.read_bytes() for p in tmp_path.iterdir()] == [b"old"]


def test_runtime_refuses_what_is_not_an_export_in_one_line(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(RuntimeLoadError, match="not a readable ONNX model") as err:
        runtime.load(junk)
    assert "\n" not in str(err.value)
    with pytest.raises(RuntimeLoadError, match="no such file"):
        runtime.load(tmp_path / "missing.onnx")


def test_an_unexportable_arch_says_so_in_one_line(tmp_path):
    from textrnn.export_nets import EXPORTS, NotExportable

    torch.manual_seed(0)
    words, answers = build_vocabs(toy_examples(8))
    config = QAConfig(vocab_size=len(words), num_answers=len(answers), arch="entnet",
                      embedding_size=8, memory_slots=2)
    model = models.build("qa", config, {"words": words, "answers": answers})
    with pytest.raises(NotExportable, match="'entnet' is not built yet"):
        EXPORTS["qa"](model)
