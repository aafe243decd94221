"""The pictures and the JSON of ``textrnn demo vanishing`` (:mod:`textrnn.vanishing`).

Two PNGs, each written atomically: ``accuracy.png`` (accuracy against the distance
T, one curve per cell, chance and 95% marked) and ``gradients.png`` (the gradient
ratio ``‖∂L/∂h_{t-k}‖ / ‖∂L/∂h_t‖`` against k on a log scale, at initialisation and
after training); and ``vanishing.json`` with every number behind them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from textrnn.atomic import write_file
from textrnn.figures import figure, save_png
from textrnn.vanishing import NAMES, CellResult, VanishingConfig, reading

COLOURS = {"rnn": "tab:red", "gru": "tab:blue", "lstm": "tab:green"}
# Distinct markers and dashes, so that equal curves (GRU and LSTM at 100%) both show.
STYLES = {"rnn": dict(marker="o", markersize=6), "gru": dict(marker="s", markersize=10,
          linestyle="--", fillstyle="none"), "lstm": dict(marker="o", markersize=5)}
FLOOR = 1e-40  # the log axis stops here: the plain RNN's ratio goes to 1e-30 and below


def plot_accuracy(results: dict[str, CellResult], config: VanishingConfig, path) -> Path:
    """Accuracy at T of the model trained on 1..T, per cell."""
    fig = figure(6.5, 4.2)
    ax = fig.add_subplot()
    for cell, r in results.items():
        ax.plot(list(r.accuracy), list(r.accuracy.values()), label=NAMES[cell],
                color=COLOURS[cell], **STYLES[cell])
    ax.axhline(config.chance, color="grey", linestyle="--", label=f"chance ({config.chance:.1%})")
    ax.axhline(0.95, color="grey", linestyle=":", label="95%")
    ax.set_xscale("log")
    ax.set_xticks(config.distances, [str(d) for d in config.distances])
    ax.minorticks_off()
    ax.set_ylim(0, 1.03)
    ax.set_xlabel("distance T (distractors between the symbol and the question)")
    ax.set_ylabel("test accuracy at T")
    ax.set_title(f"Recall the first token (H = {config.hidden_size}, trained on 1..T)")
    ax.legend(loc="center left", fontsize="small")
    ax.grid(alpha=0.3)
    return save_png(fig, path)


def plot_gradients(results: dict[str, CellResult], config: VanishingConfig, path) -> Path:
    """The gradient ratio against k, at initialisation (left) and after training (right)."""
    fig = figure(11.0, 4.2)
    axes = fig.subplots(1, 2, sharey=True)
    T = max(config.distances)
    lowest = min(g for r in results.values() for key in ("grad_init", "grad_trained")
                 for curve in getattr(r, key).values() for g in curve)
    for ax, when, key in ((axes[0], "at initialisation", "grad_init"),
                          (axes[1], f"after training on 1..{T}", "grad_trained")):
        for cell, r in results.items():
            grads = getattr(r, key)
            ks = range(len(grads["h"]))
            ax.plot(ks, [max(g, FLOOR) for g in grads["h"]], color=COLOURS[cell],
                    label=f"{NAMES[cell]}: " + r"$\Vert\partial L/\partial h\Vert$")
            if "c" in grads:
                ax.plot(ks, [max(g, FLOOR) for g in grads["c"]], color=COLOURS[cell],
                        linestyle="--", label=f"{NAMES[cell]}: "
                        + r"$\Vert\partial L/\partial c\Vert$ (cell state)")
        ax.set_yscale("log")
        ax.set_ylim(max(FLOOR, lowest / 10), 10.0)
        ax.set_xlabel("k (steps back from the question)")
        ax.set_title(when)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(r"$\Vert\partial L/\partial h_{t-k}\Vert \;/\; "
                       r"\Vert\partial L/\partial h_t\Vert$")
    axes[1].legend(loc="lower left", fontsize="small")
    fig.suptitle(f"How far back the gradient reaches ({config.grad_examples} sequences of "
                 f"T = {T})")
    return save_png(fig, path)


def to_json(results: dict[str, CellResult], config: VanishingConfig) -> dict:
    """Every number: the config, per cell its accuracies, steps, losses and gradient
    ratios (index k), and the reading."""
    return {"config": asdict(config), "chance": config.chance,
            "cells": {cell: asdict(r) for cell, r in results.items()},
            "reading": reading(results, config)}


def write(results: dict[str, CellResult], config: VanishingConfig, out) -> dict[str, Path]:
    """``accuracy.png``, ``gradients.png`` and ``vanishing.json`` in ``out``.

    Returns:
        name -> path of each file written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"accuracy": plot_accuracy(results, config, out / "accuracy.png"),
             "gradients": plot_gradients(results, config, out / "gradients.png"),
             "json": out / "vanishing.json"}
    text = json.dumps(to_json(results, config), indent=1)
    write_file(paths["json"], lambda f: f.write(text.encode("utf-8")))
    return paths
