"""Schemathesis hooks for test_openapi.py: what its generators never produce by themselves.

Strings there are UTF-8 text (no lone surrogates) and bodies are as deep as the schema;
here every negative-mode JSON object body may have one field replaced by a lone UTF-16
surrogate (`"x\\ud800"`, valid JSON, not Unicode) or by deep nesting. The answer must
stay a documented 4xx in the one error shape (checked by the run's checks).
Loaded by `st` through SCHEMATHESIS_HOOKS.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import schemathesis

DEPTH = 10_000  # as in the issue: 20 KB, under the body limit


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    meta = case.meta
    body = case.body
    if meta is None or not meta.generation.mode.is_negative:
        return case  # positive cases must stay valid (positive_data_acceptance)
    if not isinstance(body, dict) or not body:
        return case
    # Deterministic (the run is seeded): a third of these cases each way. Sent as raw
    # JSON bytes: schemathesis's own checks cannot hold a lone surrogate in a str.
    choice = zlib.crc32(repr(sorted(body.items(), key=repr)).encode()) % 3
    key = sorted(body, key=str)[0]
    if choice == 1:
        case.body = json.dumps({**body, key: "x\ud800"}).encode()  # ensure_ascii: \\ud800
    elif choice == 2:
        marker = "NESTED-5f1d"
        text = json.dumps({**body, key: marker})
        case.body = text.replace(f'"{marker}"', "[" * DEPTH + "]" * DEPTH).encode()
    return case
