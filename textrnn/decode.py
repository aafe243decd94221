"""Greedy and beam search for any encoder-decoder that can take one step at a time.

A model decodes through two methods (:class:`textrnn.models.seq2seq.Seq2Seq` has them):

- ``start(src, src_lengths) -> state``: encode a batch; ``state`` is a dict of
  tensors whose first dimension is the batch (B or B*K), so reordering beams
  is one ``index_select`` per entry;
- ``step(tokens, state) -> (log_probs, state, weights)``: feed the previous
  tokens (N,) and get log p(next token) (N, V), the new state, and the
  attention weights (N, S) used for this step (or None).

Every sentence is searched on its own: its length limit depends only on its
own source length, a finished sentence is frozen, and padding never enters a
score. So a sentence's translation is the same whatever batch it is decoded
in (``tests/test_decode.py`` checks batch sizes 1 and 32).

Beam search keeps ``K`` live hypotheses per sentence. At each step it takes the
top ``2K`` extensions; those ending in ``<eos>`` (or reaching the length
limit) that rank in the top ``K`` become finished, and the best ``K`` others stay
live, as in fairseq. A finished hypothesis scores

    score(y) = log p(y | x) / |y|^α        (|y| counts the <eos>; α = length_penalty)

α = 0 is the raw log-probability (which favours short outputs), α = 1 the mean
per token. A sentence stops when it has ``K`` finished hypotheses, or when no
live one can still beat the best finished one: log-probabilities only fall,
so a live hypothesis with log-probability s ≤ 0 can reach at most
s / limit^α. With ``K = 1`` this is exactly greedy search; with ``K`` at least
the number of possible extensions it is exhaustive search.

With ``coverage_penalty = β > 0`` (and an attention model) a finished
hypothesis also gets Wu et al. (2016)'s coverage term

    score(y) += β Σ_s log(min(Σ_t a_t(s), 1))      (over the real source positions)

which is 0 when every source token got a total attention of at least 1 and
negative for those left out, so translations that skip half the verse rank
lower (it is ≤ 0, so the stopping bound above still holds).

Two constraints, off by default, keep an under-trained model's output
readable: ``no_repeat_ngram = n`` never generates a token that would repeat an
n-gram already in the hypothesis (the "et il dit et il dit" loop; Paulus et
al. 2018), and ``min_len`` bans ``<eos>`` before that many tokens (so no output
is empty).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from textrnn.collate import pad_sequences
from textrnn.device import model_device


@dataclass
class Hypothesis:
    """One output sentence.

    Attributes:
        tokens: the generated ids, without ``<bos>`` and ``<eos>``.
        log_prob: log p(tokens, then <eos> if it ended with one | source), in nats.
        score: ``log_prob / length ** length_penalty`` (plus the coverage term, if asked
            for), what beam search ranks by.
        attention: (len(tokens) + 1 if it ended with <eos> else len(tokens), S) float
            attention weights per generated token, or None if not asked for / no attention.
    """

    tokens: list[int]
    log_prob: float
    score: float
    attention: Tensor | None = None


def length_limits(src_lengths: Tensor, max_len: int | None) -> list[int]:
    """Per-sentence output length limits: ``max_len``, or ``2 * source length + 10`` if None.

    >>> length_limits(torch.tensor([3, 0]), None), length_limits(torch.tensor([3, 0]), 5)
    ([16, 10], [5, 5])
    """
    if max_len is not None:
        return [max_len] * len(src_lengths)
    return [2 * int(n) + 10 for n in src_lengths]


def reorder(state: dict[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    """Select rows of every tensor in a decoder state (beam reordering, tiling)."""
    return {key: value.index_select(0, index) for key, value in state.items()}


def _normalise(log_prob: float, length: int, length_penalty: float) -> float:
    return log_prob / (max(length, 1) ** length_penalty)


def repeated_ngram_tokens(history: Sequence[int], n: int) -> list[int]:
    """The tokens that would make ``history``'s last n-1 tokens plus it an n-gram it holds.

    >>> repeated_ngram_tokens([5, 6, 7, 5, 6], 3), repeated_ngram_tokens([5, 6, 7, 5, 6], 0)
    ([7], [])
    >>> repeated_ngram_tokens([4, 4], 1), repeated_ngram_tokens([8, 9], 3)
    ([4, 4], [])
    """
    if n <= 0 or len(history) < n - 1:
        return []
    prefix = list(history[len(history) - n + 1 :]) if n > 1 else []
    return [history[i + n - 1] for i in range(len(history) - n + 1)
            if list(history[i : i + n - 1]) == prefix]


def _constrain(logp: Tensor, histories: Sequence[Sequence[int]], t: int, *, eos_id: int,
               no_repeat_ngram: int, min_len: int) -> None:
    """Ban, in place, the tokens of ``logp`` (N, V) that ``no_repeat_ngram`` or ``min_len``
    rule out after the N ``histories`` (the tokens generated so far, t of each)."""
    if t < min_len:
        logp[:, eos_id] = float("-inf")
    if no_repeat_ngram > 0 and t >= no_repeat_ngram - 1:
        for row, history in enumerate(histories):
            tokens = repeated_ngram_tokens(history, no_repeat_ngram)
            if tokens:
                logp[row, tokens] = float("-inf")


@torch.no_grad()
def greedy_search(model, src: Tensor, src_lengths: Tensor, *, bos_id: int, eos_id: int,
                  max_len: int | None = None, banned: Sequence[int] = (),
                  length_penalty: float = 1.0, no_repeat_ngram: int = 0, min_len: int = 0,
                  return_attention: bool = False) -> list[Hypothesis]:
    """Pick the most likely next token until ``<eos>`` or the length limit.

    Args:
        model: has ``start`` and ``step`` (see the module docstring).
        src: (B, S) long source ids; src_lengths: (B,) long.
        bos_id, eos_id: the target's start and end ids.
        max_len: most tokens generated (``<eos>`` included); None: 2 * source length + 10.
        banned: target ids never generated (e.g. ``<pad>``, ``<bos>``).
        length_penalty: only used to fill in ``Hypothesis.score``, as beam search would.
        no_repeat_ngram: never repeat an n-gram of this size; 0 = off.
        min_len: no ``<eos>`` before this many tokens (unless the length limit comes first).
        return_attention: keep each output token's attention weights.

    Returns:
        B hypotheses, in the order of ``src``.
    """
    B = src.shape[0]
    limits = length_limits(src_lengths, max_len)
    state = model.start(src, src_lengths)
    tokens = torch.full((B,), bos_id, dtype=torch.long, device=src.device)  # (B,)
    outputs: list[list[int]] = [[] for _ in range(B)]
    weights_out: list[list[Tensor]] = [[] for _ in range(B)]
    log_probs = [0.0] * B
    ended = [False] * B  # with <eos>
    done = [False] * B
    for t in range(max(limits, default=0)):
        logp, state, weights = model.step(tokens, state)  # (B, V), _, (B, S) or None
        if banned:
            logp[:, list(banned)] = float("-inf")
        _constrain(logp, outputs, t, eos_id=eos_id, no_repeat_ngram=no_repeat_ngram,
                   min_len=min_len)
        best_logp, tokens = logp.max(dim=-1)  # (B,), (B,)
        for b in range(B):
            if done[b]:
                continue
            token = int(tokens[b])
            log_probs[b] += float(best_logp[b])
            if return_attention and weights is not None:
                weights_out[b].append(weights[b].float().cpu())
            if token == eos_id:
                ended[b] = done[b] = True
            else:
                outputs[b].append(token)
                done[b] = t + 1 >= limits[b]
        if all(done):
            break
    return [
        Hypothesis(
            outputs[b], log_probs[b],
            _normalise(log_probs[b], len(outputs[b]) + ended[b], length_penalty),
            torch.stack(weights_out[b]) if weights_out[b] else None,
        )
        for b in range(B)
    ]


@torch.no_grad()
def beam_search(model, src: Tensor, src_lengths: Tensor, *, beam_size: int, bos_id: int,
                eos_id: int, max_len: int | None = None, length_penalty: float = 1.0,
                banned: Sequence[int] = (), no_repeat_ngram: int = 0, min_len: int = 0,
                coverage_penalty: float = 0.0,
                return_attention: bool = False) -> list[Hypothesis]:
    """Beam search, all sentences of the batch at once (B*K rows per model step).

    Args:
        beam_size: K live hypotheses per sentence; 1 gives greedy search.
        length_penalty: α in ``score = log p / length ** α``.
        coverage_penalty: β of the coverage term (module docstring); 0 = off.
        Others: as :func:`greedy_search`.

    Returns:
        The best-scoring finished hypothesis of each sentence, in the order of ``src``.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    B, K, device = src.shape[0], beam_size, src.device
    limits = length_limits(src_lengths, max_len)
    state = model.start(src, src_lengths)
    state = reorder(state, torch.arange(B, device=device).repeat_interleave(K))  # (B*K, ...)
    scores = torch.full((B, K), float("-inf"), device=device)  # (B, K) live log-probs
    scores[:, 0] = 0.0  # one live hypothesis to start from, so no duplicates
    tokens = torch.full((B * K,), bos_id, dtype=torch.long, device=device)  # (B*K,)
    history = torch.zeros(B * K, 0, dtype=torch.long, device=device)  # (B*K, t)
    attn_history: Tensor | None = None  # (B*K, t, S) when return_attention
    coverage: Tensor | None = None  # (B*K, S) Σ_t a_t(s) of each live hypothesis
    real = (torch.arange(src.shape[1], device=device)
            < src_lengths.repeat_interleave(K).unsqueeze(1))  # (B*K, S) real source positions
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    done = [False] * B
    for t in range(max(limits, default=0)):
        logp, state, weights = model.step(tokens, state)  # (B*K, V), _, (B*K, S) or None
        if banned:
            logp[:, list(banned)] = float("-inf")
        if no_repeat_ngram > 0 or t < min_len:
            _constrain(logp, history.tolist(), t, eos_id=eos_id,
                       no_repeat_ngram=no_repeat_ngram, min_len=min_len)
        V = logp.shape[1]
        candidates = (scores.reshape(B * K, 1) + logp.float()).reshape(B, K * V)  # (B, K*V)
        top_scores, top_index = candidates.topk(min(2 * K, K * V), dim=1)  # (B, 2K)
        top_scores, top_index = top_scores.tolist(), top_index.tolist()
        keep_attention = return_attention and weights is not None
        covered = coverage_penalty > 0 and weights is not None
        if covered:
            cover_so_far = weights.float() + (0.0 if coverage is None else coverage)  # (B*K, S)
        if keep_attention:
            step_attn = weights.float().unsqueeze(1)  # (B*K, 1, S)
            attn_so_far = (step_attn if attn_history is None
                           else torch.cat([attn_history, step_attn], 1))  # (B*K, t+1, S)
        parents = list(range(B * K))  # row each new live hypothesis continues
        new_tokens = [eos_id] * (B * K)
        new_scores = torch.full((B, K), float("-inf"), device=device)  # (B, K)
        for b in range(B):
            if done[b]:
                continue
            alive, last_step = 0, t + 1 >= limits[b]
            for j, (score, index) in enumerate(zip(top_scores[b], top_index[b], strict=True)):
                if score == float("-inf") or alive == K and j >= K:
                    break
                parent, token = b * K + index // V, index % V
                if token == eos_id or last_step:
                    if j < K:  # an ending among the K best extensions: a finished hypothesis
                        ids = history[parent].tolist() + ([] if token == eos_id else [token])
                        ranked = _normalise(score, t + 1, length_penalty)
                        if covered:  # ≤ 0, so the bound below still holds
                            cover = cover_so_far[parent][real[parent]].clamp(1e-10, 1.0)
                            ranked += coverage_penalty * float(cover.log().sum())
                        finished[b].append(Hypothesis(
                            ids, score, ranked,
                            attn_so_far[parent].cpu() if keep_attention else None))
                elif alive < K:
                    parents[b * K + alive], new_tokens[b * K + alive] = parent, token
                    new_scores[b, alive] = score
                    alive += 1
            best_live = float(new_scores[b].max())
            bound = best_live / (limits[b] ** length_penalty if length_penalty > 0 else 1.0)
            best_done = max((h.score for h in finished[b]), default=float("-inf"))
            if len(finished[b]) >= K or alive == 0 or last_step or best_done >= bound:
                done[b] = True
                new_scores[b] = float("-inf")
        if all(done):
            break
        index = torch.tensor(parents, device=device)  # (B*K,)
        state = reorder(state, index)
        tokens = torch.tensor(new_tokens, device=device)  # (B*K,)
        history = torch.cat([history.index_select(0, index), tokens.unsqueeze(1)], 1)
        if keep_attention:
            attn_history = attn_so_far.index_select(0, index)  # (B*K, t+1, S)
        if covered:
            coverage = cover_so_far.index_select(0, index)  # (B*K, S)
        scores = new_scores
    return [max(f, key=lambda h: h.score) if f else Hypothesis([], float("-inf"), float("-inf"))
            for f in finished]


def translate_batches(model, sources: Sequence[Sequence[int]], *, bos_id: int, eos_id: int,
                      batch_size: int = 32, beam_size: int = 1, max_len: int | None = None,
                      length_penalty: float = 1.0, banned: Sequence[int] = (),
                      no_repeat_ngram: int = 0, min_len: int = 0, coverage_penalty: float = 0.0,
                      return_attention: bool = False, progress=None) -> list[Hypothesis]:
    """Decode many id sequences in batches of similar length; results in input order.

    ``beam_size == 1`` runs :func:`greedy_search`, otherwise :func:`beam_search`.
    ``progress``, if given, has ``update(n)`` (e.g. :class:`textrnn.progress.Progress`).
    """
    device = model_device(model)
    order = sorted(range(len(sources)), key=lambda i: -len(sources[i]))  # less padding
    results: list[Hypothesis | None] = [None] * len(sources)
    options = dict(bos_id=bos_id, eos_id=eos_id, max_len=max_len, banned=banned,
                   length_penalty=length_penalty, no_repeat_ngram=no_repeat_ngram,
                   min_len=min_len, return_attention=return_attention)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        src, lengths = pad_sequences([sources[i] for i in chunk])  # (b, S), (b,)
        src, lengths = src.to(device), lengths.to(device)
        if beam_size == 1:
            hyps = greedy_search(model, src, lengths, **options)
        else:
            hyps = beam_search(model, src, lengths, beam_size=beam_size,
                               coverage_penalty=coverage_penalty, **options)
        for i, hyp in zip(chunk, hyps, strict=True):
            results[i] = hyp
        if progress is not None:
            progress.update(1)
    return results
