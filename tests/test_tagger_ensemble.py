"""Tagger ensembles: the mean of the members' scores, members of less data through the
larger vocabulary, and eval/tag with --ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tagger_corpus import corpus, tiny, write_conll_dir

from textrnn import checkpoint, models
from textrnn.cli import main
from textrnn.data.conll import TaggedSentence
from textrnn.models.tagger_ensemble import TaggerEnsemble
from textrnn.pipelines import tagger
from textrnn.pipelines.tagger import batches, join_ensemble
from textrnn.rounding import round_floats


@pytest.fixture
def conll_dir(tmp_path: Path) -> Path:
    return write_conll_dir(tmp_path)


def test_an_ensemble_decodes_the_mean_of_its_members_scores():
    a, vocabs, data = tiny(crf=True)
    torch.manual_seed(1)
    b = models.build("tagger", a.config, vocabs)  # other weights, same shapes
    ensemble = TaggerEnsemble([a, b]).eval()
    a.eval(), b.eval()
    batch = next(iter(data))
    with torch.no_grad():
        mean = (a(batch) + b(batch)) / 2
        assert torch.allclose(ensemble(batch), mean)
        assert torch.allclose(ensemble.crf.transitions, (a.crf.transitions + b.crf.transitions) / 2)
        # The CRF path score is linear in emissions and transitions: the ensemble's path
        # scores the members' mean path score, and no member's own path beats it there.
        mask = torch.arange(mean.shape[1]) < batch["lengths"][:, None]

        def mean_score(paths):
            tags = pad_to(paths, mean.shape[1])
            return (a.crf.score(a(batch), tags, mask) + b.crf.score(b(batch), tags, mask)) / 2

        best = mean_score(ensemble.predict(batch))
        for member in (a, b):
            assert (mean_score(member.predict(batch)) <= best + 1e-5).all()
    assert a.predict(batch) == TaggerEnsemble([a, a]).predict(batch)
    softmax, _, _ = tiny(crf=False)
    with pytest.raises(ValueError, match="same tags and output layer"):
        TaggerEnsemble([a, softmax])


def pad_to(paths: list[list[int]], T: int) -> torch.Tensor:
    """Tag paths as a (B, T) long tensor, 0-padded."""
    return torch.tensor([p + [0] * (T - len(p)) for p in paths])


def test_a_tagger_of_less_data_joins_an_ensemble_through_the_larger_vocabulary(
        conll_dir, tmp_path, capsys):
    extra = conll_dir / "extra.txt"
    extra.write_text("Zed B-PER\nwept O\n\n")
    more, less = tmp_path / "more", tmp_path / "less"
    common = ["train", "tagger", "--data", str(conll_dir / "train.txt"), "--crf",
              "--max-steps", "2", "--hidden-size", "8", "--threads", "1"]
    assert main([*common, "--out", str(more), "--train-also", str(extra)]) == 0
    assert main([*common, "--out", str(less), "--seed", "2"]) == 0
    capsys.readouterr()
    bundle = checkpoint.load(more / "best.pt")
    joined = join_ensemble(bundle, [less / "best.pt"], first=more / "best.pt")
    bridge = joined.model.models[1]
    own = checkpoint.load(less / "best.pt")
    sentences = [TaggedSentence(["Zed", "and", "Mia", "went"], ["B-PER", "O", "B-PER", "O"])]
    wide = next(iter(batches(sentences, bundle.vocabs, bundle.config, 1)))
    narrow = next(iter(batches(sentences, own.vocabs, own.config, 1)))
    # The member reads the larger vocabulary's ids as its own encoding: "zed" and "Z" as <unk>.
    assert wide["words"][0, 0] != narrow["words"][0, 0] == own.vocabs["words"].unk_id
    with torch.no_grad():
        assert torch.equal(bridge(wide), own.model.eval()(narrow))
    # The other way round, the member knows words the first does not: one line refuses it.
    assert main(["eval", "--checkpoint", str(less / "best.pt"), "--ensemble",
                 str(more / "best.pt"), "--data", str(conll_dir / "test.txt")]) == 2
    err = capsys.readouterr().err
    assert "its words, chars differ" in err and len(err.splitlines()) == 1


def test_eval_and_tag_with_an_ensemble(conll_dir, tmp_path, capsys):
    runs = []
    for seed in (0, 1):
        runs.append(tmp_path / f"run{seed}")
        assert main(["train", "tagger", "--data", str(conll_dir / "train.txt"), "--out",
                     str(runs[-1]), "--crf", "--max-steps", "3", "--hidden-size", "8",
                     "--seed", str(seed), "--threads", "1"]) == 0
    capsys.readouterr()
    argv = ["--checkpoint", str(runs[0] / "best.pt"), "--ensemble", str(runs[1] / "best.pt")]
    assert main(["eval", *argv, "--data", str(conll_dir / "test.txt"), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["models"] == 2
    # The same from Python: the pipeline loads the ensemble and scores it alike.
    loaded = tagger.ensemble([runs[0] / "best.pt", runs[1] / "best.pt"])
    assert round_floats(tagger.evaluate(loaded, str(conll_dir / "test.txt"))) == results
    assert main(["tag", *argv, "Mia and Butch went to Paris"]) == 0
    assert capsys.readouterr().out.startswith("Mia/")
    # A tagger of other data (another word vocabulary) cannot join: one line names it.
    other = tmp_path / "other"
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "train.txt").write_text(corpus(40, 9).replace("Paris", "Lyon"))
    assert main(["train", "tagger", "--data", str(tmp_path / "o" / "train.txt"), "--out",
                 str(other), "--crf", "--max-steps", "1", "--hidden-size", "8"]) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(runs[0] / "best.pt"), "--ensemble",
                 str(other / "best.pt"), "--data", str(conll_dir / "test.txt")]) != 0
    err = capsys.readouterr().err
    assert str(other / "best.pt") in err and "words, chars" in err and len(err.splitlines()) == 1
