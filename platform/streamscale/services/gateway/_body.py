"""Checks on a parsed JSON body before any schema sees it.

JSON lets a string escape a lone UTF-16 surrogate (`"\\ud800"`): valid JSON, but not
Unicode, so it cannot be stored, hashed or printed as UTF-8. And nesting is unbounded in
the grammar while Python's decoder recurses. Both are refused here, for every route, with
a 400 in the one error shape.
"""

from __future__ import annotations

from typing import Any

from ..errors import ApiError

MAX_DEPTH = 32  # arrays and objects inside one another; no request body needs more


def check_json(value: Any) -> None:
    """Raise ApiError if `value` nests deeper than MAX_DEPTH or holds a lone surrogate."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, path or "body")
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise ApiError(f"request body nests deeper than {MAX_DEPTH} levels",
                               code="nesting_too_deep")
            if isinstance(item, dict):
                for key, child in item.items():
                    where = f"{path}.{key}" if path else key
                    _check_text(key, f"{path or 'body'} (a key)")
                    stack.append((child, where, depth + 1))
            else:
                stack.extend((child, f"{path}.{i}" if path else str(i), depth + 1)
                             for i, child in enumerate(item))


def _check_text(text: str, where: str) -> None:
    if text.isascii():
        return
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ApiError(
            f"{where}: a lone UTF-16 surrogate (\\ud800-\\udfff) is not Unicode text",
            code="invalid_unicode", details=[{"field": where, "message": "not valid Unicode"}],
        ) from None
