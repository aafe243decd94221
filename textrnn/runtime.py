"""Run an exported model (``textrnn export``) with ONNX Runtime.

::

    bot = textrnn.runtime.load("chatbot.onnx")          # pip install 'textrnn[onnx]'
    bot.answer(["Mary moved to the bathroom."], "Where is Mary?").answer   # 'bathroom'

:func:`load` gives the object :func:`textrnn.load` gives for the checkpoint, with the
forward pass in onnxruntime: a ``qa`` file comes back as a :class:`textrnn.chat.Answerer`
(``answer``, ``answer_batch``, ``unknown``, ``info``: what ``textrnn serve`` needs), any
other task as a :class:`textrnn.checkpoint.Bundle` whose ``model`` is an
:class:`OnnxModel`, which the task's own functions use as they use the torch model
(``pipelines.classifier.classify(bundle, texts)``, ``pipelines.tagger.tag(bundle,
sentences)``), through the helpers :func:`classify` and :func:`tag`. A seq2seq export
is a folder of two graphs (:mod:`textrnn.export_seq2seq`); its model's ``start`` and
``step`` run them, so :func:`translate` searches (greedy or beam) as the torch model does.

The answers are the torch runtime's because everything but the forward pass is the
torch runtime's code: each :class:`OnnxModel` subclasses the task model's contract
class (``QANet``, ``Classifier``, ``TaggerBase``) and replaces only ``forward`` by a
session run, so encoding, slot readings, answer masks, Viterbi and decoding are shared.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

from textrnn.errors import TextrnnError

INSTALL_HINT = "pip install 'textrnn[onnx]'"


class RuntimeLoadError(TextrnnError):
    """An exported file cannot be run: missing, not a textrnn export, or no onnxruntime."""


def _session(path: Path, threads: int):
    try:
        import onnxruntime as ort
    except ImportError:
        raise RuntimeLoadError(f"the ONNX runtime needs onnxruntime: {INSTALL_HINT}") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # tiny requests: threads only add hand-offs
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise RuntimeLoadError(f"{path}: not a readable ONNX model "
                               f"({str(err).splitlines()[0][:120]})") from err


def read_metadata(session, path: Path) -> dict:
    """The ``"textrnn"`` metadata of a session's model (see :mod:`textrnn.export`)."""
    from textrnn.export import FORMAT, METADATA_KEY

    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if text is None:
        raise RuntimeLoadError(f"{path}: an ONNX model, but not one textrnn exported "
                               "(no 'textrnn' metadata)")
    meta = json.loads(text)
    if meta.get("format", 0) > FORMAT:
        raise RuntimeLoadError(f"{path}: export format {meta['format']} is newer than this "
                               f"textrnn reads ({FORMAT}); upgrade textrnn")
    return meta


def _onnx_model(task: str):
    """The :class:`OnnxModel` class of ``task``: its contract class with ``forward`` run
    by a session (classes made here so that torch loads only with a model)."""
    import numpy as np
    import torch

    from textrnn.models import MODELS
    from textrnn.models.qa_base import QANet
    from textrnn.models.tagger import TaggerBase

    base = {"qa": QANet, "tagger": TaggerBase}.get(task, MODELS[task])

    class OnnxModel(base):
        """``task``'s model with the forward pass in an onnxruntime session."""

        def __init__(self, session, config, meta: dict) -> None:
            torch.nn.Module.__init__(self)  # not the base's: it would build the torch net
            self.session, self.config, self.meta = session, config, meta
            self.task = task
            self.input_names = [i.name for i in session.get_inputs()]  # unused ones dropped
            if task == "tagger":
                from textrnn.crf import CRF, bio_allowed

                self.crf = CRF(len(config.tags), bio_allowed(config.tags)) if config.crf \
                    else None
                if self.crf is not None:  # the transitions are weights the graph does not use
                    self.crf.load_state_dict({k: torch.tensor(v)
                                              for k, v in meta["crf"].items()})
            if task == "qa" and "lists" in meta:  # list classes: scored outside the graph
                from textrnn.models.qa_lists import ListAnswers

                self.lists = ListAnswers(config.entity_slots, config.list_slots)
                self.lists.load_state_dict({k: torch.tensor(v) for k, v in meta["lists"].items()})

        def forward(self, batch: dict):
            """The exported graph on ``batch``'s tensors; its outputs as float tensors."""
            # The ids are int64 already (torch.long): views, no copies.
            feed = {name: batch[name].cpu().numpy().astype(np.int64, copy=False)
                    for name in self.input_names}
            return self._run(feed)

        def _run(self, feed: dict):
            outputs = self.session.run(None, feed)
            tensors = tuple(torch.from_numpy(o) for o in outputs)
            return tensors if len(tensors) > 1 else tensors[0]

    class OnnxLM(OnnxModel):
        """The LM: ``forward(x, state)`` as :meth:`LanguageModel.forward`, one graph run
        per call, so :meth:`~textrnn.models.lm.LanguageModel.generate` streams through it."""

        def __init__(self, session, config, meta: dict) -> None:
            super().__init__(session, config, meta)
            self.embedding = torch.nn.Embedding(1, 1)  # generate() asks it for the device

        def forward(self, x, state=None):
            """x (B, T) long, state h or (h, c) (L, B, H) or None -> logits (B, T, V),
            the state after x."""
            names = self.input_names[1:]  # "h0" (and "c0" for the LSTM)
            if state is None:
                zeros = torch.zeros(self.config.num_layers, x.shape[0], self.config.hidden_size)
                state = (zeros,) * len(names)
            parts = state if isinstance(state, tuple) else (state,)
            feed = {"tokens": x.cpu().numpy().astype(np.int64),
                    **{name: s.cpu().numpy() for name, s in zip(names, parts, strict=True)}}
            logits, *new = self._run(feed)
            return logits, (tuple(new) if len(new) == 2 else new[0])

    cls = OnnxLM if task == "lm" else OnnxModel
    cls.__name__ = cls.__qualname__ = f"Onnx{base.__name__}"
    return cls


def load(path: str | PathLike[str], threads: int = 1, task: str | None = None):
    """Load an exported model as :func:`textrnn.load` loads a checkpoint.

    Args:
        path: a file written by ``textrnn export`` (for a seq2seq model, its folder).
        threads: onnxruntime's intra-op threads (1 suits single requests).
        task: if given, the task the file must be of (another task's is refused).

    Returns:
        A :class:`textrnn.chat.Answerer` for a ``qa`` model; else a
        :class:`textrnn.checkpoint.Bundle` whose ``model`` runs the file (for seq2seq,
        the two graphs: :func:`translate` decodes with it).

    Raises:
        RuntimeLoadError: a missing file, one that is not a textrnn export (or not of
            ``task``), or no onnxruntime installed; one line.
    """
    path = Path(path)
    if path.is_dir():  # a seq2seq export: two graphs (textrnn.export_seq2seq)
        return _load_seq2seq(path, threads, task)
    if not path.is_file():
        raise RuntimeLoadError(f"{path}: no such file")
    session = _session(path, threads)
    meta = read_metadata(session, path)
    from textrnn.checkpoint import Bundle
    from textrnn.models import MODELS
    from textrnn.vocab import Vocab

    _check_task(path, meta, task)
    task = meta["task"]
    config = MODELS[task].config_class(**meta["model_config"])
    vocabs = {name: Vocab.from_dict(d) for name, d in meta["vocabs"].items()}
    model = _onnx_model(task)(session, config, meta)
    model.vocabs = vocabs  # as a task model has them
    if hasattr(model, "calibrate"):  # as checkpoint.load does
        model.calibrate(dict(meta.get("metrics", {})))
    bundle = Bundle(task=task, model=model.eval(), vocabs=vocabs, config=config,
                    metrics=dict(meta.get("metrics", {})), step=meta.get("step", 0), raw={})
    if task == "qa":
        from textrnn.chat import Answerer

        return Answerer(bundle)
    return bundle


def _check_task(path: Path, meta: dict, task: str | None) -> None:
    if task is not None and meta["task"] != task:
        raise RuntimeLoadError(f"{path}: a {meta['task']!r} model, not a {task!r} one")


def _load_seq2seq(path: Path, threads: int, task: str | None):
    """The Bundle of a seq2seq export folder: both sessions, the vocabularies beside them."""
    from textrnn.checkpoint import Bundle
    from textrnn.export_seq2seq import ENCODER, STEP
    from textrnn.models.seq2seq import Seq2SeqConfig
    from textrnn.subword import KIND, SubwordVocab, vocab_from_dict

    if not (path / ENCODER).is_file() or not (path / STEP).is_file():
        raise RuntimeLoadError(f"{path}: a folder, but not a seq2seq export (it needs "
                               f"{ENCODER} and {STEP})")
    encoder, step = _session(path / ENCODER, threads), _session(path / STEP, threads)
    meta = read_metadata(encoder, path / ENCODER)
    if read_metadata(step, path / STEP).get("export_id") != meta.get("export_id"):
        raise RuntimeLoadError(f"{path}: {ENCODER} and {STEP} are of different exports")
    _check_task(path, meta, task)
    vocabs = {}
    for side, d in meta["vocabs"].items():
        if d.get("kind") == KIND:
            try:
                vocabs[side] = SubwordVocab((path / d["file"]).read_bytes())
            except (OSError, RuntimeError, ValueError) as err:
                why = (str(err).splitlines() or [type(err).__name__])[0][:120]
                raise RuntimeLoadError(f"{path / d['file']}: not a readable sentencepiece "
                                       f"model ({why})") from err
        else:
            vocabs[side] = vocab_from_dict(d)
    config = Seq2SeqConfig(**meta["model_config"])
    model = _onnx_seq2seq()(encoder, step, config, meta)
    model.vocabs = vocabs
    return Bundle(task="seq2seq", model=model.eval(), vocabs=vocabs, config=config,
                  metrics=dict(meta.get("metrics", {})), step=meta.get("step", 0), raw={})


def _onnx_seq2seq():
    """The class of a seq2seq export's model (made here so that torch loads only with one)."""
    import torch

    from textrnn.models.seq2seq import Seq2Seq

    class OnnxSeq2Seq(Seq2Seq):
        """:class:`~textrnn.models.seq2seq.Seq2Seq` with ``start`` and ``step`` run by the
        encoder's and the decoder step's sessions: greedy and beam search
        (:mod:`textrnn.decode`) drive it as they drive the torch model."""

        def __init__(self, encoder, step, config, meta: dict) -> None:
            torch.nn.Module.__init__(self)  # not the base's: it would build the torch net
            self.encoder_session, self.step_session = encoder, step
            self.config, self.meta, self.task = config, meta, "seq2seq"
            self.has_attention = config.attention != "none"
            graphs = meta["graphs"]
            self.state_names = graphs["encoder"]["outputs"]  # h[, c][, feed][, memory, ...]
            self.changed = [n[: -len("_next")] for n in graphs["step"]["outputs"]
                            if n.endswith("_next")]  # the entries a step gives back
            self.step_inputs = [i.name for i in step.get_inputs()]  # unused ones dropped

        def start(self, src, src_lengths):
            """As :meth:`Seq2Seq.start`: src (B, S), src_lengths (B,) long -> the state."""
            if int(src_lengths.min()) < 1:
                raise ValueError("every source sentence needs at least one token")
            feed = {"src": src.cpu().numpy(), "src_lengths": src_lengths.cpu().numpy()}
            feed = {i.name: feed[i.name] for i in self.encoder_session.get_inputs()}
            outputs = self.encoder_session.run(None, feed)
            return {name: torch.from_numpy(o) for name, o in zip(self.state_names, outputs,
                                                                  strict=True)}

        def step(self, tokens, state):
            """As :meth:`Seq2Seq.step`: tokens (N,) long, the state -> log_probs (N, V),
            the new state, attention weights (N, S) or None."""
            values = {"tokens": tokens, **state}
            feed = {name: values[name].cpu().numpy() for name in self.step_inputs}
            log_probs, *outputs = (torch.from_numpy(o) for o in self.step_session.run(None, feed))
            new_state = {**state, **dict(zip(self.changed, outputs, strict=False))}
            return log_probs, new_state, outputs[-1] if self.has_attention else None

        def forward(self, src, src_lengths, tgt_in):
            """Teacher-forced log-probabilities (B, T, V) (logits up to a constant per row,
            all that ``loss``/``evaluate`` read) and attention (B, T, S) or None."""
            state, steps, weights = self.start(src, src_lengths), [], []
            for t in range(tgt_in.shape[1]):
                log_probs, state, w = self.step(tgt_in[:, t], state)
                steps.append(log_probs)
                weights.append(w)
            return torch.stack(steps, 1), (torch.stack(weights, 1) if self.has_attention
                                           else None)

    return OnnxSeq2Seq


def translate(bundle, sentences: Sequence[str], **kwargs) -> list:
    """:class:`~textrnn.pipelines.seq2seq.Translation` per sentence
    (:func:`textrnn.pipelines.seq2seq.translate`: beam 5 unless ``beam_size=1``)."""
    from textrnn.pipelines import seq2seq

    return seq2seq.translate(bundle, list(sentences), **kwargs)


def classify(bundle, texts: Sequence[str]) -> list[tuple[str, dict[str, float]]]:
    """``(label, {label: probability})`` per text, as
    :func:`textrnn.pipelines.classifier.classify`."""
    from textrnn.pipelines import classifier

    return classifier.classify(bundle, texts)


def tag(bundle, sentences: Sequence[Sequence[str]], **kwargs) -> list[list[str]]:
    """Tag names per token (:func:`textrnn.pipelines.tagger.tag`)."""
    from textrnn.pipelines import tagger

    return tagger.tag(bundle, sentences, **kwargs)


__all__ = ["RuntimeLoadError", "classify", "load", "tag", "translate"]
