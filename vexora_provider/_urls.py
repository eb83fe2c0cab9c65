"""Checking the URLs a connection holds: the gateway's base URL, a proxy's, the budget storage's.

Each is refused with a :class:`~vexora_provider.exceptions.VexoraConfigError` naming the field
and the fix when an HTTP library would choke on them or silently do something else. A URL is
only ever echoed in a message once it is known to carry no credentials.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import SplitResult, parse_qs, quote, unquote, urlsplit

import httpx

from vexora_provider.exceptions import VexoraConfigError

__all__ = ["ProxyURL", "StorageURL", "base_url_from_fields", "is_loopback", "parse_proxy", "parse_storage"]

# "javascript:alert(1)", "mailto:x" or a bare "https:": a scheme without "//". A host followed by
# a port ("localhost:8080") is not one.
_SCHEME_ONLY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?!\d)")
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


def is_loopback(hostname: str) -> bool:
    """Whether ``hostname`` is ``localhost`` or a loopback address."""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _split(text: str, field: str) -> SplitResult:
    """Split an absolute http(s) URL; never echoes ``text`` when it may carry credentials."""
    if _UNSAFE.search(text):
        raise VexoraConfigError(f"{field} contains a space, tab or line break; remove it")
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise VexoraConfigError(
            f"{field} must not carry credentials (user:password@): put the merchant number in the "
            "connection's login and the app secret in its password"
        )
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise VexoraConfigError(
            f"{field} {text!r} is not an http(s) URL with a host name, e.g. "
            "https://sandbox-api.vexora.com/nigeria"
        )
    try:
        port = parts.port
    except ValueError:
        raise VexoraConfigError(f"{field} {text!r} has a port that is not a number from 1 to 65535") from None
    if port == 0:
        raise VexoraConfigError(f"{field} {text!r} has a port that is not a number from 1 to 65535")
    if parts.query or parts.fragment:
        raise VexoraConfigError(f"{field} {text!r} must not carry a query (?…) or fragment (#…)")
    try:
        httpx.URL(text)
    except httpx.InvalidURL as err:
        raise VexoraConfigError(f"{field} {text!r} is not a usable URL: {err}") from None
    return parts


def base_url_from_fields(
    host: str | None, port: int | None, schema: str | None, allow_insecure_http: bool
) -> str:
    """
    Return the base URL from a connection's host, port and schema, or raise saying what to fix.

    No scheme means ``https``. A port or schema given separately (the URI form of a connection)
    is folded in when the host does not carry its own.
    """
    if host is None or not host.strip():
        raise VexoraConfigError(
            "the connection has no host: set it to the base URL with its region path, e.g. "
            "https://sandbox-api.vexora.com/nigeria"
        )
    url = host.strip()
    if "://" not in url:
        if _SCHEME_ONLY.match(url):
            raise VexoraConfigError(
                f"host {url!r} is not an http(s) base URL: write it as "
                "https://<host>/<region>, e.g. https://sandbox-api.vexora.com/nigeria"
            )
        url = "https://" + url
    parts = _split(url, "host")
    if port is not None:
        if not 1 <= port <= 65535:
            raise VexoraConfigError(f"port {port} is not a number from 1 to 65535")
        if parts.port is None:
            parts = parts._replace(netloc=f"{parts.netloc}:{port}")
    if schema and schema.strip("/") and parts.path in ("", "/"):
        parts = parts._replace(path="/" + schema.strip("/"))
    hostname = parts.hostname or ""
    if parts.scheme == "http" and not (allow_insecure_http or is_loopback(hostname)):
        raise VexoraConfigError(
            f"plain http to {hostname} is refused: use https, or set the extra "
            "allow_insecure_http to true if you really mean it"
        )
    return parts.geturl().rstrip("/")


@dataclass(frozen=True, slots=True)
class ProxyURL:
    """
    A checked ``http://`` proxy URL; its credentials are kept apart and never shown.

    :param url: the proxy URL without credentials, e.g. ``http://proxy.corp:3128``.
    :param username: the proxy user, if any.
    :param password: the proxy password, if any.
    """

    url: str
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def with_credentials(self) -> str:
        """The URL with the credentials put back (percent-encoded), for the HTTP library only."""
        if not self.username:
            return self.url
        scheme, rest = self.url.split("://", 1)
        auth = quote(self.username, safe="") + ":" + quote(self.password or "", safe="")
        return f"{scheme}://{auth}@{rest}"


def parse_proxy(text: str, *, source: str) -> ProxyURL:
    """Split a proxy URL into a credential-free URL and its credentials; refuse unusable ones."""
    text = text.strip()
    if "://" not in text:
        text = "http://" + text
    scheme = text.split("://", 1)[0].lower()
    if scheme != "http":
        raise VexoraConfigError(
            f"{source}: only http:// proxies are supported (got a {scheme}:// URL); the tunnel "
            "through an http:// proxy still carries TLS end to end to Vexora"
        )
    if _UNSAFE.search(text):
        raise VexoraConfigError(f"{source} contains a space, tab or line break; remove it")
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = 0
    if not parts.hostname or port == 0 or (parts.path not in ("", "/")) or parts.query or parts.fragment:
        raise VexoraConfigError(
            f"{source} must look like http://[user:password@]host:port, e.g. http://proxy.corp:3128"
        )
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    clean = f"http://{netloc}:{port or 80}"
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return ProxyURL(clean, user, password)


_STORAGE_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True, slots=True)
class StorageURL:
    """
    A checked Redis URL (the ``budget_storage`` extra); its password is never shown.

    :param url: the URL as given, credentials included: for the Redis client only.
    :param shown: the URL without credentials or query, for messages and logs.
    :param password: the password, if any (registered with Airflow's secret masker).
    """

    url: str = field(repr=False)
    shown: str
    password: str | None = field(default=None, repr=False)


def parse_storage(text: str) -> StorageURL:
    """Check a ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL; refuse it saying what to fix."""
    text = text.strip()
    example = "e.g. redis://redis.internal:6379/0 or rediss://:<password>@redis.internal:6380/0"
    if _UNSAFE.search(text):
        raise VexoraConfigError("extra budget_storage contains a space, tab or line break; remove it")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _STORAGE_SCHEMES:
        shown = f"a {scheme}:// URL" if scheme else "no URL scheme"
        raise VexoraConfigError(
            f"extra budget_storage must be a redis://, rediss:// or unix:// URL (got {shown}), {example}"
        )
    # The Redis client also takes the password from the query (the usual way for unix sockets).
    password = (
        unquote(parts.password) if parts.password else parse_qs(parts.query).get("password", [None])[-1]
    )
    if scheme == "unix":
        if not parts.path:
            raise VexoraConfigError(
                "extra budget_storage: a unix:// URL needs the socket path, e.g. unix:///run/redis.sock"
            )
        return StorageURL(text, f"unix://{parts.path}", password)
    try:
        port = parts.port
    except ValueError:
        port = 0
    database = parts.path.strip("/")
    if not parts.hostname or port == 0 or not (database == "" or database.isdigit()):
        raise VexoraConfigError(
            "extra budget_storage must look like redis://[:password@]host[:port][/database], "
            f"the database a number; {example}"
        )
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    shown = f"{scheme}://{netloc}:{port or 6379}/{database or 0}"
    return StorageURL(text, shown, password)
