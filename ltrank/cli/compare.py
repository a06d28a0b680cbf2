"""`ltrank compare`: being built (see the issue that owns it)."""

from __future__ import annotations

from ltrank.errors import LtrankError


def command() -> None:
    """Not implemented yet."""
    raise LtrankError("this command is not implemented yet in this version of ltrank")
