"""Network settings shared by every path: which proxy (if any) and which CAs to trust.

Decided once per hook or session from the connection and the environment, then handed to the
sync client and the async client alike, so both always take the same route and trust the same
certificates. Neither HTTP library reads proxy or CA variables from the environment itself.
"""

from __future__ import annotations

import os
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from vexora_provider._tls import ssl_context
from vexora_provider._urls import ProxyURL, parse_proxy
from vexora_provider.config import VexoraConfig
from vexora_provider.exceptions import VexoraConfigError

__all__ = ["Network", "network_for", "ssl_context"]


@dataclass(frozen=True, slots=True)
class Network:
    """
    The route and trust of one hook or session.

    :param proxy: the proxy to tunnel through, ``None`` to connect directly.
    :param proxy_source: where the proxy came from (``extra proxy``, ``HTTPS_PROXY`` …), or why
        there is none.
    :param ssl: the TLS context.
    """

    proxy: ProxyURL | None
    proxy_source: str
    ssl: ssl.SSLContext

    def describe(self) -> str:
        """``via proxy http://proxy.corp:3128 (from HTTPS_PROXY)`` or ``direct``; no credentials."""
        if self.proxy is None:
            return f"direct ({self.proxy_source})" if self.proxy_source else "direct"
        return f"via proxy {self.proxy.url} (from {self.proxy_source})"


def _env(environ: Mapping[str, str], name: str) -> tuple[str, str] | None:
    # Lower case first, as curl and urllib do.
    for key in (name.lower(), name.upper()):
        value = environ.get(key, "").strip()
        if value:
            return key, value
    return None


def _environment_proxy(base_url: str, environ: Mapping[str, str]) -> tuple[ProxyURL | None, str]:
    parts = urlsplit(base_url)
    found = _env(environ, f"{parts.scheme}_proxy") or _env(environ, "all_proxy")
    if found is None:
        return None, ""
    name, value = found
    no_proxy = _env(environ, "no_proxy")
    if no_proxy and urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
        parts.netloc, {"no": no_proxy[1]}
    ):
        return None, f"{no_proxy[0]} names {parts.hostname}"
    return parse_proxy(value, source=f"environment variable {name}"), name


def network_for(config: VexoraConfig, environ: Mapping[str, str] | None = None) -> Network:
    """Return the proxy and TLS context for ``config``; an unusable proxy variable is a config error."""
    environ = os.environ if environ is None else environ
    proxy: ProxyURL | None
    if config.proxy is not None:
        proxy, source = config.proxy, "extra proxy"
    else:
        proxy, source = _environment_proxy(config.base_url, environ)
    cafile = config.ca_bundle or environ.get("SSL_CERT_FILE") or None
    capath = None if config.ca_bundle else environ.get("SSL_CERT_DIR") or None
    try:
        context = ssl_context(verify=config.verify, cafile=cafile, capath=capath)
    except (OSError, ssl.SSLError) as err:
        # ca_bundle was checked with the config; what is left are the standard variables.
        raise VexoraConfigError(
            f"cannot load CA certificates from SSL_CERT_FILE={cafile!r} / SSL_CERT_DIR={capath!r} "
            f"({type(err).__name__}); fix or unset them, or set the extra ca_bundle"
        ) from None
    return Network(proxy=proxy, proxy_source=source, ssl=context)
