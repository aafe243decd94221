#!/usr/bin/env bash
# The main job, from a fresh machine: set up ./.venv, train the default chatbot, chat with it.
#
# Trains on the real bAbI tasks 1, 6, 7 and 8 (where / yes-no / counting / carrying questions)
# when they are installed under data/babi (`textrnn data babi`), otherwise on GENERATED stories
# of 13 of bAbI's 20 kinds of question, written by textrnn itself, so that nothing needs
# downloading; those train for 5 minutes of this process's CPU time.
# With the real data, `bash scripts/quickstart.sh joint` trains instead the one joint model
# of all 20 kinds of question (40 CPU-minutes, the README's headline chatbot).
# Extra arguments go to `textrnn train qa` (e.g. --epochs 5 --device cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
TEXTRNN=.venv/bin/textrnn
REAL=data/babi/tasks_1-20_v1-2/en-10k
JOINT=0 OUT=runs/chatbot
if [ "${1:-}" = joint ]; then JOINT=1; shift; fi
if [ "$JOINT" = 1 ] && [ ! -d "$REAL" ]; then
    echo "quickstart.sh joint needs the real bAbI data in data/babi: $TEXTRNN data babi" >&2
    exit 2
fi
if [ "$JOINT" = 1 ]; then
    echo "Training the joint chatbot on all 20 bAbI tasks in $REAL (40 CPU-minutes)"
    DATA=$REAL
    TASKS=(--tasks all)
    BUDGET=(--epochs 30 --qrn-hops 3 --max-minutes 40 --budget-clock cpu)
    OUT=runs/joint
elif [ -d "$REAL" ]; then
    echo "Training the chatbot on the real bAbI tasks 1, 6, 7, 8 in $REAL"
    echo "(for the joint model of all 20 kinds of question: bash scripts/quickstart.sh joint)"
    DATA=$REAL
    TASKS=(--tasks 1,6,7,8)
    BUDGET=()
else
    echo "No bAbI data in data/babi (get it with: $TEXTRNN data babi)."
    echo "Training the chatbot on GENERATED stories (data/generated): bAbI's format, words and"
    echo "13 of its kinds of question, for 5 CPU-minutes."
    "$TEXTRNN" data generate --out data/generated
    DATA=data/generated
    TASKS=()  # every kind in the folder
    BUDGET=(--max-minutes 5 --budget-clock cpu)
fi
"$TEXTRNN" train qa --data "$DATA" "${TASKS[@]}" "${BUDGET[@]}" --out "$OUT" "$@"
"$TEXTRNN" eval --checkpoint "$OUT/best.pt" --data "$DATA" "${TASKS[@]}"
exec "$TEXTRNN" chat --checkpoint "$OUT/best.pt"
