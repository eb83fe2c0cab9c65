"""Hook configuration derived from a ``vexora`` Airflow connection, as pure, testable code."""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vexora_provider.exceptions import VexoraConfigError
from vexora_provider.models import StatusMap

__all__ = ["EXTRA_KEYS", "REGION_TIMEZONES", "VexoraConfig", "timezone_for_base_url"]

EXTRA_KEYS = frozenset(
    {
        "connect_timeout",
        "read_timeout",
        "max_attempts",
        "requests_per_second",
        "timezone",
        "status_map",
        "allow_insecure_http",
    }
)

# The region path segments Vexora documents, and each region's local time.
REGION_TIMEZONES: Mapping[str, str] = {
    "indonesia": "Asia/Jakarta",
    "nigeria": "Africa/Lagos",
    "pakistan": "Asia/Karachi",
    "argentina": "America/Argentina/Buenos_Aires",
    "colombia": "America/Bogota",
    "korea": "Asia/Seoul",
    "australia": "Australia/Sydney",
    "vietnam": "Asia/Ho_Chi_Minh",
    "cambodia": "Asia/Phnom_Penh",
    "cambodia-usd": "Asia/Phnom_Penh",
    "myanmar": "Asia/Yangon",
    "brazil": "America/Sao_Paulo",
    "mexico": "America/Mexico_City",
    "malaysia": "Asia/Kuala_Lumpur",
    "india": "Asia/Kolkata",
    "thailand": "Asia/Bangkok",
    "philippines": "Asia/Manila",
    "japan": "Asia/Tokyo",
    "kenya": "Africa/Nairobi",
    "bangladesh": "Asia/Dhaka",
    "chile": "America/Santiago",
    "peru": "America/Lima",
}

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_MAX_ATTEMPTS = 4


def timezone_for_base_url(base_url: str) -> str | None:
    """Return the IANA zone of the base URL's region path segment, if it is a documented one."""
    for segment in reversed(urlsplit(base_url).path.split("/")):
        if segment:
            return REGION_TIMEZONES.get(segment.lower())
    return None


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _base_url(host: str | None, allow_insecure_http: bool) -> str:
    if not host or not host.strip():
        raise VexoraConfigError("the connection has no host (the base URL with its region path)")
    url = host.strip().rstrip("/")
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise VexoraConfigError(f"host {host!r} is not an http(s) base URL")
    if parts.scheme == "http" and not (allow_insecure_http or _is_loopback(parts.hostname)):
        raise VexoraConfigError(
            f"plain http to {parts.hostname} is refused: use https, or set the extra "
            "allow_insecure_http to true if you really mean it"
        )
    if parts.query or parts.fragment:
        raise VexoraConfigError(f"host {host!r} must not carry a query or fragment")
    return url


def _optional_number(extra: Mapping[str, object], key: str, *, minimum: float) -> float | None:
    """Return the extra as a finite number >= ``minimum``, or ``None`` when it is absent or empty."""
    value = extra.get(key)
    if value is None or value == "":
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < minimum:
        raise VexoraConfigError(f"extra {key}={value!r} must be a number >= {minimum:g}")
    return number


def _number(extra: Mapping[str, object], key: str, default: float, *, minimum: float) -> float:
    number = _optional_number(extra, key, minimum=minimum)
    return default if number is None else number


def _flag(extra: Mapping[str, object], key: str) -> bool:
    value = extra.get(key)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _status_map(value: object) -> StatusMap:
    if value is None or value == "":
        return StatusMap.with_overrides()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise VexoraConfigError("extra status_map is not valid JSON") from None
    if not isinstance(value, dict):
        raise VexoraConfigError("extra status_map must be a JSON object of status code to state")
    return StatusMap.with_overrides(value)


def _zone(name: str | None) -> ZoneInfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise VexoraConfigError(f"extra timezone {name!r} is not an IANA timezone name") from None


@dataclass(frozen=True, slots=True)
class VexoraConfig:
    """
    Everything the hook needs to talk to one merchant account; the secret never shows in repr.

    :param base_url: scheme, host and region path, without a trailing slash.
    :param merchant_no: the merchant number (connection login), sent as the ``merchantNo`` header.
    :param secret: the app secret (connection password) used to sign bodies.
    :param connect_timeout: seconds to establish a connection.
    :param read_timeout: seconds to wait for an answer.
    :param max_attempts: total tries of one call, including the first.
    :param requests_per_second: client-side rate limit, ``None`` for unlimited.
    :param timezone: the region's local time, used for ``successTime``; ``None`` when unknown.
    :param status_map: status code classification with the connection's overrides.
    """

    base_url: str
    merchant_no: str
    secret: str = field(repr=False)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    requests_per_second: float | None = None
    timezone: ZoneInfo | None = None
    status_map: StatusMap = field(default_factory=StatusMap.with_overrides)

    @classmethod
    def from_connection_fields(
        cls,
        *,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: Mapping[str, object] | None,
        conn_id: str = "vexora_default",
    ) -> VexoraConfig:
        """Validate a connection's fields and extras; raise :class:`VexoraConfigError` naming the problem."""
        extra = extra or {}
        unknown = sorted(set(extra) - EXTRA_KEYS)
        if unknown:
            raise VexoraConfigError(
                f"connection {conn_id!r} has unknown extra keys {unknown}; allowed: {sorted(EXTRA_KEYS)}"
            )
        if not login or not login.strip():
            raise VexoraConfigError(f"connection {conn_id!r} has no login (the merchant number)")
        if not password:
            raise VexoraConfigError(f"connection {conn_id!r} has no password (the app secret)")
        base_url = _base_url(host, _flag(extra, "allow_insecure_http"))
        attempts = _number(extra, "max_attempts", DEFAULT_MAX_ATTEMPTS, minimum=1)
        if attempts != int(attempts):
            raise VexoraConfigError(f"extra max_attempts={extra['max_attempts']!r} must be a whole number")
        # 0, like an empty field, means no client-side limit.
        rate = _optional_number(extra, "requests_per_second", minimum=0)
        zone_name = extra.get("timezone") or timezone_for_base_url(base_url)
        return cls(
            base_url=base_url,
            merchant_no=login.strip(),
            secret=password,
            connect_timeout=_number(extra, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, minimum=0.001),
            read_timeout=_number(extra, "read_timeout", DEFAULT_READ_TIMEOUT, minimum=0.001),
            max_attempts=int(attempts),
            requests_per_second=rate or None,
            timezone=_zone(str(zone_name) if zone_name else None),
            status_map=_status_map(extra.get("status_map")),
        )

    def url(self, endpoint: str) -> str:
        """Return the full URL of an endpoint path such as ``/v1/vexora/queryPayOutResult``."""
        return self.base_url + endpoint
