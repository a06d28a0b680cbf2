"""Option choices shared by several commands."""

from __future__ import annotations

from enum import Enum


class Groups(str, Enum):
    """Class groupings of METHOD.md section 2."""

    thirds = "thirds"
    shots = "shots"
