#!/usr/bin/env bash
# The main job, from a fresh machine: set up ./.venv, train the default chatbot, chat with it.
#
# Trains on the real bAbI tasks 1, 6, 7 and 8 (where / yes-no / counting / carrying questions)
# when they are installed under data/babi (`textrnn data babi`), otherwise on GENERATED stories
# of 13 of bAbI's 20 kinds of question, written by textrnn itself, so that nothing needs
# downloading; those train for 5 minutes of this process's CPU time.
# Extra arguments go to `textrnn train qa` (e.g. --epochs 5 --device cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
TEXTRNN=.venv/bin/textrnn
REAL=data/babi/tasks_1-20_v1-2/en-10k
if [ -d "$REAL" ]; then
    echo "Training the chatbot on the real bAbI tasks 1, 6, 7, 8 in $REAL"
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
"$TEXTRNN" train qa --data "$DATA" "${TASKS[@]}" "${BUDGET[@]}" --out runs/chatbot "$@"
"$TEXTRNN" eval --checkpoint runs/chatbot/best.pt --data "$DATA" "${TASKS[@]}"
exec "$TEXTRNN" chat --checkpoint runs/chatbot/best.pt
