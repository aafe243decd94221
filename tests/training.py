"""The one small training loop the model tests share (the trainer itself, with its
checkpoints and logs, is tested in test_train.py and test_models.py)."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def train_steps(model, batches: Iterable[dict], epochs: int = 1, lr: float = 0.01,
                grad_clip: float = 0.0) -> list[float]:
    """Adam over ``batches`` for ``epochs`` passes (``set_epoch`` called when the batches
    have it); returns the mean loss of each pass. A list of one batch repeated N times
    is N steps on that batch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    means = []
    for epoch in range(epochs):
        if hasattr(batches, "set_epoch"):
            batches.set_epoch(epoch)
        model.train()
        losses = []
        for batch in batches:
            loss = model.loss(batch)
            optimizer.zero_grad()
            loss.backward()
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            losses.append(loss.item())
        means.append(sum(losses) / len(losses))
    return means
