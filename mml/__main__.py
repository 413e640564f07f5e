"""`python -m mml` runs the `mml` command."""

import sys

from mml.cli import main

sys.exit(main())
