"""ONNX export of the translation model: its encoder and decoder step as two graphs in one
folder, run by :mod:`textrnn.runtime` with the same translations as the checkpoint.

Every model is exported by ``textrnn export`` in a process of its own (the exporter keeps
state between exports), one after the other. The comparisons run at batch sizes and
lengths the export never saw: the exports were recorded with 2 sources of 5 tokens and 3
decoder rows over 4 source positions; training sentences had 3 to 8 words.
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

from test_seq2seq import WORDS, write_pairs  # noqa: E402
from training import train_steps  # noqa: E402

from textrnn import checkpoint, runtime  # noqa: E402
from textrnn.cli import main  # noqa: E402
from textrnn.collate import pad_sequences  # noqa: E402
from textrnn.data.pairs import PairBatches, read_pairs  # noqa: E402
from textrnn.export import ExportError  # noqa: E402
from textrnn.export_seq2seq import ENCODER, STEP, write_folder  # noqa: E402
from textrnn.pipelines import seq2seq  # noqa: E402
from textrnn.runtime import RuntimeLoadError  # noqa: E402

TOL = 1e-5  # max abs difference allowed on log-probabilities and states
VARIANTS = {
    # the defaults' shape, small: GRU, Luong's general score, tied output, subword pieces
    "gru": dict(cell="gru", attention="general", vocab="subword", vocab_size=40),
    # everything else a step carries: c, input feeding, an untied output, 2 layers, words
    "lstm": dict(cell="lstm", attention="additive", input_feeding=True, num_layers=2,
                 tie_embeddings=False, vocab="word"),
    # no attention: the step has no source inputs and no attention output
    "none": dict(cell="gru", attention="none", vocab="subword", vocab_size=40),
}


def _train(path: Path, data: Path, settings: dict) -> Path:
    """Three epochs on 200 toy pairs (about a second); the outputs need not be right."""
    run = seq2seq.build(data, hidden_size=16, embedding_size=8, batch_size=16, dropout=0.0,
                        min_count=1, **settings)
    losses = train_steps(run.model, run.train_data, epochs=3, lr=0.01)
    assert losses[-1] < losses[0]
    return checkpoint.save(path, model=run.model)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """variant -> (checkpoint, export folder), each exported by a fresh process in turn."""
    root = tmp_path_factory.mktemp("export_seq2seq")
    torch.manual_seed(0)
    data = write_pairs(root / "train.tsv", 200, seed=0)
    files = {}
    for name, settings in VARIANTS.items():
        ck, out = _train(root / f"{name}.pt", data, settings), root / f"{name}-onnx"
        done = subprocess.run([sys.executable, "-m", "textrnn", "export", "--checkpoint",
                               str(ck), "--out", str(out)], capture_output=True, text=True,
                              timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"
        assert f"seq2seq model -> {out}" in done.stdout
        files[name] = (ck, out)
    return files


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


def held_out(n: int, seed: int) -> list[str]:
    """Source sentences of 1 to 8 words, not in training (another seed)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))) + " ." for _ in range(n)]


SENTENCES = [*held_out(6, seed=7), "seven",  # one word, no full stop
             " ".join(WORDS * 3) + " ."]  # 31 words; training had at most 8


def test_the_folder_holds_both_graphs_and_the_vocabularies(exported):
    import onnxruntime as ort

    for name, (ck, out) in exported.items():
        torch_bundle, onnx_bundle = checkpoint.load(ck), runtime.load(out, task="seq2seq")
        subword = VARIANTS[name]["vocab"] == "subword"
        want = {ENCODER, STEP} | ({"source.model", "target.model"} if subword else set())
        assert {p.name for p in out.iterdir()} == want  # and no temp folder beside it
        assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []
        for side in ("source", "target"):
            assert onnx_bundle.vocabs[side].itos == torch_bundle.vocabs[side].itos
        assert onnx_bundle.config == torch_bundle.config
        encoder = ort.InferenceSession(str(out / ENCODER))
        assert [i.shape for i in encoder.get_inputs()] == [["batch", "source_len"], ["batch"]]
        step = ort.InferenceSession(str(out / STEP))
        assert all(i.shape[0] == "rows" for i in step.get_inputs())  # batch x beam: free
        has_source = VARIANTS[name]["attention"] != "none"
        assert ("mask" in [i.name for i in step.get_inputs()]) == has_source
    with pytest.raises(RuntimeLoadError, match="a 'seq2seq' model, not a 'lm' one"):
        runtime.load(exported["gru"][1], task="lm")


@pytest.mark.parametrize("name", list(VARIANTS))
def test_encoder_and_steps_match_torch_at_new_sizes(exported, name):
    ck, out = exported[name]
    torch_model, onnx_model = checkpoint.load(ck).model, runtime.load(out).model
    g = torch.Generator().manual_seed(1)
    V_src, V_tgt = torch_model.config.src_vocab_size, torch_model.config.tgt_vocab_size
    for lengths in ([1], [25, 1, 7, 12]):  # length 1 alone; a ragged batch of 4, one of 25
        src, src_lengths = pad_sequences(
            [torch.randint(4, V_src, (n,), generator=g).tolist() for n in lengths])
        tokens = torch.randint(4, V_tgt, (len(lengths), 6), generator=g)
        with torch.no_grad():
            want, got = torch_model.start(src, src_lengths), onnx_model.start(src, src_lengths)
            assert want.keys() == got.keys()
            for key in want:
                assert max_diff(got[key], want[key]) <= TOL, key
            steps = []
            for t in range(tokens.shape[1]):
                w_logp, want, w_att = torch_model.step(tokens[:, t], want)
                g_logp, got, g_att = onnx_model.step(tokens[:, t], got)
                assert max_diff(g_logp, w_logp) <= TOL
                assert (g_att is None) == (w_att is None)
                if w_att is not None:
                    assert max_diff(g_att, w_att) <= TOL
                steps.append(g_logp)
        # each sentence of the ragged batch gets the numbers it gets alone
        for i, n in enumerate(lengths):
            with torch.no_grad():
                state = onnx_model.start(src[i: i + 1, :n], src_lengths[i: i + 1])
                for t in range(tokens.shape[1]):
                    logp, state, _ = onnx_model.step(tokens[i: i + 1, t], state)
                    assert max_diff(logp, steps[t][i: i + 1]) <= TOL


@pytest.mark.parametrize("name", list(VARIANTS))
def test_translations_match_torch_greedy_and_beam(exported, name):
    ck, out = exported[name]
    torch_bundle, onnx_bundle = checkpoint.load(ck), runtime.load(out)
    for beam_size in (1, 4):
        want = seq2seq.translate(torch_bundle, SENTENCES, beam_size=beam_size)
        got = runtime.translate(onnx_bundle, SENTENCES, beam_size=beam_size)
        assert [t.text for t in got] == [t.text for t in want]
        assert [t.hypothesis.tokens for t in got] == [t.hypothesis.tokens for t in want]
        for g, w in zip(got, want, strict=True):
            assert abs(g.hypothesis.score - w.hypothesis.score) <= 1e-4  # a sum of <= 72
        alone = [runtime.translate(onnx_bundle, [s], beam_size=beam_size)[0].text
                 for s in SENTENCES[-2:]]
        assert alone == [t.text for t in got[-2:]]
    assert any(t.text for t in got)  # not all empty: the search ran


def test_translate_reads_an_export_folder_like_its_checkpoint(exported, capsys):
    from textrnn.cli import main

    ck, out = next(iter(exported.values()))
    lines = {}
    for path in (ck, out):
        assert main(["translate", "--checkpoint", str(path), "--beam", "3", *SENTENCES[:3]]) == 0
        lines[path] = capsys.readouterr().out.splitlines()
    assert lines[out] == lines[ck] and len(lines[out]) == 3


def test_runtime_loss_matches_the_checkpoints(exported, tmp_path):
    ck, out = exported["lstm"]
    torch_bundle, onnx_bundle = checkpoint.load(ck), runtime.load(out)
    pairs = write_pairs(tmp_path / "test.tsv", 20, seed=3)
    tgt = torch_bundle.vocabs["target"]
    ids = seq2seq.encode(read_pairs(pairs), torch_bundle.vocabs, False)
    batches = list(PairBatches(ids, tgt.bos_id, tgt.eos_id, batch_size=8))
    want, got = torch_bundle.evaluate(batches), onnx_bundle.evaluate(batches)
    assert abs(got["val_loss"] - want["val_loss"]) <= TOL
    assert got["val_acc"] == want["val_acc"]


# --- the folder, bad input -------------------------------------------------------------------

def test_a_folder_with_other_files_is_refused_in_one_line_before_recording(exported, tmp_path,
                                                                            capsys):
    ck, _ = exported["gru"]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(b"a file")
    for out, message in ((busy, "a folder with other files in it"), (plain, "is a file"),
                         (tmp_path / "no" / "mt", "no folder")):
        assert main(["export", "--checkpoint", str(ck), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    assert [p.name for p in busy.iterdir()] == ["notes.txt"] and plain.read_bytes() == b"a file"


def test_a_new_export_replaces_an_old_one_whole_or_not_at_all(exported, tmp_path, monkeypatch):
    _, out = exported["gru"]
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    target = tmp_path / "mt"
    write_folder(target, {name: b"old" for name in files})
    write_folder(target, files)  # over an older export
    assert {p.name: p.read_bytes() for p in target.iterdir()} == files
    assert [p.name for p in tmp_path.iterdir()] == ["mt"]
    assert runtime.load(target).task == "seq2seq"
    real_rename = os.rename

    def fail_into_place(src, dst):  # the new folder cannot go in; putting the old back can
        if Path(dst) == target and str(src).endswith(".tmp"):
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", fail_into_place)
    with pytest.raises(ExportError, match="No space left on device"):
        write_folder(target, {name: b"new" for name in files})
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == files  # the old one, whole
    assert [p.name for p in tmp_path.iterdir()] == ["mt"]  # no temp folder left


def test_runtime_refuses_a_half_or_mixed_folder_in_one_line(exported, tmp_path):
    import shutil

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuntimeLoadError, match="not a seq2seq export"):
        runtime.load(empty)
    mixed = tmp_path / "mixed"
    shutil.copytree(exported["gru"][1], mixed)
    shutil.copy(exported["none"][1] / STEP, mixed / STEP)
    with pytest.raises(RuntimeLoadError, match="of different exports") as err:
        runtime.load(mixed)
    assert "\n" not in str(err.value)
    shutil.copy(exported["gru"][1] / STEP, mixed / STEP)
    (mixed / "source.model").write_bytes(b"\x00 not a sentencepiece model")
    with pytest.raises(RuntimeLoadError, match="not a readable sentencepiece model") as err:
        runtime.load(mixed)
    assert "\n" not in str(err.value)
