"""Option choices shared by several commands, built from the one declaration of each concept."""

from __future__ import annotations

from enum import Enum

from ltrank.groups import SCHEMES

#: Class groupings (:mod:`ltrank.groups`), as a command-line choice.
Groups = Enum("Groups", {name: name for name in SCHEMES}, type=str)  # type: ignore[misc]
