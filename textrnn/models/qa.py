"""Question answering over bAbI stories: the registered model and its architectures.

The architectures: :class:`~textrnn.models.memn2n.MemN2N` and
:class:`~textrnn.models.lstm_reader.LSTMReader`, over :mod:`textrnn.models.qa_base`.

MemN2N (Sukhbaatar et al. 2015, "End-To-End Memory Networks", arXiv:1503.08895)
embeds every story sentence twice, as an address m_i and a content c_i, and
reads the memory K times, each hop refining the question state u::

    story (B, S, W) ─ A^k, PE, T_A ─ m (B, S, d) ┐
    question (B, Wq) ─ B, PE ─ u¹ (B, d) ─────── p = softmax(m u^k) ─ o^k = Σ_i p_i c_i
                                                 u^{k+1} = u^k + o^k     (k = 1..K)
    story ─ C^k, PE, T_C ─ c (B, S, d) ──────────┘    â = softmax(W ReLU(H u^{K+1} + b))

The paper's answer is the linear softmax(W u^{K+1}); ``answer_hidden > 0`` adds
the ReLU layer H (``textrnn train qa`` turns it on), because a yes/no question
("Is John in the kitchen?") asks whether the place in the question equals the
place in the retrieved memory, and no linear function of u = q + o tells that.

:class:`LSTMReader` is the "memory network with an LSTM reader" that the Keras
bAbI example ships (it claims 98.6% on QA1-10k after 120 epochs).

Expected results (1 CPU thread, Adam, batch 32, clip 40, 3 hops, d 50, PE+TE+LS+RN,
``textrnn train qa``'s defaults: lr 0.005 decayed linearly to 0 over 30 epochs,
answer_hidden 64, 12 entity slots): tasks 1 and 6 of en-10k trained jointly reach
100% / 100% test accuracy (~100 s), and 98.4% / 99.8% with every name and place
renamed (``textrnn data renamed``); the generated four-kind stories (20k
questions) 99.1% in ~130 s. Before entity slots (20 epochs): QA1-10k passed 98.6%
after 2 epochs (~6 s) and QA6-10k reached 99.8% (~35 s; without the answer layer
QA6 stays at 93-97% whatever the lr schedule).
The LSTM reader learns slowly: ~82% on QA1-10k after 30 epochs (lr 0.005, d 64,
~3.3 s per epoch).
"""

from __future__ import annotations

from torch import Tensor

from textrnn.models.entnet import EntNet
from textrnn.models.lstm_reader import LSTMReader
from textrnn.models.memn2n import MemN2N, position_encoding
from textrnn.models.qa_base import QAConfig, QANet

ARCHS = {"memn2n": MemN2N, "lstm_reader": LSTMReader, "entnet": EntNet}


class QAModel(QANet):
    """The registered QA model: builds the network named by ``config.arch``.

    Args:
        config: a :class:`QAConfig`.

    Raises:
        ValueError: on an unknown ``arch``, or a ``weight_tying`` other than "adjacent".
    """

    config_class = QAConfig  # what checkpoint.load rebuilds the config with
    task = "qa"  # its key in MODELS, stored in every checkpoint
    best_metric, best_mode = "val_acc", "max"  # the evaluate() key that picks best.pt

    def __init__(self, config: QAConfig) -> None:
        super().__init__()
        if config.arch not in ARCHS:
            raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {config.arch!r}")
        self.config = config
        self.net = ARCHS[config.arch](config)

    def forward(self, batch: dict) -> tuple[Tensor, Tensor]:
        """See :meth:`MemN2N.forward`."""
        return self.net(batch)

    @property
    def linear_start_active(self) -> bool:
        """True while MemN2N's memory softmax is removed (linear start)."""
        return self.net.linear_start_active

    def on_evaluate(self, metrics: dict[str, float]) -> bool:
        """Forward the trainer's metrics to the network (MemN2N's linear start)."""
        return self.net.on_evaluate(metrics)


__all__ = ["ARCHS", "EntNet", "LSTMReader", "MemN2N", "QAConfig", "QAModel", "QANet",
           "position_encoding"]
