"""A small TOML writer for generated study files: top-level values, then one [table] per section.

Everything below a section is written inline (`lr = { low = 0.1, high = 0.5 }`), which is what
study files look like. `Raw` puts text in verbatim, for values a writer would never produce
(`1e400`, an integer past 64 bits).
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass
from typing import Any

Table = dict[str, Any]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# Characters a TOML basic string must escape: the quote, the backslash and the controls.
_ESCAPES = {c: f"\\u{c:04X}" for c in [*range(0x20), 0x7F]} | {
    ord('"'): '\\"',
    ord("\\"): "\\\\",
}


@dataclass(frozen=True)
class Raw:
    """A value written into the TOML text exactly as given."""

    text: str


def toml_text(table: Table) -> str:
    """The TOML text of a study table: scalars first, then each sub-table as a [section]."""
    lines = [_pair(k, v) for k, v in table.items() if not isinstance(v, dict)]
    for name, section in table.items():
        if isinstance(section, dict):
            lines += ["", f"[{key_text(name)}]", *(_pair(k, v) for k, v in section.items())]
    return "\n".join(lines) + "\n"


def _pair(key: str, value: Any) -> str:
    """One `key = value` line."""
    return f"{key_text(key)} = {value_text(value)}"


def key_text(key: str) -> str:
    """A key, bare when TOML allows it, else quoted."""
    return key if _BARE_KEY.fullmatch(key) else string_text(key)


def string_text(text: str) -> str:
    """A TOML basic string."""
    return '"' + text.translate(_ESCAPES) + '"'


def value_text(value: Any) -> str:
    """Any TOML value, inline."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, str):
        return string_text(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(map(value_text, value)) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(_pair(k, v) for k, v in value.items()) + " }" if value else "{}"
    raise TypeError(f"no TOML for {value!r}")


def _float_text(value: float) -> str:
    """A float as TOML writes it: nan, inf and -inf by name, anything else by repr."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)
