"""Body-size rules: the 15 MiB per-transaction storage budget and the console's
`fulltruncate` display cut (reference §4, "Body size limits")."""

from __future__ import annotations

import copy
from typing import Any

from .jsfmt import js_to_string, js_truthy

TRUNCATE_APPEND = "\n[truncated ...]"
MAX_BODIES_BYTES = 15 * 1024 * 1024
TRUNCATE_SIZE = 15000


def _describe(value: Any) -> str:
    """The tail of Node 14's ERR_INVALID_ARG_TYPE message."""
    if isinstance(value, dict):
        return "an instance of Object"
    if isinstance(value, list):
        return "an instance of Array"
    kind = "boolean" if isinstance(value, bool) else "number"
    return f"type {kind} ({js_to_string(value)})"


class BodyBudget:
    """`enforceMaxBodiesSize`: a running byte total shared by all bodies of one transaction.

    Quirk kept from core: the cut is `string.slice(0, remainingBytes)`, i.e. it
    slices characters using a byte count. A non-string body raises TypeError, as
    `Buffer.byteLength` does in core.
    """

    def __init__(self, limit: int = MAX_BODIES_BYTES, used: int = 0) -> None:
        self.limit = limit
        self.used = used

    def take(self, body: Any) -> tuple[Any, bool]:
        if not js_truthy(body):
            return (None if body is None else js_to_string(body)), False
        if not isinstance(body, str):
            raise TypeError(
                'The "string" argument must be of type string or an instance of Buffer or '
                f"ArrayBuffer. Received {_describe(body)}"
            )
        length = len(body.encode("utf-8"))
        truncated = False
        if self.used + length > self.limit:
            length = max(0, self.limit - self.used)
            body = body[:length] + TRUNCATE_APPEND
            truncated = True
        self.used += length
        return body, truncated

    def take_in(self, part: Any) -> bool:
        """Apply to `part["body"]` in place (request/response sub-documents)."""
        if not isinstance(part, dict) or "body" not in part:
            return False
        part["body"], truncated = self.take(part["body"])
        return truncated


def stored_body_bytes(tx: dict[str, Any]) -> int:
    """calculateTransactionBodiesByteLength: what an API update starts its budget from."""
    total = 0
    parts = [tx.get("request"), tx.get("response")]
    for orch in tx.get("orchestrations") or []:
        parts += [orch.get("request"), orch.get("response")]
    for part in parts:
        if isinstance(part, dict) and isinstance(part.get("body"), str):
            total += len(part["body"].encode("utf-8"))
    return total


def fulltruncate(tx: dict[str, Any], size: int = TRUNCATE_SIZE) -> dict[str, Any]:
    """The console's transaction-details view: each body cut to `size` chars + marker."""
    out = copy.deepcopy(tx)

    def cut(holder: dict[str, Any]) -> None:
        for key in ("request", "response"):
            part = holder.get(key)
            if isinstance(part, dict) and isinstance(part.get("body"), str):
                if len(part["body"]) > size:
                    part["body"] = part["body"][:size] + TRUNCATE_APPEND

    cut(out)
    for route in out.get("routes") or []:
        cut(route)
        for orch in route.get("orchestrations") or []:
            cut(orch)
    for orch in out.get("orchestrations") or []:
        cut(orch)
    return out
