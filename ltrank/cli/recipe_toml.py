"""The resolved recipe as TOML text, for ``ltrank train --dry-run`` (a valid recipe file)."""

from __future__ import annotations

import json
import math
from typing import Any


def to_toml(data: dict[str, Any]) -> str:
    """Write resolved recipe data as TOML (``None`` values are left out: they are defaults)."""
    lines: list[str] = []
    _emit_table(data, [], lines)
    return "\n".join(lines).strip() + "\n"


def _emit_table(table: dict[str, Any], prefix: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if v is not None and not _is_table(v) and not _is_table_array(v)}
    tables = {k: v for k, v in table.items() if _is_table(v)}
    arrays = {k: v for k, v in table.items() if _is_table_array(v)}
    if prefix and (scalars or not (tables or arrays)):
        lines.append(f"\n[{'.'.join(_key(p) for p in prefix)}]")
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables.items():
        _emit_table(value, prefix + [key], lines)
    for key, items in arrays.items():
        for item in items:
            lines.append(f"\n[[{'.'.join(_key(p) for p in prefix + [key])}]]")
            inner_scalars = {k: v for k, v in item.items() if not _is_table(v)}
            for k, v in inner_scalars.items():
                if v is not None:
                    lines.append(f"{_key(k)} = {_value(v)}")
            for k, v in item.items():
                if _is_table(v):
                    lines.append(f"{_key(k)} = {_value(v)}")


def _is_table(value: Any) -> bool:
    return isinstance(value, dict)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return json.dumps(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
