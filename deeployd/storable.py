"""Values that JSON or PostgreSQL cannot carry, found before they reach either.

- A number outside the float range (`1e400` parses to `inf`) and the `NaN`/`Infinity` literals
  Python's parser accepts: no JSON response can carry them back out, and PostgreSQL's `json`
  refuses the literals.
- NUL (U+0000) and lone surrogates (U+D800-U+DFFF without their pair) in a string: `text` and
  `jsonb` columns refuse them, and a lone surrogate is not even encodable as UTF-8. (The `json`
  type stores both verbatim, as escapes: pipeline items keep them.)
"""

from __future__ import annotations

import math
import re
from typing import Any

Location = tuple[str | int, ...]

UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
NOT_FINITE = "must be a finite number (JSON has no NaN or Infinity, and floats end near 1.8e308)"


def string_problem(text: str) -> str | None:
    """Why PostgreSQL cannot store `text` as text, or None."""
    found = UNSTORABLE_CHARACTER.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain the NUL character (U+0000)"
    return "must not contain a lone surrogate (U+D800-U+DFFF): it is not valid Unicode text"


def find_unstorable(
    value: Any, loc: Location, *, strings: bool = True
) -> tuple[Location, str] | None:
    """The first place in a parsed JSON value that JSON or PostgreSQL cannot carry, and why
    (`strings=False`: only non-finite numbers). Walks without recursion, so any depth the
    parser accepted is fine."""
    stack: list[tuple[Location, Any]] = [(loc, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return where, NOT_FINITE
        elif isinstance(item, str):
            if strings and (problem := string_problem(item)):
                return where, problem
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if strings and (problem := string_problem(key)):
                    return (*where, key), f"this key {problem}"
                stack.append(((*where, key), child))
        elif isinstance(item, list):
            stack.extend(((*where, i), child) for i, child in reversed(list(enumerate(item))))
    return None
