"""`python -m entrypoints.cli` runs the `giftcards` command line."""

import sys

from entrypoints.cli import main

sys.exit(main())
