"""``python -m backfill_lab.cli``: the backfill-lab command."""

from . import main

raise SystemExit(main())
