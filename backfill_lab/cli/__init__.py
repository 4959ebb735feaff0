"""The ``backfill-lab`` command: thin argument parsing over the engine (``main``)."""

from .commands import main

__all__ = ["main"]
