#!/usr/bin/env bash
# The README's best CoNLL-2003 tagger (88.12 test entity F1, no pretrained embeddings): seven
# BiLSTM-CRF taggers with word dropout, four trained on train+valid and three on train only,
# read as one ensemble with document agreement. About two hours on 2 cores, two runs at a time:
#
#   bash scripts/ner-best.sh [OUT]        # default OUT: runs/ner-best
#
# A run that is already finished (its last.pt holds the last step) is not trained again, and
# one that was killed resumes, so the script can be stopped and started again.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/ner-best}
TEXTRNN=${TEXTRNN:-.venv/bin/textrnn}  # another textrnn (or a stub, to see the commands)
DATA=data/conll2003
[ -f "$DATA/train.txt" ] || "$TEXTRNN" data conll2003 --out "$DATA"
mkdir -p "$OUT"

WIDE=(--crf --epochs 20 --threads 1 --char-embedding-size 50 --char-hidden-size 50
      --hidden-size 200)
ALSO=(--train-also "$DATA/valid.txt")
# name | flags: the first four read train+valid, so validation is not held out and last.pt is
# the model; the other three read train only, and best.pt holds the best validation F1.
RUNS=(
    "tv-s1|--seed 1 --word-dropout 0.1 ${ALSO[*]}"
    "tv-s2|--seed 2 --word-dropout 0.1 ${ALSO[*]}"
    "tv-s3|--seed 3 --word-dropout 0.1 ${ALSO[*]}"
    "tvlm-s1|--seed 1 --word-dropout 0.1 --lm-weight 0.1 --lm-vocab 2000 ${ALSO[*]}"
    "wd-s1|--seed 1 --word-dropout 0.1"
    "wd-s2|--seed 2 --word-dropout 0.1"
    "wd25-s1|--seed 1 --word-dropout 0.25"
)

train() {  # name flags...
    local name=$1; shift
    local resume=()
    [ -f "$OUT/$name/last.pt" ] && resume=(--resume)
    "$TEXTRNN" train tagger --data "$DATA/train.txt" --out "$OUT/$name" "${WIDE[@]}" "$@" \
        "${resume[@]}" > "$OUT/$name.log" 2>&1
    echo "trained $name (log: $OUT/$name.log)"
}

for run in "${RUNS[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done  # two at a time on 2 cores
    # shellcheck disable=SC2086  # the flags are meant to split into words
    train "${run%%|*}" ${run#*|} &
done
wait

members=()
for run in "${RUNS[@]:1}"; do
    name=${run%%|*}
    case $name in tv*) members+=(--ensemble "$OUT/$name/last.pt") ;;
                  *) members+=(--ensemble "$OUT/$name/best.pt") ;; esac
done
# The first checkpoint must hold the largest vocabulary: a train+valid one.
exec "$TEXTRNN" eval --checkpoint "$OUT/tv-s1/last.pt" "${members[@]}" \
    --data "$DATA/test.txt" --agreement 4 --threads 1
