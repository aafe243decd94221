"""Several taggers read as one: their scores averaged, each through its own vocabulary.

An ensemble of taggers of the same data (other seeds, other word dropout, train
only or train+valid) decodes the mean of their emission scores and, with CRFs,
of their transition scores. The members need not share a vocabulary: the batch
is encoded with the largest one, and a :class:`VocabBridge` maps its ids back to
each smaller member's own. Checking that the members fit together (tags, output
layer, encoding, vocabularies) is the loader's job, which knows the files:
:func:`textrnn.pipelines.tagger.join_ensemble`.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from textrnn.models.tagger import TaggerBase


class VocabBridge(nn.Module):
    """A tagger that reads batches encoded with a larger vocabulary than its own.

    So that taggers trained on different data (train only, train+valid) can join
    one ensemble: the batch is encoded once, with the vocabulary that holds all
    of theirs, and each member maps the ids back to its own; a word (or
    character) the member never saw becomes its ``<unk>``, as it would have been
    in its own encoding.

    Args:
        model: the member tagger.
        word_map: (V_batch,) long, each batch word id's id in ``model``'s vocabulary.
        char_map: (C_batch,) long, the same for characters.
    """

    def __init__(self, model: TaggerBase, word_map: Tensor, char_map: Tensor) -> None:
        super().__init__()
        self.model, self.config, self.crf = model, model.config, model.crf
        self.register_buffer("word_map", word_map)
        self.register_buffer("char_map", char_map)

    def forward(self, batch: dict) -> Tensor:
        """The member's emission scores P (B, T, K) for a batch of the larger vocabulary."""
        return self.model({**batch, "words": self.word_map[batch["words"]],  # (B, T)
                           "chars": self.char_map[batch["chars"]]})  # (B, T, W)


class TaggerEnsemble(TaggerBase):
    """Several taggers of the same data read as one: their scores averaged.

    The emission scores are averaged, and with CRFs the transition scores too.
    A path's CRF score is linear in both, so Viterbi over the averages finds the
    path with the best mean score over the members; with softmax outputs each
    token takes the tag of the best mean score. Decoding, prediction and
    evaluation are :class:`~textrnn.models.tagger.TaggerBase`'s, over the averages.
    Members must share their tags, output kind and inputs (checked by the caller
    that loads them, which knows the vocabularies).

    Args:
        models: two or more :class:`~textrnn.models.tagger.Tagger` s (or
            :class:`VocabBridge` s around them).

    Raises:
        ValueError: if the members' tags or output layers differ.
    """

    def __init__(self, models: list[nn.Module]) -> None:
        super().__init__()
        first = models[0].config
        for m in models[1:]:
            if (m.config.tags, m.config.crf) != (first.tags, first.crf):
                raise ValueError("ensemble members must have the same tags and output layer "
                                 "(all CRF or all softmax)")
        self.models = nn.ModuleList(models)
        self.config = first
        self.crf = None
        if first.crf:
            self.crf = copy.deepcopy(models[0].crf)
            with torch.no_grad():
                for name, p in self.crf.named_parameters():
                    p.copy_(torch.stack([m.crf.get_parameter(name) for m in models]).mean(0))

    def forward(self, batch: dict) -> Tensor:
        """The members' emission scores P (B, T, K), averaged."""
        return torch.stack([m(batch) for m in self.models]).mean(0)  # (B, T, K)
