"""Question answering over bAbI stories: the registered model and its architectures.

``QAConfig.arch`` picks the network: :class:`~textrnn.models.memn2n.MemN2N`
(End-To-End Memory Networks, the default; its equations are in its module),
:class:`~textrnn.models.entnet.EntNet` (Recurrent Entity Network),
:class:`~textrnn.models.qrn.QRN` (Query-Reduction Network) or
:class:`~textrnn.models.lstm_reader.LSTMReader` (the Keras bAbI example's model),
all over the contract of :mod:`textrnn.models.qa_base`.

Expected results (1 CPU thread, Adam, batch 32, clip 40, 3 hops, d 50, PE+TE+LS+RN,
``textrnn train qa``'s defaults: lr 0.005 decayed linearly to 0 over 30 epochs,
answer_hidden 64, 12 entity slots): tasks 1 and 6 of en-10k trained jointly reach
100% / 100% test accuracy (~100 s), and 100% / 100% with every name and place
renamed (``textrnn data renamed``); the generated four-kind stories (20k
questions) 99.1% in ~130 s. Before entity slots (20 epochs): QA1-10k passed 98.6%
after 2 epochs (~6 s) and QA6-10k reached 99.8% (~35 s; without the answer layer
QA6 stays at 93-97% whatever the lr schedule). EntNet: QA1-10k 100% test within a
3-minute budget.
"""

from __future__ import annotations

from torch import Tensor

from textrnn.models.entnet import EntNet
from textrnn.models.lstm_reader import LSTMReader
from textrnn.models.memn2n import MemN2N, position_encoding
from textrnn.models.qa_base import QAConfig, QANet
from textrnn.models.qrn import QRN

ARCHS = {"memn2n": MemN2N, "lstm_reader": LSTMReader, "entnet": EntNet, "qrn": QRN}


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


__all__ = ["ARCHS", "QRN", "EntNet", "LSTMReader", "MemN2N", "QAConfig", "QAModel", "QANet",
           "position_encoding"]
