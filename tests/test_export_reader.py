"""ONNX export of the LSTM reader (``--arch lstm_reader``): the same scores and answers as
PyTorch at batch sizes and lengths the export never saw (it was recorded with 2 stories
of 3 sentences of 5 words), stories cut to their last ``max_story_words`` words and
questions to ``max_question_words``; EntNet is still refused in one line.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from test_export import ITEMS, _forward, _qa, max_diff  # noqa: E402

from textrnn import runtime  # noqa: E402
from textrnn.chat import Answerer  # noqa: E402
from textrnn.data.qa_batches import encode_stories  # noqa: E402

TOL = 1e-5
# ITEMS has stories of 1 to 16 sentences (training: at most 6) and a 16-word sentence;
# 20 story words keep only the last few sentences of the long ones, and the last
# question here has more words than the 6 read.
READER = {"hidden_size": 16, "max_story_words": 20, "max_question_words": 6}
QUESTIONS = [*ITEMS, (ITEMS[1][0], "where is john where is john really now")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(checkpoint, exported file) of a tiny LSTM reader, exported by a fresh process."""
    root = tmp_path_factory.mktemp("export_reader")
    ck, out = _qa(root / "reader.pt", "lstm_reader", **READER), root / "reader.onnx"
    done = subprocess.run([sys.executable, "-m", "textrnn", "export", "--checkpoint", str(ck),
                           "--out", str(out)], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return ck, out


def test_reader_scores_and_answers_match_torch(exported):
    ck, onnx_file = exported
    torch_bot, onnx_bot = Answerer.from_checkpoint(str(ck)), runtime.load(onnx_file)
    assert onnx_bot.info()["arch"] == "lstm_reader"
    config = torch_bot.bundle.config
    for items in (QUESTIONS[:1], QUESTIONS[2:3], QUESTIONS):  # sizes 1, 1 (16 sentences), 6
        batch, _ = encode_stories([[s.split() for s in story] for story, _ in items],
                                  [q.split() for _, q in items], torch_bot.words,
                                  config.memory_size, config.entity_slots, torch_bot.answers,
                                  config.slot_draws)
        with torch.no_grad():
            want, got = torch_bot.model.scores(batch), onnx_bot.model.scores(batch)
        assert max_diff(got[0], want[0]) <= TOL  # answer log-probabilities
        assert max_diff(got[1], want[1]) <= TOL  # the per-sentence attention
    long_story = batch["sentence_lengths"].sum(1).max()
    assert long_story > READER["max_story_words"]  # the cut was exercised
    assert batch["question"].shape[1] > READER["max_question_words"]
    want, got = torch_bot.answer_batch(QUESTIONS), onnx_bot.answer_batch(QUESTIONS)
    for w, g in zip(want, got, strict=True):
        assert g.answer == w.answer and abs(g.confidence - w.confidence) <= TOL
        assert [e.index for e in g.evidence] == [e.index for e in w.evidence]
    together = _forward(onnx_bot, QUESTIONS)  # a ragged batch, as one at a time
    for i, item in enumerate(QUESTIONS):
        logits, attention = _forward(onnx_bot, [item])
        S = attention.shape[-1]
        assert max_diff(together[0][i: i + 1], logits) <= 1e-6
        assert max_diff(together[1][i: i + 1, :, :S], attention) <= 1e-6
        assert (together[1][i, :, S:] == 0).all()
