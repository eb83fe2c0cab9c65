"""The TLS context every path uses, built once per CA setting."""

from __future__ import annotations

import ssl
from functools import lru_cache

import certifi

__all__ = ["ssl_context"]


@lru_cache(maxsize=8)
def ssl_context(*, verify: bool, cafile: str | None, capath: str | None) -> ssl.SSLContext:
    """
    Return the TLS context: ``cafile``/``capath`` when given, else certifi's CA bundle.

    Cached: loading a CA bundle takes milliseconds, and one context serves any number of clients.
    """
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if cafile is None and capath is None:
        cafile = certifi.where()
    return ssl.create_default_context(cafile=cafile, capath=capath)
