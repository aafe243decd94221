"""``textrnn export``: a checkpoint as ONNX, for ONNX Runtime and other runtimes.

::

    textrnn export --checkpoint runs/chatbot/best.pt --out chatbot.onnx [--quantize int8]
    textrnn serve --checkpoint chatbot.onnx --runtime onnx
    textrnn export --checkpoint runs/mt/best.pt --out mt-onnx   # seq2seq: a folder

One file for every task but seq2seq, which is a folder of two graphs (the encoder and
one decoder step) and its sentencepiece models (:mod:`textrnn.export_seq2seq`).

A thin shell over :func:`textrnn.export.export` (torch is imported only when it runs).
"""

from __future__ import annotations

import argparse


def cmd_export(args: argparse.Namespace) -> int:
    """``export``: write ``--out`` and say what it holds."""
    import torch

    from textrnn.export import export

    torch.set_num_threads(max(args.threads, 1))
    report = export(args.checkpoint, args.out, quantize=args.quantize)
    kind = f", {report.quantize} weights" if report.quantize else ""
    print(f"{report.task} model -> {report.path} ({report.bytes / 1e6:.2f} MB{kind}, "
          f"{report.seconds:.1f} s)")
    return 0


def add_commands(commands) -> None:
    """``textrnn export --checkpoint FILE --out FILE.onnx``."""
    p = commands.add_parser(
        "export", help="export a checkpoint to ONNX (free batch size and lengths)",
        description="Export a checkpoint's model to ONNX: one file holding the graph, its "
        "weights and (as metadata) the config and vocabularies, so it runs without the "
        "checkpoint: textrnn.runtime.load(FILE), or textrnn serve --runtime onnx. A seq2seq "
        "checkpoint becomes a folder: encoder.onnx, decoder_step.onnx and its sentencepiece "
        "models (textrnn.runtime.translate). Batch size and sequence lengths stay free. "
        "Needs the onnx extra: pip install 'textrnn[onnx]'.",
    )
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="a .pt checkpoint")
    p.add_argument("--out", required=True, metavar="PATH",
                   help="the .onnx file to write (seq2seq: the folder to write)")
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="store the weights as int8 (dynamic quantisation): smaller, "
                        "slightly less exact")
    p.add_argument("--threads", type=int, default=1, help="torch threads while recording "
                   "(default: %(default)s)")
    p.set_defaults(func=cmd_export)
