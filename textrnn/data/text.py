"""Language-model corpora: read a text file, tokenize it, cut it into truncated-BPTT windows.

The pipeline (as in the PyTorch ``word_language_model`` example, batch-first):

1. :func:`read_text` reads a UTF-8 file (pure ``str``, no torch).
2. :func:`tokenize_lines` turns it into one long token list; at word level each
   line ends with ``<eos>``, at char level the newline is itself a token.
3. :class:`~textrnn.vocab.Vocab` (built from the training split only) maps it to ids.
4. :func:`batchify` folds the id stream into ``batch_size`` parallel rows.
5. :class:`StreamBatches` walks those rows left to right in windows of ``bptt``
   tokens; window ``k+1`` continues exactly where window ``k`` stopped in every
   row, which is what lets the model carry its hidden state across windows.
   :func:`stream_batches` makes one from a list of ids, naming the file when the
   text is too short.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from os import PathLike
from pathlib import Path

import torch

from textrnn.errors import DataError
from textrnn.tokenize import TOKENIZERS

EOS = "<eos>"  # the end-of-line token at word level; the name of Vocab.EOS


def read_text(path: str | PathLike[str]) -> str:
    """Read a UTF-8 text file, with ``\\r\\n`` and ``\\r`` turned into ``\\n`` and any BOM dropped.

    Raises:
        DataError: if the file cannot be read (``"path: No such file or directory"``) or
            holds bytes that are not UTF-8 (``"path:line: ..."``, naming the first bad line).

    >>> import pathlib, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = pathlib.Path(tmp.name) / "bad.txt"
    >>> _ = p.write_bytes(b"fine\\r\\nstill fine\\n\\xff oops\\n")
    >>> read_text(p.with_name("missing.txt"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: .../missing.txt: No such file or directory
    >>> read_text(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: .../bad.txt:3: not valid UTF-8 (byte 0xff at column 1)
    >>> _ = p.write_bytes(b"\\xef\\xbb\\xbfa\\r\\nb")
    >>> read_text(p)
    'a\\nb'
    >>> tmp.cleanup()
    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise DataError(err.strerror or str(err), path=path) from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = data.rfind(b"\n", 0, err.start) + 1
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - line_start + 1
        message = f"not valid UTF-8 (byte 0x{data[err.start]:02x} at column {column})"
        raise DataError(message, path=path, line=line) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def tokenize_lines(text: str, level: str) -> list[str]:
    """Tokenize ``text`` into one stream of tokens.

    Args:
        text: the whole corpus.
        level: ``"word"`` (words and punctuation, case kept, ``<eos>`` ending every
            line, blank lines included) or ``"char"`` (every character, ``\\n`` included).

    Returns:
        The tokens in order.

    >>> tokenize_lines("To be, or not\\n\\nto be.\\n", "word")
    ['To', 'be', ',', 'or', 'not', '<eos>', '<eos>', 'to', 'be', '.', '<eos>']
    >>> tokenize_lines("Ay.\\n", "char")
    ['A', 'y', '.', '\\n']
    """
    if level not in TOKENIZERS:
        raise ValueError(f"level must be one of {sorted(TOKENIZERS)}, got {level!r}")
    if level == "char":  # newlines are ordinary characters: the model learns the line breaks
        return TOKENIZERS["char"](text)
    tokens: list[str] = []
    for line in text.splitlines():
        tokens += TOKENIZERS["word"](line)
        tokens.append(EOS)
    return tokens


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Fold a 1-D id stream into ``batch_size`` contiguous rows, dropping the ragged tail.

    Args:
        ids: LongTensor ``(N,)``, the whole corpus.
        batch_size: the number of parallel streams ``B``.

    Returns:
        LongTensor ``(B, N // B)``; row ``b`` is the ``b``-th slice of the corpus.

    With ``N = 14`` and ``B = 3`` (the last ``N % B = 2`` tokens are dropped)::

        ids = a b c d e f g h i j k l m n
              └──────┘└──────┘└──────┘ (m n dropped)
                 row 0   row 1   row 2

        ┌ a b c d ┐   each row reads on in time from left to right, so a
        │ e f g h │   window of columns [t, t + bptt) continues, in every row,
        └ i j k l ┘   exactly where columns [t - bptt, t) stopped.

    >>> batchify(torch.arange(14), 3)
    tensor([[ 0,  1,  2,  3],
            [ 4,  5,  6,  7],
            [ 8,  9, 10, 11]])
    """
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
    seq_len = ids.numel() // batch_size
    return ids[: seq_len * batch_size].view(batch_size, seq_len)  # (B, N // B)


class StreamBatches:
    """Re-iterable truncated-BPTT windows over a token stream.

    Each item is ``{"x": LongTensor (B, T), "y": LongTensor (B, T), "reset": bool}``
    where ``y`` is ``x`` shifted one token ahead and ``T <= bptt`` (only the last
    window may be shorter). ``reset`` is ``True`` on the first window of a pass:
    a model carrying its hidden state across windows starts afresh there.

    Args:
        ids: LongTensor ``(N,)``, the encoded corpus.
        batch_size: the number of parallel streams ``B``.
        bptt: the window length ``T`` (how far gradients flow back in time).

    Raises:
        ValueError: if the stream is too short to give one window of one token.

    >>> batches = StreamBatches(torch.arange(14), batch_size=2, bptt=3)
    >>> len(batches), [b["x"].shape[1] for b in batches]
    (2, [3, 3])
    >>> first = next(iter(batches))
    >>> first["x"], first["y"], first["reset"]
    (tensor([[0, 1, 2],
            [7, 8, 9]]), tensor([[ 1,  2,  3],
            [ 8,  9, 10]]), True)
    """

    def __init__(self, ids: torch.Tensor, batch_size: int, bptt: int) -> None:
        if batch_size < 1 or bptt < 1:
            raise ValueError(f"batch_size and bptt must be >= 1, got {batch_size} and {bptt}")
        if ids.numel() // batch_size < 2:
            raise ValueError(
                f"{ids.numel()} tokens are too few for batch size {batch_size} "
                "(each row needs at least 2 tokens: an input and its target)"
            )
        self.data = batchify(ids, batch_size)  # (B, N // B)
        self.batch_size, self.bptt = batch_size, bptt

    def __len__(self) -> int:
        # The last column only ever serves as a target, hence the - 1.
        return -(-(self.data.shape[1] - 1) // self.bptt)

    def __iter__(self) -> Iterator[dict]:
        n_inputs = self.data.shape[1] - 1
        for start in range(0, n_inputs, self.bptt):
            seq_len = min(self.bptt, n_inputs - start)
            yield {
                "x": self.data[:, start : start + seq_len],  # (B, T)
                "y": self.data[:, start + 1 : start + 1 + seq_len],  # (B, T)
                "reset": start == 0,
            }


def stream_batches(
    ids: Sequence[int], batch_size: int, bptt: int, path: str | PathLike[str] | None = None
) -> StreamBatches:
    """:class:`StreamBatches` over ``ids``, its ValueError (too few tokens) as a
    :class:`~textrnn.errors.DataError` naming ``path``.

    >>> stream_batches([1, 2, 3], batch_size=2, bptt=4, path="tiny.txt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: tiny.txt: 3 tokens are too few for batch size 2 (each row ...
    """
    try:
        return StreamBatches(torch.tensor(ids, dtype=torch.long), batch_size, bptt)
    except ValueError as err:
        raise DataError(str(err), path=path) from None


def eval_batch_size(num_tokens: int, batch_size: int, bptt: int) -> int:
    """Up to ``batch_size`` streams, but few enough that each holds a full window: a
    short validation text is still read in windows of ``bptt`` tokens.

    >>> eval_batch_size(10_000, 32, 128), eval_batch_size(1_000, 32, 128)
    (32, 7)
    """
    return max(1, min(batch_size, num_tokens // (bptt + 1)))


def detokenize(tokens: list[str], level: str) -> str:
    """Join tokens back into text: characters as they are, words with spaces and ``<eos>``
    as a line break.

    >>> detokenize(["To", "be", ",", "<eos>", "<eos>", "or"], "word")
    'To be ,\\n\\nor'
    >>> detokenize(["A", "y", "\\n"], "char")
    'Ay\\n'
    """
    if level == "char":
        return "".join(tokens)
    lines: list[list[str]] = [[]]
    for token in tokens:
        if token == EOS:
            lines.append([])
        else:
            lines[-1].append(token)
    return "\n".join(" ".join(line) for line in lines)
