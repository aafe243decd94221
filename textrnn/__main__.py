"""``python -m textrnn`` runs the command line."""

import sys

from textrnn.cli import main

sys.exit(main())
