"""Export a checkpoint to one self-contained ONNX file (``textrnn export``).

::

    textrnn export --checkpoint runs/chatbot/best.pt --out chatbot.onnx
    bot = textrnn.runtime.load("chatbot.onnx"); bot.answer(story, "Where is Mary?")

The file holds the graph of the task model's exportable form
(:mod:`textrnn.export_nets`), its weights, and under the metadata key ``"textrnn"``
one JSON object with everything else a runtime needs: the task, the model config, the
vocabularies, the metrics, the graph's input and output names. So an exported model is
usable without its checkpoint, and :mod:`textrnn.runtime` reads it with onnxruntime
alone (no ``onnx`` package).

How it records free lengths: ``torch.onnx.export(dynamo=True)`` with every batch and
length axis a ``Dim`` (``torch.export`` then fails loudly, rather than fixing a length,
if the code specialises one), and recurrent layers as one ONNX node each
(:mod:`textrnn.onnx_rnn`). The exporter keeps state between exports in one process, so
``textrnn export`` is one process per model, as the tests run it.

The file is written to a temp file in the same folder, then renamed: a failed or
interrupted export never leaves a half-written ``--out``. A seq2seq model is the one
exception to "one file": its encoder and its decoder step are two graphs, written as
one folder (:mod:`textrnn.export_seq2seq`), the same way.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path

from textrnn import atomic
from textrnn.errors import TextrnnError

FORMAT = 1  # of the metadata below; a runtime refuses a newer one
METADATA_KEY = "textrnn"
QUANTIZE = ("int8",)
INSTALL_HINT = "pip install 'textrnn[onnx]'"


class ExportError(TextrnnError):
    """A model cannot be exported, or the file cannot be written (one line)."""


@dataclass
class ExportReport:
    """What :func:`export` did."""

    path: str  # the file written
    task: str
    seconds: float  # recording, conversion and writing
    bytes: int  # the file's size
    quantize: str | None  # None, or "int8" (dynamic quantisation of the weights)


def export(checkpoint_path: str | PathLike[str], out: str | PathLike[str],
           quantize: str | None = None) -> ExportReport:
    """Export a checkpoint's model to ``out`` (one ``.onnx`` file).

    Args:
        checkpoint_path: a textrnn checkpoint (``best.pt``).
        out: the file to write; its folder must exist. A seq2seq model is two graphs, so
            for it ``out`` is a folder (made, or an older export's replaced whole):
            :mod:`textrnn.export_seq2seq`.
        quantize: None, or "int8": weights stored as int8, activations quantised on the
            fly (``onnxruntime.quantization.quantize_dynamic``); smaller, a little less
            exact (``bench/export.py`` reports how much).

    Raises:
        CheckpointError: a missing, corrupt or foreign checkpoint (one line).
        ExportError: a model with no exportable form, a missing ``onnx`` extra, or an
            unwritable ``out``; nothing is left at ``out`` (an older file stays as it was).
    """
    if quantize not in (None, *QUANTIZE):
        raise ExportError(f"--quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
    out = Path(out)
    if not out.parent.is_dir():
        raise ExportError(f"{out}: cannot write: no folder {out.parent}")
    _require("onnx", "onnxscript", *(("onnxruntime",) if quantize else ()))
    start = time.perf_counter()
    from textrnn import checkpoint

    bundle = checkpoint.load(checkpoint_path)
    if bundle.task == "seq2seq":  # two graphs: a folder (textrnn.export_seq2seq says why)
        from textrnn import export_seq2seq

        export_seq2seq.check_out(out)  # before the recording: a bad --out fails at once
        files = export_seq2seq.record(bundle, checkpoint_path, quantize)
        export_seq2seq.write_folder(out, files)
        return ExportReport(str(out), bundle.task, time.perf_counter() - start,
                            sum(map(len, files.values())), quantize)
    if out.is_dir():
        raise ExportError(f"{out}: is a folder; --out names the .onnx file to write")
    proto = _record(bundle, checkpoint_path)
    if quantize:
        proto = _quantize(proto)
    data = proto.SerializeToString()
    _write_atomic(out, data)
    return ExportReport(str(out), bundle.task, time.perf_counter() - start, len(data), quantize)


def _require(*modules: str) -> None:
    """Raise a one-line ExportError naming the extra when one of ``modules`` is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"export needs {', '.join(missing)}: {INSTALL_HINT}")


def _record(bundle, checkpoint_path: str | PathLike[str]):
    """Record a loaded checkpoint's exportable form; returns the ``onnx.ModelProto``
    with the metadata added."""
    from textrnn.export_nets import EXPORTS

    if bundle.task not in EXPORTS:
        raise ExportError(f"{checkpoint_path}: export of {bundle.task!r} models is not built "
                          f"yet (it is for {', '.join(sorted(EXPORTS))})")
    wrapper = EXPORTS[bundle.task](bundle.model).eval()
    proto = record_graph(wrapper, checkpoint_path)
    meta = {
        **base_metadata(bundle, checkpoint_path),
        "vocabs": {name: vocab.to_dict() for name, vocab in bundle.vocabs.items()},
        "inputs": wrapper.inputs,
        "outputs": wrapper.outputs,
    }
    crf = getattr(bundle.model, "crf", None)
    if crf is not None:  # a tagger's transitions: Viterbi runs outside the graph
        meta["crf"] = {name: t.tolist() for name, t in crf.state_dict().items()}
    lists = getattr(bundle.model, "lists", None)
    if lists is not None:  # the list classes' biases: their scores are built outside the graph
        meta["lists"] = {name: t.tolist() for name, t in lists.state_dict().items()}
    add_metadata(proto, meta)
    return proto


def record_graph(wrapper, checkpoint_path: str | PathLike[str]):
    """``wrapper``'s graph as an ``onnx.ModelProto``, every axis of ``wrapper.dims`` free.

    Args:
        wrapper: an exportable form (:mod:`textrnn.export_nets`): a module with
            ``inputs``, ``outputs``, ``dims`` and ``example()`` (and ``group_dims(dims)``
            if its ``forward`` takes ``*args``).

    Raises:
        ExportError: the exporter failed (its first line; the cause stays chained).
    """
    import torch

    from textrnn import onnx_rnn

    example = wrapper.example()
    free = {name: torch.export.Dim(name) for axes in wrapper.dims.values()
            for name in axes.values()}  # one Dim per name: "batch" is one size everywhere
    dims = tuple({axis: free[name] for axis, name in wrapper.dims.get(i, {}).items()} or None
                 for i in wrapper.inputs)
    if hasattr(wrapper, "group_dims"):  # a forward(x, *rest): its dims nest the same way
        dims = wrapper.group_dims(dims)
    # The exporter reports each step on stdout, and logs and warns about its own insides
    # (torchvision missing, axis renames): none of it is the user's to act on.
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), _quiet_exporter():
        try:
            program = torch.onnx.export(
                wrapper, example, dynamo=True, dynamic_shapes=dims,
                input_names=wrapper.inputs, output_names=wrapper.outputs,
                custom_translation_table=onnx_rnn.TRANSLATION, external_data=False,
                verbose=False)
        except Exception as err:  # the exporter's errors run to pages; the cause stays chained
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ExportError(f"{checkpoint_path}: the exporter failed: {first}") from err
    return program.model_proto


def base_metadata(bundle, checkpoint_path: str | PathLike[str]) -> dict:
    """What every export's metadata holds: format, task, config, metrics, step, source."""
    return {
        "format": FORMAT,
        "task": bundle.task,
        "model_config": asdict(bundle.config),
        "metrics": bundle.metrics,
        "step": bundle.step,
        "checkpoint": Path(checkpoint_path).name,  # the name only: no local paths inside
    }


def add_metadata(proto, meta: dict) -> None:
    """Store ``meta`` as JSON under :data:`METADATA_KEY` in ``proto``."""
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's warnings and log lines for the block."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _metadata(proto) -> str:
    return next(p.value for p in proto.metadata_props if p.key == METADATA_KEY)


def _quantize(proto):
    """Dynamic int8 quantisation of ``proto``'s weights (MatMul, Gather, LSTM), keeping
    the metadata."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(proto.SerializeToString())
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        quantized = onnx.load(dst)
    del quantized.metadata_props[:]
    for entry in proto.metadata_props:
        quantized.metadata_props.add().CopyFrom(entry)
    meta = json.loads(_metadata(quantized))
    meta["quantize"] = "int8"
    next(p for p in quantized.metadata_props if p.key == METADATA_KEY).value = json.dumps(meta)
    return quantized


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`textrnn.atomic.write_file`)."""
    try:
        atomic.write_file(path, lambda f: f.write(data))
    except OSError as err:
        raise ExportError(f"{path}: cannot write: {err.strerror or err}") from err


__all__ = ["ExportError", "ExportReport", "export"]
