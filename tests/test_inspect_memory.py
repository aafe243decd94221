"""``textrnn inspect memory``: the weights it draws are the model's own forward attention,
for every QA arch; the command end to end; bad story files and checkpoints in one line;
the same weights in the web API's replies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from test_qa import toy_examples
from training import train_steps

from textrnn import checkpoint, memory_map, models
from textrnn.chat import Answerer, _words
from textrnn.cli import main
from textrnn.data.qa_batches import QABatches, build_vocabs, encode_stories
from textrnn.errors import DataError, TextrnnError
from textrnn.models.lm import LMConfig
from textrnn.models.qa import QAConfig
from textrnn.rounding import round_floats
from textrnn.serve import create_app
from textrnn.vocab import Vocab

STORY = ["Mary went to the garden.", "John went to the kitchen.", "Mary went to the office.",
         "Sandra went to the hallway.", "John went to the bathroom."]
# arch -> (settings, K rows of attention). memn2n reads 4 sentences, so one is dropped;
# qrn reads unknown words as slots, averaging over 3 numberings of them.
ARCHS = {"memn2n": ({"hops": 2, "memory_size": 4}, 2),
         "qrn": ({"qrn_layers": 2, "entity_slots": 2, "slot_draws": 3}, 2),
         "entnet": ({"memory_slots": 4}, 1),
         "lstm_reader": ({"hidden_size": 8}, 1)}


def tiny_qa(path: Path, arch: str) -> Path:
    """Two epochs on qa1-like toy stories (answers need not be right)."""
    settings, _ = ARCHS[arch]
    torch.manual_seed(0)
    examples = toy_examples(96)
    slots = settings.get("entity_slots", 0)
    words, answers = build_vocabs(examples, entity_slots=slots)
    config = QAConfig(vocab_size=len(words), num_answers=len(answers), arch=arch,
                      embedding_size=16, **settings)
    model = models.build("qa", config, {"words": words, "answers": answers})
    data = QABatches(examples, words, answers, batch_size=16, shuffle=True, seed=0,
                     entity_slots=slots)
    train_steps(model, data, epochs=2, lr=0.01, grad_clip=40.0)
    return checkpoint.save(path, model=model)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("memory")
    return {arch: tiny_qa(root / f"{arch}.pt", arch) for arch in ARCHS}


def forward_attention(bundle, story: list[str], question: str) -> torch.Tensor:
    """The model's own forward over the story as the chat encodes it: (K, S) of batch row 0."""
    config = bundle.config
    kept = story[-config.memory_size:]
    batch, _ = encode_stories([[_words(s) for s in kept]], [_words(question)],
                              bundle.vocabs["words"], config.memory_size, config.entity_slots,
                              bundle.vocabs["answers"], config.slot_draws)
    with torch.no_grad():
        _, attention = bundle.model.eval()(batch)  # (1, K, S)
    return attention[0, :, : len(kept)]


@pytest.mark.parametrize("arch", list(ARCHS))
def test_weights_are_the_models_forward_attention(checkpoints, arch):
    bundle = checkpoint.load(checkpoints[arch])
    story = [*STORY, "Zed went to the garden."] if bundle.config.entity_slots else STORY
    found = memory_map.read(bundle, story, "Where is Mary?")
    expected = forward_attention(bundle, story, "Where is Mary?")
    K = ARCHS[arch][1]
    extra = memory_map.SLOTS_SHOWN if arch == "entnet" else 0  # and a column per slot read
    assert torch.tensor(found.weights).shape == (K + extra, len(found.sentences))
    assert torch.allclose(torch.tensor(found.weights[:K]), expected, atol=1e-6)
    for row in found.weights[:K]:  # each row a distribution over the sentences read
        assert abs(sum(row) - 1) < 1e-4
    assert found.dropped == len(story) - min(len(story), bundle.config.memory_size)
    assert found.sentences == story[found.dropped:]
    answer = Answerer(bundle).answer(story, "Where is Mary?")
    assert (found.answer, found.confidence) == (answer.answer, answer.confidence)
    numbers = memory_map.to_json(found)
    assert [s["index"] for s in numbers["sentences"]] == list(range(found.dropped, len(story)))
    assert len(numbers["columns"]) == len(found.weights)


def test_entnet_shows_the_gates_of_the_slots_the_question_reads_most(checkpoints):
    bundle = checkpoint.load(checkpoints["entnet"])
    net = bundle.model.eval().net
    found = memory_map.read(bundle, STORY, "Where is John?")
    batch, _ = encode_stories([[_words(s) for s in STORY]], [_words("Where is John?")],
                              bundle.vocabs["words"], bundle.config.memory_size)
    with torch.no_grad():  # the gates again, one sentence and one slot at a time
        s = net._encode(batch["story"], net.story_mask)[0]  # (S, d)
        q = net._encode(batch["question"], net.question_mask)[0]  # (d,)
        h = net.keys.clone()  # (M, d)
        gates = []
        for s_t in s:
            g = torch.sigmoid(h @ s_t + net.keys @ s_t)  # (M,)
            new = net.cell.phi(net.cell.U(h) + net.cell.V(net.keys) + net.cell.W(s_t))  # (M, d)
            h = torch.nn.functional.normalize(h + g[:, None] * new, dim=-1, eps=1e-6)
            gates.append(g)
        p = torch.softmax(h @ q, -1)  # (M,)
    top = p.argsort(descending=True)[:memory_map.SLOTS_SHOWN]
    shown = torch.tensor(found.weights[1:])  # (3, S)
    assert torch.allclose(shown, torch.stack(gates)[:, top].T, atol=1e-6)
    assert found.columns == ["slots", *(f"slot {j + 1}\np {p[j]:.2f}" for j in top.tolist())]


def test_the_command_writes_the_picture_and_the_numbers(checkpoints, tmp_path, capsys):
    story = tmp_path / "story.txt"
    story.write_text("".join(f"{i} {s}\n" for i, s in enumerate(STORY, 1)))  # bAbI numbering
    out = tmp_path / "pics" / "memory.png"
    argv = ["inspect", "memory", "--checkpoint", str(checkpoints["memn2n"]), "--story",
            str(story), "--question", "Where is Mary?", "--out", str(out), "--threads", "1"]
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    numbers = json.loads(captured.out)
    assert captured.err.startswith(f"wrote {out}: ") and "1 oldest not read" in captured.err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.parent.glob(".*.tmp"))  # written atomically, nothing left over
    assert numbers["picture"] == str(out) and numbers["columns"] == ["hop 1", "hop 2"]
    found = memory_map.read(checkpoint.load(checkpoints["memn2n"]), STORY, "Where is Mary?")
    assert numbers["hops"] == round_floats(found.weights, 6)
    assert [s["sentence"] for s in numbers["sentences"]] == STORY[1:]

    assert main(argv) == 0  # without --json: the one line on stdout
    assert capsys.readouterr().out.startswith(f"wrote {out}: ")


@pytest.mark.parametrize("lines, line, message", [
    (["Mary went to the garden.", "Where is Mary?"], 2, "a question"),
    (["1 Mary went to the garden.", "2 Where is Mary?\tgarden\t1"], 2, "a question"),
    (["1 Mary went to the garden.", "1 John went to the office."], 2, "numbering restarts"),
    (["Mary went to the garden.", "..."], 2, "no words"),
    (["", "  "], None, "no story sentences"),
])
def test_a_bad_story_file_is_one_line_naming_file_and_line(checkpoints, tmp_path, capsys,
                                                          lines, line, message):
    story = tmp_path / "story.txt"
    story.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        memory_map.read_story(story)
    assert main(["inspect", "memory", "--checkpoint", str(checkpoints["qrn"]), "--story",
                 str(story), "--question", "Where is Mary?", "--out",
                 str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err
    assert f"{story}:{line}:" in err if line else f"{story}:" in err
    assert not (tmp_path / "m.png").exists()


def test_a_missing_story_file_and_a_non_qa_checkpoint_are_one_line(checkpoints, tmp_path,
                                                                   capsys):
    vocab = Vocab.from_tokens([list("abc")])
    lm = models.build("lm", LMConfig(vocab_size=len(vocab), embedding_size=4, hidden_size=4,
                                     num_layers=1), {"tokens": vocab})
    lm_path = checkpoint.save(tmp_path / "lm.pt", model=lm)
    story = tmp_path / "story.txt"
    story.write_text("\n".join(STORY))
    for ck, story_file in ((lm_path, story), (checkpoints["qrn"], tmp_path / "none.txt")):
        assert main(["inspect", "memory", "--checkpoint", str(ck), "--story", str(story_file),
                     "--question", "Where is Mary?", "--out", str(tmp_path / "m.png")]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith("textrnn: error:")
    assert not (tmp_path / "m.png").exists()


def test_the_api_replies_carry_the_hop_weights(checkpoints):
    answerer = Answerer.from_checkpoint(str(checkpoints["memn2n"]))
    expected = answerer.answer(STORY, "Where is Mary?")
    assert len(expected.hops) == 2 and all(len(row) == 4 for row in expected.hops)
    with TestClient(create_app(answerer)) as client:
        body = client.post("/api/answer", json={"story": STORY, "question": "Where is Mary?"})
        assert body.status_code == 200
        assert body.json()["hops"] == round_floats(expected.hops)
        session = client.post("/api/sessions").json()["id"]
        url = f"/api/sessions/{session}/messages"
        client.post(url, json={"text": " ".join(STORY[-2:])})
        reply = client.post(url, json={"text": "Where is Mary?"}).json()
        assert reply["answer"]["hops"] == round_floats(answerer.answer(STORY[-2:],
                                                                       "Where is Mary?").hops)
        schema = client.get("/openapi.json").json()["components"]["schemas"]["AnswerOut"]
        assert "hops" in schema["properties"]


def test_an_empty_story_or_question_is_refused(checkpoints):
    bundle = checkpoint.load(checkpoints["qrn"])
    with pytest.raises(TextrnnError, match="no story"):
        memory_map.read(bundle, [], "Where is Mary?")
    with pytest.raises(TextrnnError, match="no words"):
        memory_map.read(bundle, STORY, "?")
