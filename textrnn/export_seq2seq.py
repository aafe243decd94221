"""Export of a translation model: its encoder and one decoder step, as a folder.

::

    textrnn export --checkpoint runs/mt/best.pt --out mt-onnx
    mt-onnx/encoder.onnx         (src, src_lengths) -> h[, c][, feed][, memory, keys, mask]
    mt-onnx/decoder_step.onnx    (tokens, h[, c][, feed][, memory, keys, mask])
                                     -> log_probs, h_next[, c_next][, feed_next][, attention]
    mt-onnx/source.model, target.model   the sentencepiece models (subword vocabularies)

    bundle = textrnn.runtime.load("mt-onnx"); textrnn.runtime.translate(bundle, ["..."])

Why a folder of two graphs, not one file: the encoder runs once per batch and the
decoder step once per output token, and a search (greedy or beam) decides in Python
between two steps which rows go on (:mod:`textrnn.decode`). ONNX Runtime runs one
graph per session, with every graph input fed on every call, so one file holding both
(as two functions, or behind an ``If`` on a mode flag) would need the encoder's inputs
fed to every step, or a runtime that knows our convention to split it. Two plain
graphs load in any ONNX runtime as they are, and the sentencepiece models beside them
read in any sentencepiece binding; the metadata (task, config, vocabularies, the graphs'
input and output names) is in both graphs, with one ``export_id`` so a runtime can
tell a mixed-up pair.

The state is :meth:`textrnn.models.seq2seq.Seq2Seq.start`'s dict, batch-first, one
graph tensor per entry: the decoder step takes it and gives back the entries that
change (``h``, ``c``, ``feed``), so a search reorders rows between steps with
:func:`textrnn.decode.reorder` as it does for the torch model. Each recurrent layer is
one ONNX node (:mod:`textrnn.onnx_rnn`); batch size, source length and rows are free.

The folder is written as a temp folder beside ``--out``, then renamed into place; an
older export there is swapped out whole, so a failed export leaves it as it was.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
import uuid
from os import PathLike
from pathlib import Path

import torch
from torch import Tensor, nn

from textrnn import atomic, onnx_rnn
from textrnn.collate import lengths_to_mask
from textrnn.export import ExportError, _quantize, add_metadata, base_metadata, record_graph
from textrnn.subword import KIND, SubwordVocab

ENCODER, STEP = "encoder.onnx", "decoder_step.onnx"
VOCAB_FILES = {"source": "source.model", "target": "target.model"}  # sentencepiece only
FILES = (ENCODER, STEP, *VOCAB_FILES.values())  # all an export folder may hold


def state_names(config) -> tuple[list[str], list[str]]:
    """The decoder state's entries: those a step changes, and the source's (fixed).

    >>> from textrnn.models.seq2seq import Seq2SeqConfig
    >>> state_names(Seq2SeqConfig(10, 10, cell="lstm", input_feeding=True))
    (['h', 'c', 'feed'], ['memory', 'keys', 'mask'])
    """
    recurrent = ["h", *(["c"] if config.cell == "lstm" else []),
                 *(["feed"] if config.input_feeding else [])]
    source = ["memory", "keys", "mask"] if config.attention != "none" else []
    return recurrent, source


class EncoderExport(nn.Module):
    """:meth:`Seq2Seq.start` as ``(src, src_lengths) -> state``, the encoder one ONNX node
    per layer (the lengths check stays in the runtime: it reads a value)."""

    inputs = ["src", "src_lengths"]
    dims = {"src": {0: "batch", 1: "source_len"}, "src_lengths": {0: "batch"}}

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.config = model.config
        self.net = copy.deepcopy(model).eval()
        recurrent, source = state_names(self.config)
        self.outputs = [*recurrent, *source]

    def example(self, seed: int = 0) -> tuple[Tensor, ...]:
        """Inputs to record with: B=2 sources of S=5 and 3 tokens."""
        g = torch.Generator().manual_seed(seed)
        src = torch.randint(1, max(self.config.src_vocab_size, 2), (2, 5), generator=g)
        src[1, 3:] = 0
        return src, torch.tensor([5, 3])

    def forward(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, ...]:
        """src (B, S) long, src_lengths (B,) long, each >= 1 -> the state entries named
        by ``outputs``: h, c (B, L, H), feed (B, O), memory (B, S, H), keys (B, S, H or
        A), mask (B, S) bool."""
        net, c = self.net, self.config
        L, H, B = c.num_layers, c.hidden_size, src.shape[0]
        x = net.src_embedding(src)  # (B, S, E); dropout is the identity in eval
        enc, final = onnx_rnn.call(net.encoder, x, src_lengths)  # (B, S, 2H), zero past ends

        def bridge(last: Tensor, linear: nn.Linear) -> Tensor:
            both = last.reshape(L, 2, B, H).permute(2, 0, 1, 3).reshape(B, L, 2 * H)
            return torch.tanh(linear(both))  # (B, L, H)

        state = {}
        if c.cell == "lstm":
            state["h"], state["c"] = bridge(final[0], net.bridge), bridge(final[1], net.bridge_c)
        else:
            state["h"] = bridge(final, net.bridge)
        if c.input_feeding:
            state["feed"] = enc.new_zeros(B, net.output_size)  # h̃_0 = 0, (B, O)
        if net.has_attention:
            state["memory"] = net.memory(enc)  # (B, S, H)
            state["keys"] = net.attention.project_keys(state["memory"])  # (B, S, H or A)
            state["mask"] = lengths_to_mask(src_lengths, src.shape[1])  # (B, S)
        return tuple(state[name] for name in self.outputs)


class StepExport(nn.Module):
    """:meth:`Seq2Seq.step` as ``(tokens, state...) -> (log_probs, new state..., attention)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.config = model.config
        self.net = copy.deepcopy(model).eval()
        self.recurrent, self.source = state_names(self.config)
        self.inputs = ["tokens", *self.recurrent, *self.source]
        self.outputs = ["log_probs", *(f"{name}_next" for name in self.recurrent),
                        *(["attention"] if self.source else [])]
        # N rows (sentences, or sentences x beam) and S source positions stay free
        self.dims = {"tokens": {0: "rows"}, **{name: {0: "rows"} for name in self.recurrent},
                     **{name: {0: "rows", 1: "source_len"} for name in self.source}}

    def example(self, seed: int = 0) -> tuple[Tensor, ...]:
        """Inputs to record with: N=3 rows, a random state, sources of 4, 2 and 1 tokens."""
        g = torch.Generator().manual_seed(seed)
        c, net = self.config, self.net
        tokens = torch.randint(1, max(c.tgt_vocab_size, 2), (3,), generator=g)
        shapes = {"h": (3, c.num_layers, c.hidden_size), "c": (3, c.num_layers, c.hidden_size),
                  "feed": (3, net.output_size), "memory": (3, 4, c.hidden_size)}
        state = {name: torch.randn(shapes[name], generator=g) for name in self.recurrent}
        if self.source:
            state["memory"] = torch.randn(shapes["memory"], generator=g)
            state["keys"] = net.attention.project_keys(state["memory"]).detach()
            state["mask"] = lengths_to_mask(torch.tensor([4, 2, 1]), 4)
        return (tokens, *(state[name] for name in self.inputs[1:]))

    @staticmethod
    def group_dims(dims: tuple) -> tuple:
        """The free axes per input, nested as ``forward``'s arguments: tokens, entries."""
        return dims[0], dims[1:]

    def forward(self, tokens: Tensor, *entries: Tensor) -> tuple[Tensor, ...]:
        """tokens (N,) long and the state entries named by ``inputs[1:]`` (as
        :class:`EncoderExport` gives them) -> log_probs (N, V), the new h, c (N, L, H)
        and feed (N, O), attention (N, S) (with attention)."""
        net = self.net
        state = dict(zip(self.inputs[1:], entries, strict=True))
        x = net.tgt_embedding(tokens).unsqueeze(1)  # (N, 1, E)
        if self.config.input_feeding:
            x = torch.cat([x, state["feed"].unsqueeze(1)], -1)  # (N, 1, E + O)
        h0 = state["h"].transpose(0, 1)  # (L, N, H)
        rnn_state = (h0, state["c"].transpose(0, 1)) if "c" in state else h0
        one_step = torch.ones_like(tokens)  # (N,)
        h, rnn_state = onnx_rnn.call(net.decoder, x, one_step, rnn_state)  # (N, 1, H)
        h_tilde, weights = net._attend(h, state)  # (N, 1, O), (N, 1, S): the model's own code
        log_probs = torch.log_softmax(net.out(h_tilde[:, 0]), dim=-1)  # (N, V)
        new = {"h": (rnn_state[0] if isinstance(rnn_state, tuple) else rnn_state).transpose(0, 1)}
        if "c" in state:
            new["c"] = rnn_state[1].transpose(0, 1)  # (N, L, H)
        if "feed" in state:
            new["feed"] = h_tilde[:, 0]  # (N, O)
        extra = [weights[:, 0]] if self.source else []  # (N, S)
        return (log_probs, *(new[name] for name in self.recurrent), *extra)


def record(bundle, checkpoint_path: str | PathLike[str],
           quantize: str | None = None) -> dict[str, bytes]:
    """Both graphs of a loaded seq2seq checkpoint, and its sentencepiece models.

    Returns:
        file name -> contents, what :func:`write_folder` writes.

    Raises:
        ExportError: the exporter failed on one of the graphs.
    """
    encoder, step = EncoderExport(bundle.model).eval(), StepExport(bundle.model).eval()
    files: dict[str, bytes] = {}
    vocabs = {}
    for side, vocab in bundle.vocabs.items():
        if isinstance(vocab, SubwordVocab):  # as a file any sentencepiece binding reads
            files[VOCAB_FILES[side]] = vocab.model_proto
            vocabs[side] = {"kind": KIND, "file": VOCAB_FILES[side]}
        else:
            vocabs[side] = vocab.to_dict()
    meta = {**base_metadata(bundle, checkpoint_path), "vocabs": vocabs,
            "export_id": uuid.uuid4().hex,
            "graphs": {"encoder": {"file": ENCODER, "inputs": encoder.inputs,
                                   "outputs": encoder.outputs},
                       "step": {"file": STEP, "inputs": step.inputs, "outputs": step.outputs}}}
    for name, wrapper in ((ENCODER, encoder), (STEP, step)):
        proto = record_graph(wrapper, checkpoint_path)
        add_metadata(proto, meta)
        files[name] = (_quantize(proto) if quantize else proto).SerializeToString()
    return files


def check_out(out: Path) -> None:
    """Raise a one-line ExportError unless ``out`` is free, or an older export's folder
    (a file, or a folder holding anything else, is never written over)."""
    if out.exists() and not (out.is_dir() and {p.name for p in out.iterdir()} <= set(FILES)):
        kind = "a folder with other files in it" if out.is_dir() else "a file"
        raise ExportError(f"{out}: is {kind}; a seq2seq export is a folder of its own "
                          "(--out names a new folder, or an older export to replace)")


def write_folder(out: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` as the folder ``out``: all of them, or (on any failure) nothing.

    Raises:
        ExportError: ``out`` is a file, or a folder holding other things than an export
            (it is never overwritten), or a write failed (an older export stays).
    """
    check_out(out)
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
        for name, data in files.items():
            atomic.write_file(tmp / name, lambda f, data=data: f.write(data))
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp's folder is private
        _swap_in(tmp, out)
    except OSError as err:
        raise ExportError(f"{out}: cannot write: {err.strerror or err}") from err
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an older ``out`` is moved aside first and put back if
    the rename fails, then deleted."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = tmp.with_name(tmp.name + ".old")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


__all__ = ["EncoderExport", "StepExport", "check_out", "record", "state_names", "write_folder"]
