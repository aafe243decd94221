"""Named-entity tagger: words + characters -> BiLSTM -> softmax or CRF (Lample et al. 2016).

Lample et al. 2016 ("Neural Architectures for Named Entity Recognition",
arXiv:1603.01360) build each word's input from a word embedding and a
character BiLSTM's two final states, so a word never seen in training still
gets its shape and affixes ("-burg", a capital letter); a sentence-level
BiLSTM reads that in both directions ("Teddy bear" vs "Teddy Roosevelt"), and
a linear layer gives each token's tag scores, decoded tag by tag (softmax) or
as a whole path by a CRF (:mod:`textrnn.crf`)::

    words (B, T) ── E_w ──────────────────────────┐
    chars (B, T, W) ── E_c ── char BiLSTM / CNN ──┼─ concat ─ dropout ─ BiLSTM ─ dropout
    case (B, T) ── E_case (optional) ─────────────┘     (B, T, 2H) ─ linear ─ P (B, T, K)
                                                        ─ softmax per token, or CRF path

There are no pretrained embeddings here: rare words are learned through the
characters, and the data side replaces training singletons by ``<unk>`` at
random (``--unk-replace``) so that ``<unk>`` is trained too. With
``lm_weight`` > 0 the BiLSTM also learns to predict each next word (forward
half) and previous word (backward half), a language-model objective over the
same training sentences (Rei 2017, "Semi-supervised Multitask Learning for
Sequence Labeling", arXiv:1704.07156).

Expected result (CoNLL-2003 English, no pretrained embeddings, 1 CPU thread):
``textrnn train tagger --crf`` (character BiLSTM, 10 epochs, Adam 1e-2 decayed
linearly to 0) reaches 89.9 validation and 83.5 test entity F1 in 352 CPU seconds
(~35 per epoch with its validation); ``--char-encoder cnn`` 89.0 and 83.1 in 294 s.
For scale, Lample et al.'s BiLSTM-CRF with characters and pretrained embeddings
reaches 90.94. The best textrnn figure, 88.12 test, is an ensemble of seven wider
word-dropout taggers read with document agreement (``scripts/ner-best.sh``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textrnn.collate import lengths_to_mask
from textrnn.crf import CRF, bio_allowed
from textrnn.device import eval_mode
from textrnn.layers import LSTM
from textrnn.tokenize import CASINGS

CHAR_ENCODERS = ("lstm", "cnn", "none")
CONTEXTS = ("sentence", "document")


@dataclass
class TaggerConfig:
    """Sizes and options of a :class:`Tagger`; the defaults follow Lample et al. 2016."""

    vocab_size: int  # word ids, len(word vocab); from the training split
    num_chars: int  # character ids, len(char vocab); from the training split
    tags: list[str] = field(default_factory=list)  # tag names in id order (the tag vocab)
    word_embedding_size: int = 100  # word vector width (Lample: 100)
    # per-word character encoder: lstm (Lample), cnn (Ma & Hovy 2016) or none
    char_encoder: str = "lstm"
    char_embedding_size: int = 25  # character vector width (Lample: 25)
    char_hidden_size: int = 25  # char BiLSTM width per direction, or CNN filters (Lample: 25)
    # width of a learned word-shape feature (lower/UPPER/Title/digits...); 0 = off
    case_embedding_size: int = 0
    hidden_size: int = 100  # sentence BiLSTM width per direction (Lample: 100)
    num_layers: int = 1  # stacked sentence BiLSTM layers
    dropout: float = 0.5  # dropout on the word inputs and the BiLSTM outputs (Lample: 0.5)
    crf: bool = False  # CRF output layer (Viterbi decoding) instead of a per-token softmax
    lowercase: bool = True  # lower-case words for the word vocabulary; characters keep the case
    zero_digits: bool = True  # map digits to 0 for the word vocabulary
    max_word_chars: int = 30  # characters read per word (the first ones); bounds the char loop
    # What the sentence BiLSTM reads as one sequence: each sentence alone, or a whole
    # document (its sentences in a row, cut at sentence ends every max_context_tokens), so
    # that "Tyson" late in a story is read in the light of "Mike Tyson" earlier on.
    context: str = "sentence"
    # with document context, a longer document is read in pieces of at most this many
    # tokens, cut at sentence ends
    max_context_tokens: int = 1500
    # Language modelling as a second objective (Rei 2017): the forward half of the BiLSTM
    # also predicts the next word and the backward half the previous one, so the encoder
    # learns more from the same sentences than the tags alone teach it.
    lm_weight: float = 0.0  # gamma, the LM loss's weight against the tag loss (Rei: 0.1); 0 = off
    lm_vocab: int = 7500  # the LM predicts the most frequent words, the others as <unk> (Rei: 7500)
    lm_size: int = 50  # width of the LM's tanh layer, per direction (Rei: 50)

    def __post_init__(self) -> None:
        if self.char_encoder not in CHAR_ENCODERS:
            raise ValueError(f"char_encoder must be one of {CHAR_ENCODERS}, "
                             f"got {self.char_encoder!r}")
        if self.context not in CONTEXTS:
            raise ValueError(f"context must be one of {CONTEXTS}, got {self.context!r}")
        if self.max_context_tokens < 1:
            raise ValueError(f"max_context_tokens must be >= 1, got {self.max_context_tokens}")
        if not self.tags:
            raise ValueError("tags must name at least one tag")
        if self.lm_weight < 0 or self.lm_vocab < 1 or self.lm_size < 1:
            raise ValueError("lm_weight must be >= 0, lm_vocab and lm_size >= 1")
        if self.lm_weight and self.num_layers != 1:
            # A second layer's forward half reads the first layer's backward half, which has
            # already read the next word: the LM objective would be answered by copying it.
            raise ValueError("the language-model objective (lm_weight) needs num_layers == 1")


def split_sizes(row: list, sizes: list[int]) -> list[list]:
    """Cut ``row`` into consecutive pieces of the given sizes (zeros are skipped).

    >>> split_sizes(["a", "b", "c", "d"], [1, 3, 0])
    [['a'], ['b', 'c', 'd']]
    """
    pieces, start = [], 0
    for n in sizes:
        if n:
            pieces.append(row[start:start + n])
            start += n
    return pieces


def tagging_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """Entity-level precision, recall and F1 per type and overall (seqeval), and token accuracy.

    seqeval runs in its default mode, which reads tags as conlleval does (an
    ``I-X`` after ``O`` starts an entity), so the numbers are CoNLL-2003's.

    Args:
        gold, predicted: each sentence's tag names, sentence by sentence, of equal lengths.

    Returns:
        ``{"types": {type: {"precision", "recall", "f1", "support"}}, "precision",
        "recall", "f1", "support", "token_accuracy"}``, the overall ones micro-averaged
        over entities; fractions in [0, 1], supports in entities.

    >>> r = tagging_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "O"]])
    >>> r["f1"], r["types"]["LOC"]["recall"], r["support"], r["token_accuracy"]
    (0.6666666666666666, 0.0, 2, 0.75)
    """
    # Imported here: seqeval pulls in scikit-learn, which every other command can do without.
    from seqeval.metrics import classification_report

    report = classification_report(gold, predicted, output_dict=True, zero_division=0)

    def row(r: dict) -> dict:
        return {"precision": float(r["precision"]), "recall": float(r["recall"]),
                "f1": float(r["f1-score"]), "support": int(r["support"])}

    types = {k: row(v) for k, v in sorted(report.items()) if not k.endswith(" avg")}
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0,
                                     "support": 0})
    tokens = sum(map(len, gold))
    correct = sum(g == p for gs, ps in zip(gold, predicted, strict=True)
                  for g, p in zip(gs, ps, strict=True))
    return {"types": types, **row(micro), "token_accuracy": correct / max(tokens, 1)}


def tag_types(tags: list[str]) -> tuple[list[str], Tensor]:
    """The entity types of a BIO tag set, and each tag's type column.

    Returns:
        ``(types, column)``: the sorted type names, and (K,) long with 0 for ``O``
        and ``1 + types.index(X)`` for ``B-X`` and ``I-X``.

    >>> tag_types(["O", "B-LOC", "I-LOC", "B-PER"])
    (['LOC', 'PER'], tensor([0, 1, 1, 2]))
    """
    types = sorted({t[2:] for t in tags if t != "O"})
    return types, torch.tensor([0 if t == "O" else 1 + types.index(t[2:]) for t in tags])


class TaggerBase(nn.Module):
    """What a tagger does with its tag scores: decode, score, predict and evaluate.

    A subclass's ``forward(batch)`` gives the emission scores P (B, T, K); it has a
    ``config`` (its :class:`TaggerConfig`: ``tags``, ``crf``) and ``crf``, a
    :class:`~textrnn.crf.CRF` or None. :class:`Tagger` and
    :class:`~textrnn.models.tagger_ensemble.TaggerEnsemble` are the two.

    Batches (see :class:`textrnn.data.tagger_batches.TaggerBatches`) hold ``words``
    (B, T) long, ``chars`` (B, T, W) long, ``case`` (B, T) long, ``lengths`` (B,)
    long and, for training and evaluation, ``tags`` (B, T) long; id 0 is padding in
    the first three, and padded tags are ignored through ``lengths``. A row is one
    sentence, or with ``context="document"`` several in a row; ``splits`` (B, S)
    long then gives each row's sentence lengths (0-padded), which evaluation uses
    to score sentence by sentence.
    """

    config: TaggerConfig
    crf: CRF | None

    def loss_sum(self, emissions: Tensor, batch: dict) -> Tensor:
        """The tag loss summed over sentences (scalar): CRF -log p(y|x), or the tokens'
        cross-entropy.

        Args:
            emissions: P (B, T, K). batch: with ``tags`` (B, T) and ``lengths`` (B,).
        """
        mask = lengths_to_mask(batch["lengths"], emissions.shape[1])  # (B, T)
        emissions = emissions.float()
        if self.crf is not None:
            return self.crf.nll(emissions, batch["tags"], mask).sum()
        return F.cross_entropy(emissions[mask], batch["tags"][mask], reduction="sum")

    def decode(self, emissions: Tensor, lengths: Tensor) -> list[list[int]]:
        """The tag ids of each row: the Viterbi path with a CRF, else each token's argmax.

        Args:
            emissions: P (B, T, K) float. lengths: (B,) long.

        Returns:
            B lists of tag ids, each as long as its row.
        """
        if self.crf is not None:
            mask = lengths_to_mask(lengths, emissions.shape[1])  # (B, T)
            return self.crf.viterbi(emissions.float(), mask)
        best = emissions.argmax(-1).tolist()  # (B, T)
        return [row[:n] for row, n in zip(best, lengths.tolist(), strict=True)]

    def type_probabilities(self, emissions: Tensor, lengths: Tensor) -> Tensor:
        """Each token's probability of being ``O`` or inside an entity of each type.

        With a CRF these are its marginals summed over ``B-X`` and ``I-X``; with a
        softmax, each token's softmax so summed.

        Args:
            emissions: P (B, T, K). lengths: (B,) long.

        Returns:
            (B, T, 1 + types) float, in :func:`tag_types` order; 0 at padding.
        """
        mask = lengths_to_mask(lengths, emissions.shape[1])  # (B, T)
        if self.crf is not None:
            p = self.crf.marginals(emissions.float(), mask)  # (B, T, K)
        else:
            p = emissions.float().softmax(-1) * mask.unsqueeze(2)  # (B, T, K)
        types, column = tag_types(self.config.tags)
        out = p.new_zeros(*p.shape[:2], 1 + len(types))  # (B, T, C)
        return out.index_add_(2, column.to(p.device), p)

    @torch.no_grad()
    def predict(self, batch: dict) -> list[list[int]]:
        """The tag ids of each sentence (Viterbi path with a CRF, else each token's argmax).

        Returns:
            B lists, each as long as its sentence.
        """
        with eval_mode(self):
            emissions = self(batch)  # (B, T, K)
        return self.decode(emissions, batch["lengths"])

    @torch.no_grad()
    def evaluate(self, batches: Iterable[dict]) -> dict[str, float]:
        """Loss, entity-level F1/precision/recall (seqeval) and token accuracy over batches.

        Returns:
            ``val_loss`` (per sentence), ``val_f1``, ``val_precision``, ``val_recall``
            and ``val_acc`` (tokens), each a float; F1 etc. are fractions in [0, 1].
        """
        with eval_mode(self):
            names = self.config.tags
            loss_sum, sentences, gold, predicted = 0.0, 0, [], []
            for batch in batches:
                emissions = self(batch)  # (B, T, K)
                loss_sum += float(self.loss_sum(emissions, batch))
                sentences += batch["lengths"].shape[0]
                tags, lengths = batch["tags"].tolist(), batch["lengths"].tolist()
                # A row may hold several sentences (document context); score them one by one,
                # as CoNLL does, so that no entity runs across a sentence end.
                splits = batch["splits"].tolist() if "splits" in batch else [[n] for n in lengths]
                for row, path, n, sizes in zip(tags, self.decode(emissions, batch["lengths"]),
                                               lengths, splits, strict=True):
                    gold += split_sizes([names[i] for i in row[:n]], sizes)
                    predicted += split_sizes([names[i] for i in path], sizes)
        scores = tagging_scores(gold, predicted)
        return {"val_loss": loss_sum / max(sentences, 1), "val_f1": scores["f1"],
                "val_precision": scores["precision"], "val_recall": scores["recall"],
                "val_acc": scores["token_accuracy"]}


class Tagger(TaggerBase):
    """BiLSTM tagger with a character encoder and a softmax or CRF output.

    It reads the batches of :class:`TaggerBase`; with ``lm_weight`` they also hold
    ``lm_targets`` (B, T) long for the language-model objective.
    """

    config_class = TaggerConfig
    task = "tagger"  # its key in MODELS, stored in every checkpoint
    best_metric, best_mode = "val_f1", "max"  # the evaluate() key that picks best.pt

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.word_embedding = nn.Embedding(c.vocab_size, c.word_embedding_size, padding_idx=0)
        input_size = c.word_embedding_size
        if c.char_encoder != "none":
            self.char_embedding = nn.Embedding(c.num_chars, c.char_embedding_size, padding_idx=0)
        if c.char_encoder == "lstm":
            self.char_lstm = LSTM(c.char_embedding_size, c.char_hidden_size, bidirectional=True)
            input_size += 2 * c.char_hidden_size
        elif c.char_encoder == "cnn":
            self.char_conv = nn.Conv1d(c.char_embedding_size, c.char_hidden_size, 3, padding=1)
            input_size += c.char_hidden_size
        if c.case_embedding_size:
            self.case_embedding = nn.Embedding(len(CASINGS), c.case_embedding_size, padding_idx=0)
            input_size += c.case_embedding_size
        self.dropout = nn.Dropout(c.dropout)
        self.lstm = LSTM(input_size, c.hidden_size, num_layers=c.num_layers, bidirectional=True,
                         dropout=c.dropout if c.num_layers > 1 else 0.0)
        self.output = nn.Linear(2 * c.hidden_size, len(c.tags))
        self.crf = CRF(len(c.tags), bio_allowed(c.tags)) if c.crf else None
        if c.lm_weight:
            V_lm = min(c.lm_vocab, c.vocab_size)  # word ids below it are predicted as they are
            self.lm_hidden = nn.ModuleList(nn.Linear(c.hidden_size, c.lm_size) for _ in "fb")
            self.lm_output = nn.ModuleList(nn.Linear(c.lm_size, V_lm) for _ in "fb")

    def char_features(self, chars: Tensor) -> Tensor:
        """Encode each word from its characters.

        Args:
            chars: (B, T, W) long, 0 at padding (a padded word is all 0).

        Returns:
            (B, T, D_c) float, zero at padded words.
        """
        B, T, W = chars.shape
        char_lengths = (chars != 0).sum(-1)  # (B, T)
        real = char_lengths > 0  # (B, T)
        # Each distinct spelling is encoded once ("the", ",", "." recur in every batch).
        flat, inverse = torch.unique(chars[real], dim=0, return_inverse=True)  # (U, W), (N,)
        x = self.char_embedding(flat)  # (U, W, E_c)
        if self.config.char_encoder == "lstm":
            _, (h, _) = self.char_lstm(x, lengths=(flat != 0).sum(-1))  # h: (2, U, H_c)
            words = torch.cat([h[0], h[1]], dim=-1)  # (U, 2H_c) last fwd, first bwd state
        else:
            conv = self.char_conv(x.transpose(1, 2)).transpose(1, 2)  # (U, W, F)
            pad = (flat == 0).unsqueeze(-1)  # (U, W, 1)
            words = conv.masked_fill(pad, float("-inf")).max(dim=1).values  # (U, F)
        out = words.new_zeros(B, T, words.shape[-1])  # (B, T, D_c)
        out[real] = words[inverse]  # (N, D_c) back to every occurrence
        return out

    def forward(self, batch: dict) -> Tensor:
        """Tag scores.

        Returns:
            P (B, T, K) float emission scores; rows past each sentence's end are
            the output bias only, and are ignored by every user.
        """
        return self.output(self.encode(batch))  # (B, T, K)

    def encode(self, batch: dict) -> Tensor:
        """The BiLSTM's states after dropout: (B, T, 2H), forward half first."""
        parts = [self.word_embedding(batch["words"])]  # (B, T, E_w)
        if self.config.char_encoder != "none":
            parts.append(self.char_features(batch["chars"]))  # (B, T, D_c)
        if self.config.case_embedding_size:
            parts.append(self.case_embedding(batch["case"]))  # (B, T, E_case)
        x = self.dropout(torch.cat(parts, dim=-1))  # (B, T, D)
        h, _ = self.lstm(x, lengths=batch["lengths"])  # (B, T, 2H)
        return self.dropout(h)  # (B, T, 2H)

    def lm_loss_sum(self, h: Tensor, batch: dict) -> Tensor:
        """Rei 2017's language-model loss, summed over tokens (scalar).

        The forward state at t has read words 1..t and predicts word t+1; the
        backward state at t has read words t..n and predicts word t-1.

        Args:
            h: (B, T, 2H) the BiLSTM's states, forward half first.
            batch: with ``lm_targets`` (B, T) long, the words before any ``<unk>``
                replacement, rare ones as ``<unk>``, 0 at padding.
        """
        H = self.config.hidden_size
        y = batch["lm_targets"]  # (B, T)
        real = lengths_to_mask(batch["lengths"], y.shape[1])  # (B, T)
        next_word = y[:, 1:]  # (B, T-1) 0 past each row's end
        prev_word = y[:, :-1].masked_fill(~real[:, 1:], 0)  # (B, T-1) only from real states
        total = h.new_zeros(())
        for d, (h_d, target) in enumerate(((h[:, :-1, :H], next_word),
                                           (h[:, 1:, H:], prev_word))):
            keep = target != 0  # (B, T-1)
            m = torch.tanh(self.lm_hidden[d](h_d[keep]))  # (N, M)
            logits = self.lm_output[d](m).float()  # (N, V_lm)
            total = total + F.cross_entropy(logits, target[keep], reduction="sum")
        return total

    def loss(self, batch: dict) -> Tensor:
        """Mean negative log-likelihood per sentence (scalar), plus the weighted LM loss."""
        h = self.encode(batch)  # (B, T, 2H)
        total = self.loss_sum(self.output(h), batch)
        if self.config.lm_weight:
            total = total + self.config.lm_weight * self.lm_loss_sum(h, batch)
        return total / batch["lengths"].shape[0]

    def num_tokens(self, batch: dict) -> int:
        """Real tokens in ``batch``, for the trainer's speed display."""
        return int(batch["lengths"].sum())
