"""``python -m grader``: the same as ``backfill-grader``."""

import sys

from .cli import main

sys.exit(main())
