"""Forward+backward throughput of textrnn's layers against raw torch.nn, in one process.

For LSTM, GRU and RNN at a few sizes it prints tokens/s of

- ``torch``:   raw ``torch.nn.LSTM`` etc. on a padded batch (equal lengths);
- ``fused``:   ``textrnn.LSTM(impl="fused")`` on the same batch, as a ratio to torch
               (target >= 0.95);
- ``cells``:   ``impl="cells"``, the equation path, as a ratio to torch;

and on ragged lengths (uniform in [T/4, T]), where only real tokens count:

- ``packed``:  torch with ``pack_padded_sequence`` (the usual exact way);
- ``fused``:   ours, as a speed-up over packed (target >= 2x), after checking
               in float64 that both give the same outputs and final states;
- ``vs padded``: ours on the ragged batch against torch on the same batch padded
               (equal lengths), both per real token: the cost of exactness.

All variants are timed round-robin, ``--repeats`` rounds, each round starting at
the next variant so that no variant always runs first. Tokens/s are medians over
the rounds; each ratio is the median of its per-round ratios, so a slow spell of
the machine (other processes, frequency) that hits one round cancels out of it.

``--ragged`` and ``--segment-overhead`` set the layers' arguments of the same
names (textrnn/ragged.py), to time one ragged path or re-measure SEGMENT_COST.

Usage:  python bench/layers.py [--quick] [--device cpu|cuda] [--repeats N]
                               [--ragged auto|rows|segments|one-call] [--segment-overhead X]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textrnn.layers import GRU, LSTM, RNN
from textrnn.ragged import RAGGED_PATHS

KINDS = {"LSTM": (LSTM, nn.LSTM), "GRU": (GRU, nn.GRU), "RNN": (RNN, nn.RNN)}
SIZES = [(32, 50, 128), (64, 100, 256), (64, 100, 512)]  # (batch, seq_len, hidden)
QUICK_SIZES = [(32, 50, 128)]


def timed_interleaved(fns: dict, device, repeats: int) -> dict:
    """Seconds of each ``fn()`` in every round, measured round-robin so that drift in
    the machine's speed (frequency, other processes) hits every variant alike.

    Returns:
        ``{name: [seconds of round 0, round 1, ...]}``.
    """
    for fn in fns.values():  # two warm-up runs each
        fn()
        fn()
    names = list(fns)
    times = {name: [] for name in fns}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fns[name]()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    return times


def paired_ratio(slow: list[float], fast: list[float]) -> float:
    """Median over rounds of ``slow[r] / fast[r]``: how many times faster ``fast`` ran.

    >>> paired_ratio([2.0, 4.0, 2.2], [1.0, 1.0, 2.0])
    2.0
    """
    return statistics.median(s / f for s, f in zip(slow, fast, strict=True))


def step(module, x, lengths=None, packed=False):
    """One forward+backward; the loss touches outputs and the final state."""
    module.zero_grad(set_to_none=True)
    if packed:
        out, state = module(pack_padded_sequence(x, lengths, batch_first=True,
                                                 enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    elif lengths is None:
        out, state = module(x)
    else:
        out, state = module(x, lengths)
    h = state[0] if isinstance(state, tuple) else state
    (out.sum() + h.sum()).backward()
    return out, state


def bench_one(kind, batch, seq_len, hidden, device, repeats, num_layers, bidirectional,
              ragged="auto", segment_overhead=None):
    ours_cls, torch_cls = KINDS[kind]
    torch.manual_seed(0)
    ref = torch_cls(hidden, hidden, num_layers, batch_first=True,
                    bidirectional=bidirectional).to(device)
    fused = ours_cls(hidden, hidden, num_layers, bidirectional=bidirectional, ragged=ragged,
                     segment_overhead=segment_overhead).to(device)
    cells = ours_cls(hidden, hidden, num_layers, bidirectional=bidirectional,
                     impl="cells").to(device)
    fused.load_state_dict(ref.state_dict())
    cells.load_state_dict(ref.state_dict())
    x = torch.randn(batch, seq_len, hidden, device=device, requires_grad=True)
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(seq_len // 4, seq_len + 1, (batch,), generator=g)
    lengths[0] = seq_len
    equal_tokens, ragged_tokens = batch * seq_len, int(lengths.sum())

    # Same numbers first: ours on the ragged batch against torch's packed run, in
    # float64 so that a real difference cannot hide in float32 rounding.
    x64 = x.detach().double().requires_grad_()
    out_a, s_a = step(copy.deepcopy(fused).double(), x64, lengths.to(device))
    out_b, s_b = step(copy.deepcopy(ref).double(), x64, lengths, packed=True)
    h_a = s_a[0] if isinstance(s_a, tuple) else s_a
    h_b = s_b[0] if isinstance(s_b, tuple) else s_b
    diff = max((out_a - out_b).abs().max().item(), (h_a - h_b).abs().max().item())
    if diff > 1e-9:
        raise SystemExit(f"{kind}: ragged outputs differ from torch's packed run by {diff:g}")

    lengths_dev = lengths.to(device)
    t = timed_interleaved({
        "torch": lambda: step(ref, x),
        "fused": lambda: step(fused, x),
        "cells": lambda: step(cells, x),
        "packed": lambda: step(ref, x, lengths, packed=True),
        "fused_ragged": lambda: step(fused, x, lengths_dev),
    }, device, repeats)
    median = {name: statistics.median(ts) for name, ts in t.items()}
    return {
        "torch": equal_tokens / median["torch"],
        "packed": ragged_tokens / median["packed"],
        "fused_ragged": ragged_tokens / median["fused_ragged"],
        # Speeds as ratios, each the median of the rounds' ratios (same tokens on both sides).
        "fused_vs_torch": paired_ratio(t["torch"], t["fused"]),
        "cells_vs_torch": paired_ratio(t["torch"], t["cells"]),
        "ragged_vs_packed": paired_ratio(t["packed"], t["fused_ragged"]),
        # Real tokens/s of ours on the ragged batch over torch's on the padded batch: 1.0
        # means exact ragged handling costs what the padded run does.
        "vs_padded": paired_ratio(t["torch"], t["fused_ragged"]),
        "diff": diff,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one small size only")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per measurement")
    p.add_argument("--num-layers", type=int, default=1)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--kinds", default="LSTM,GRU,RNN")
    p.add_argument("--ragged", default="auto", choices=RAGGED_PATHS,
                   help="the ragged path of ours (the LSTM has no 'rows')")
    p.add_argument("--segment-overhead", type=float, default=None,
                   help="price of one more time segment in row-steps (default: from SEGMENT_COST)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    sizes = QUICK_SIZES if args.quick else SIZES
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"layers={args.num_layers} bidirectional={args.bidirectional} ragged={args.ragged}")
    print(f"{'kind':5} {'B':>3} {'T':>4} {'H':>4} | {'torch tok/s':>11} {'fused':>6} "
          f"{'cells':>6} | {'packed tok/s':>12} {'fused ragged':>12} {'speed-up':>8} "
          f"{'vs padded':>9}")
    worst_equal, worst_ragged = float("inf"), float("inf")
    for kind in args.kinds.split(","):
        for batch, seq_len, hidden in sizes:
            r = bench_one(kind, batch, seq_len, hidden, device, args.repeats,
                          args.num_layers, args.bidirectional, args.ragged, args.segment_overhead)
            eq, rg = r["fused_vs_torch"], r["ragged_vs_packed"]
            worst_equal, worst_ragged = min(worst_equal, eq), min(worst_ragged, rg)
            print(f"{kind:5} {batch:>3} {seq_len:>4} {hidden:>4} | {r['torch']:>11,.0f} "
                  f"{eq:>5.2f}x {r['cells_vs_torch']:>5.2f}x | {r['packed']:>12,.0f} "
                  f"{r['fused_ragged']:>12,.0f} {rg:>7.2f}x {r['vs_padded']:>8.2f}x")
    print(f"worst fused/torch on equal lengths: {worst_equal:.2f} (target >= 0.95); "
          f"worst fused-ragged/packed: {worst_ragged:.2f}x (target >= 2)")


if __name__ == "__main__":
    main()
