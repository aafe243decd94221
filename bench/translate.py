"""textrnn against JoeyNMT, and attention against none, on the same Bible files and budget.

Three systems train on the same ``train.tsv`` (en-bbe -> fr-lsg, every verse; made
with ``textrnn data bible`` if missing), each for ``--minutes`` of CPU time on
one thread, one after the other, and are scored on the held-out books' ``test.tsv``
with sacrebleu BLEU and chrF, greedy and beam::

    textrnn      textrnn train seq2seq (its defaults: subword vocabularies, attention)
    none         the same with --attention none (same sizes, no attention)
    joeynmt      JoeyNMT 2.3's RNN encoder-decoder (Luong attention, input feeding),
                 sentencepiece vocabularies of the same size learnt from the same
                 training text, run from its own venv (--joey-python)

JoeyNMT has no time budget of its own: it runs under ``ulimit -t`` (CPU seconds), so
the kernel stops it when its CPU time is spent, and its best checkpoint (by validation
loss, as textrnn's) is scored. Every finished system appends a line to
``OUT/results.jsonl`` and a rerun skips it, so the bench resumes where it stopped::

    python bench/translate.py --minutes 10                # about an hour on a busy 2-core box
    python bench/translate.py --minutes 10 --systems textrnn,none

JoeyNMT is never a textrnn dependency. Its venv, reusing textrnn's torch (its own
packages come first on its path; 2.3.0 also needs importlib_metadata, which it does
not declare, and a sentencepiece with ``SetVocabulary``, i.e. before 0.2)::

    python3 -m venv /work/joey-venv
    .venv/bin/python -c "import site; print(site.getsitepackages()[0])" \
        > /work/joey-venv/lib/python3.11/site-packages/zz_textrnn_torch.pth
    /work/joey-venv/bin/pip install joeynmt==2.3.0 importlib_metadata sentencepiece==0.1.99
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from sacrebleu.metrics import BLEU, CHRF

from textrnn import checkpoint
from textrnn.cli import main as textrnn_main
from textrnn.data.bible import prepare_bible
from textrnn.data.pairs import read_pairs
from textrnn.pipelines import seq2seq

SYSTEMS = ("textrnn", "none", "joeynmt")


def score(hyps: list[str], refs: list[str]) -> dict:
    """sacrebleu corpus BLEU and chrF (default settings) and the number of empty outputs."""
    return {
        "bleu": BLEU().corpus_score(hyps, [refs]).score,
        "chrf": CHRF().corpus_score(hyps, [refs]).score,
        "empty": sum(1 for h in hyps if not h.strip()),
    }


def run_textrnn(
    name: str, data: Path, out: Path, args: argparse.Namespace, extra: list[str]
) -> dict:
    """Train (or resume) one textrnn model for the budget, then score its best checkpoint."""
    run = out / name
    argv = [
        "train",
        "seq2seq",
        "--data",
        str(data / "train.tsv"),
        "--out",
        str(run),
        "--max-minutes",
        str(args.minutes),
        "--budget-clock",
        "cpu",
        "--threads",
        "1",
        "--seed",
        str(args.seed),
        "--vocab-size",
        str(args.vocab_size),
        *extra,
    ]
    if (run / "last.pt").is_file():
        argv.append("--resume")  # an interrupted bench goes on where it was
    start = time.process_time()
    if textrnn_main(argv) != 0:
        raise SystemExit(f"training {name} failed")
    bundle = checkpoint.load(run / "best.pt", task="seq2seq")
    pairs = read_pairs(data / "test.tsv")
    refs = [p.tgt for p in pairs]
    row = {
        "system": name,
        "train_cpu_s": round(time.process_time() - start, 1),
        "parameters": sum(p.numel() for p in bundle.model.parameters()),
        "best_step": bundle.step,
    }
    for search, beam in (("greedy", 1), ("beam", args.beam)):
        hyps = [t.text for t in seq2seq.translate(bundle, [p.src for p in pairs], beam_size=beam)]
        row[search] = score(hyps, refs)
    return row


JOEY_SIDE = """\
        lang: "{lang}"
        level: "bpe"
        voc_file: "{data}/vocab.{lang}"
        tokenizer_type: "sentencepiece"
        tokenizer_cfg: {{model_file: "{data}/sp.{lang}.model"}}
        max_length: 60  # training pairs of at most 60 pieces a side, as textrnn's --max-len"""

JOEY_CONFIG = """\
name: "bible_rnn"
joeynmt_version: "2.3.0"
data:
    train: "{data}/train"
    dev: "{data}/valid"
    test: "{data}/test"
    dataset_type: "plain"
    sample_dev_subset: -1
    src:
{src}
    trg:
{trg}
    special_symbols:  # JoeyNMT's own ids (its vocabulary maps the pieces to them)
        unk_token: "<unk>"
        unk_id: 0
        pad_token: "<pad>"
        pad_id: 1
        bos_token: "<bos>"
        bos_id: 2
        eos_token: "<eos>"
        eos_id: 3
testing:
    beam_size: {beam}
    beam_alpha: 1.0
    eval_metrics: ["bleu", "chrf"]
    sacrebleu_cfg: {{tokenize: "13a"}}
training:
    random_seed: {seed}
    optimizer: "adam"
    learning_rate: 0.004  # halved before the first step (below): 2e-3 in the first epoch
    learning_rate_min: 1.0e-6
    clip_grad_norm: 1.0
    batch_size: 64
    batch_type: "sentence"
    # halve the rate at the start of each epoch, the first included (about two in the
    # budget), near textrnn's linear decay; JoeyNMT 2.3's "plateau" passes
    # ReduceLROnPlateau a verbose= that torch 2.13 refuses
    scheduling: "exponential"
    decrease_factor: 0.5
    epochs: 100
    validation_freq: 100  # it is killed, not stopped: checkpoints close to the budget's end
    logging_freq: 100
    early_stopping_metric: "loss"
    model_dir: "{model_dir}"
    overwrite: True
    shuffle: True
    use_cuda: False
    keep_best_ckpts: 1
    label_smoothing: 0.1
    num_workers: 0
model:
    initializer: "xavier_uniform"
    embed_initializer: "normal"
    embed_init_weight: 0.1
    bias_initializer: "zeros"
    init_rnn_orthogonal: False
    lstm_forget_gate: 1.
    tied_embeddings: False
    tied_softmax: False
    encoder:
        type: "recurrent"
        rnn_type: "gru"
        embeddings:
            embedding_dim: {embedding}
            scale: False
        hidden_size: {hidden}
        bidirectional: True
        dropout: 0.2
        num_layers: 1
    decoder:
        type: "recurrent"
        rnn_type: "gru"
        embeddings:
            embedding_dim: {embedding}
            scale: False
        emb_scale: False
        hidden_size: {hidden}
        dropout: 0.2
        hidden_dropout: 0.2
        num_layers: 1
        input_feeding: True
        init_hidden: "bridge"
        attention: "luong"
"""


def prepare_joey(data: Path, work: Path, vocab_size: int) -> None:
    """JoeyNMT's files: train/valid/test.{en,fr}, sentencepiece models of ``vocab_size``
    pieces learnt from the training side only (as textrnn's), and its vocabulary lists."""
    from textrnn.subword import SubwordVocab

    work.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        pairs = read_pairs(data / f"{split}.tsv")
        for lang, attr in (("en", "src"), ("fr", "tgt")):
            text = "".join(getattr(p, attr) + "\n" for p in pairs)
            (work / f"{split}.{lang}").write_text(text, encoding="utf-8")
    for lang in ("en", "fr"):
        lines = (work / f"train.{lang}").read_text(encoding="utf-8").splitlines()
        vocab = SubwordVocab.train(lines, vocab_size)
        (work / f"sp.{lang}.model").write_bytes(vocab.model_proto)
        (work / f"vocab.{lang}").write_text("\n".join(vocab.itos) + "\n", encoding="utf-8")


def run_joey(data: Path, out: Path, args: argparse.Namespace, sizes: dict) -> dict:
    """Train JoeyNMT under a CPU-time limit, then translate test.en greedy and with beam."""
    work, model_dir = out / "joey-data", out / "joeynmt"
    if not (work / "vocab.fr").is_file():
        prepare_joey(data, work, args.vocab_size)
    config = out / "joey.yaml"
    config.write_text(
        JOEY_CONFIG.format(data=work, src=JOEY_SIDE.format(lang="en", data=work),
                           trg=JOEY_SIDE.format(lang="fr", data=work), model_dir=model_dir,
                           beam=args.beam, seed=args.seed, **sizes),
        encoding="utf-8",
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    seconds = int(args.minutes * 60)
    start = time.monotonic()
    if not (model_dir / "best.ckpt").exists():
        # The kernel ends it (SIGXCPU) once its CPU time is spent: that is the budget.
        subprocess.run(
            [
                "bash",
                "-c",
                f"ulimit -t {seconds}; exec {args.joey_python} -m "
                f"joeynmt train {config} --skip-test",
            ],
            env=env,
            check=False,
        )
    wall = time.monotonic() - start
    refs = [p.tgt for p in read_pairs(data / "test.tsv")]
    row = {"system": "joeynmt", "train_wall_s": round(wall, 1)}
    for search, beam in (("greedy", 1), ("beam", args.beam)):
        # JoeyNMT's translate mode reads stdin and takes its beam size from the config.
        search_config = out / f"joey.{search}.yaml"
        text = config.read_text(encoding="utf-8").replace(
            f"beam_size: {args.beam}",
            f'beam_size: {beam}\n    load_model: "{model_dir / "best.ckpt"}"',
        )
        search_config.write_text(text, encoding="utf-8")
        hyp_file = out / f"joey.{search}.fr"
        # To stdout: its -o path fails in 2.3.0 (BaseConfig has no n_best).
        with open(work / "test.en", encoding="utf-8") as src, open(hyp_file, "w") as hyp:
            subprocess.run(
                [args.joey_python, "-m", "joeynmt", "translate", str(search_config)],
                stdin=src,
                stdout=hyp,
                env=env,
                check=True,
            )
        hyps = hyp_file.read_text(encoding="utf-8").splitlines()
        row[search] = score(hyps + [""] * (len(refs) - len(hyps)), refs)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default="data/bible/en-bbe_fr-lsg",
        help="folder with train/valid/test.tsv; made (every verse) if missing "
        "(default: %(default)s)",
    )
    parser.add_argument("--out", default="runs/bench-translate", help="run folders, results")
    parser.add_argument(
        "--minutes",
        type=float,
        default=10.0,
        help="CPU minutes of training per system (default: %(default)s)",
    )
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help="which to run, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--vocab-size",
        type=int,
        default=4000,
        help="subword pieces per side, all systems (default: %(default)s)",
    )
    parser.add_argument("--beam", type=int, default=5, help="beam size (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1234, help="seed (default: %(default)s)")
    parser.add_argument(
        "--joey-python",
        default="/work/joey-venv/bin/python",
        help="a python with joeynmt 2.3 installed (default: %(default)s)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not (data / "train.tsv").is_file():
        for split, written in prepare_bible("en-bbe", "fr-lsg", data).items():
            print(f"{split}: {written.describe()}")
    results = out / "results.jsonl"
    done = (
        {
            json.loads(line)["system"]: json.loads(line)
            for line in results.read_text(encoding="utf-8").splitlines()
        }
        if results.is_file()
        else {}
    )
    for system in args.systems.split(","):
        if system in done:
            continue
        if system == "joeynmt":
            sizes = {"hidden": 256, "embedding": 128}  # textrnn's H and E
            row = run_joey(data, out, args, sizes)
        else:
            row = run_textrnn(
                system, data, out, args, [] if system == "textrnn" else ["--attention", "none"]
            )
        row.update(
            minutes=args.minutes,
            clock="cpu",
            threads=1,
            seed=args.seed,
            vocab_size=args.vocab_size,
            torch=torch.__version__,
        )
        with results.open("a", encoding="utf-8") as f:  # written as each system finishes
            f.write(json.dumps(row) + "\n")
        done[system] = row
        print(json.dumps(row), flush=True)
    print(
        f"\n{'system':>8} {'greedy BLEU':>11} {'chrF':>6} {'beam BLEU':>9} {'chrF':>6} {'empty':>5}"
    )
    for system, r in done.items():
        print(
            f"{system:>8} {r['greedy']['bleu']:>11.2f} {r['greedy']['chrf']:>6.2f} "
            f"{r['beam']['bleu']:>9.2f} {r['beam']['chrf']:>6.2f} {r['beam']['empty']:>5}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
