"""`python -m infra.cli` runs the `giftcards` command line."""

import sys

from infra.cli import main

sys.exit(main())
