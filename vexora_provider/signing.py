"""The Vexora signature rule, as Vexora documents it, as pure functions.

1. take every body field except ``sign`` and drop those whose value is ``None`` or ``""``;
2. sort the keys by plain code-point order;
3. concatenate ``key=value`` with no separator between pairs;
4. append the app secret;
5. MD5 over the UTF-8 bytes, lowercase hex.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

__all__ = ["SIGN_FIELD", "canonical_string", "sign", "signed_body", "timestamp_ms", "verify"]

SIGN_FIELD = "sign"


def _text(value: object) -> str:
    # We send every value as a JSON string, so this only matters when verifying bodies built
    # elsewhere (callbacks, users' fixtures): booleans follow Java's String.valueOf, like the docs.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def canonical_string(fields: Mapping[str, object]) -> str:
    """Return the ``key=value`` concatenation that is signed (without the secret)."""
    kept = {k: v for k, v in fields.items() if k != SIGN_FIELD and v is not None and v != ""}
    return "".join(f"{key}={_text(kept[key])}" for key in sorted(kept))


def sign(fields: Mapping[str, object], secret: str) -> str:
    """Return the lowercase hex MD5 signature of ``fields`` under ``secret``."""
    payload = canonical_string(fields) + secret
    return hashlib.md5(payload.encode("utf-8"), usedforsecurity=False).hexdigest()


def verify(fields: Mapping[str, object], secret: str, signature: object) -> bool:
    """Check ``signature`` against ``fields`` in constant time; hex case does not matter.

    A non-string or non-ASCII signature never matches (and never raises: callbacks are input from
    the network, and ``compare_digest`` refuses non-ASCII ``str``, so bytes are compared).
    """
    if not isinstance(signature, str):
        return False
    offered = signature.lower().encode("utf-8", "replace")
    return hmac.compare_digest(sign(fields, secret).encode("ascii"), offered)


def timestamp_ms(now: float | None = None) -> str:
    """Return Unix time in milliseconds as a string, the form Vexora signs."""
    return str(int((time.time() if now is None else now) * 1000))


def signed_body(fields: Mapping[str, str], secret: str) -> dict[str, str]:
    """Return ``fields`` plus their ``sign``, ready to be sent as the JSON body."""
    body = dict(fields)
    body[SIGN_FIELD] = sign(body, secret)
    return body
