"""Question answering over bAbI stories: the registered model and its architectures.

``QAConfig.arch`` picks the network: :class:`~textrnn.models.qrn.QRN`
(Query-Reduction Network, the default), :class:`~textrnn.models.memn2n.MemN2N`
(End-To-End Memory Networks), :class:`~textrnn.models.entnet.EntNet` (Recurrent
Entity Network) or :class:`~textrnn.models.lstm_reader.LSTMReader` (the Keras bAbI
example's model), all over the contract of :mod:`textrnn.models.qa_base`.

Expected results (1 CPU thread, ``textrnn train qa``'s defaults: QRN, 2 layers, d 50,
Adam lr 0.005 decayed linearly over 30 epochs, batch 32 bucketed by story length,
clip 40, 12 entity slots): en-10k tasks 1 and 6 trained jointly reach 100% / 100%
test accuracy in ~2 min, and 100% / 100% with every name and place renamed
(``textrnn data renamed``); en (1k) tasks 1,6 reach QA1 100% and QA6 99.8-100%
over seeds 1-3. MemN2N (``arch="memn2n"``, with ``answer_hidden=64``): the same
10k figures, but QA6-1k at 86-93%. docs/results.md has every figure's command.
"""

from __future__ import annotations

from torch import Tensor

from textrnn.models.entnet import EntNet
from textrnn.models.lstm_reader import LSTMReader
from textrnn.models.memn2n import MemN2N, position_encoding
from textrnn.models.qa_base import QAConfig, QANet
from textrnn.models.qa_lists import ListAnswers
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
        if config.list_slots > 1 and config.entity_slots > 0:
            self.lists = ListAnswers(config.entity_slots, config.list_slots)

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
