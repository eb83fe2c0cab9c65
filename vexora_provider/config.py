"""Hook configuration derived from a ``vexora`` Airflow connection, as pure, testable code.

Every mistake in a connection is found here, before any request, and reported as a
:class:`~vexora_provider.exceptions.VexoraConfigError` that names the field and the fix.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vexora_provider._tls import ssl_context
from vexora_provider._urls import ProxyURL, StorageURL, base_url_from_fields, parse_proxy, parse_storage
from vexora_provider.exceptions import VexoraConfigError
from vexora_provider.models import StatusMap

if TYPE_CHECKING:
    from airflow.sdk import Connection

__all__ = [
    "EXTRA_KEYS",
    "NUMBER_EXTRAS",
    "REGION_TIMEZONES",
    "NumberRule",
    "VexoraConfig",
    "parse_extra",
    "region_of",
    "timezone_for_base_url",
]

# The documented region path segments and their local time.
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


@dataclass(frozen=True, slots=True)
class NumberRule:
    """
    Default and bounds of a numeric extra.

    :param default: the value when the extra is absent or empty.
    :param minimum: the smallest value accepted.
    :param maximum: the largest value accepted.
    :param whole: whether only whole numbers are accepted.
    :param zero: what ``0`` means when it is allowed below ``minimum`` (``None``: not allowed).
    """

    default: float | None
    minimum: float
    maximum: float
    whole: bool = False
    zero: str | None = None


#: Every numeric extra with its default and bounds (the connection form shows the same).
NUMBER_EXTRAS: Mapping[str, NumberRule] = {
    "connect_timeout": NumberRule(5.0, 0.001, 300.0),
    "read_timeout": NumberRule(10.0, 0.001, 600.0),
    "max_attempts": NumberRule(4, 1, 10, whole=True),
    "requests_per_second": NumberRule(None, 0.01, 10_000.0, zero="unlimited"),
    "retry_after_cap": NumberRule(30.0, 0.0, 600.0),
    "retry_after_budget": NumberRule(120.0, 0.0, 3600.0),
    "max_in_flight": NumberRule(None, 1, 10_000, whole=True),
}

EXTRA_KEYS = frozenset(
    {
        *NUMBER_EXTRAS,
        "timezone",
        "status_map",
        "allow_insecure_http",
        "proxy",
        "ca_bundle",
        "verify",
        "budget_storage",
    }
)

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
# The merchant number goes into the ``merchantNo`` header: visible ASCII only.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


def region_of(base_url: str) -> str | None:
    """Return the base URL's last path segment, lower-cased (the region, if it is a documented one)."""
    for segment in reversed(urlsplit(base_url).path.split("/")):
        if segment:
            return segment.lower()
    return None


def timezone_for_base_url(base_url: str) -> str | None:
    """Return the IANA zone of the base URL's region path segment, if it is a documented one."""
    region = region_of(base_url)
    return REGION_TIMEZONES.get(region) if region else None


def parse_extra(raw: str | Mapping[str, object] | None, conn_id: str) -> dict[str, object]:
    """
    Return the connection's extra as a dict: empty when unset, an error when it is not an object.

    Airflow's own ``extra_dejson`` turns malformed JSON into ``{}`` with only a log line, which
    would silently drop ``status_map``, ``timezone`` and friends; this refuses it instead.
    """
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    if not isinstance(raw, str):
        raise VexoraConfigError(
            f"connection {conn_id!r}: extra must be a JSON object, got {type(raw).__name__}"
        )
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        raise VexoraConfigError(
            f"connection {conn_id!r}: extra is not valid JSON ({err.msg} at character {err.pos}); "
            'write it as a JSON object, e.g. {"read_timeout": 15}'
        ) from None
    if not isinstance(value, dict):
        raise VexoraConfigError(
            f"connection {conn_id!r}: extra must be a JSON object of settings, not a JSON "
            f'{type(value).__name__}; e.g. {{"read_timeout": 15}}'
        )
    return value


def _number(extra: Mapping[str, object], key: str) -> float | None:
    """Return the extra within its bounds, its default when absent or empty, or raise saying why."""
    rule = NUMBER_EXTRAS[key]
    value = extra.get(key)
    if value is None or value == "":
        return rule.default
    try:
        number = math.nan if isinstance(value, bool) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if rule.zero is not None and number == 0:
        return None
    kind = "a whole number" if rule.whole else "a number"
    bounds = f"from {rule.minimum:g} to {rule.maximum:g}"
    if rule.zero is not None:
        bounds += f", or 0 for {rule.zero}"
    if not (rule.minimum <= number <= rule.maximum) or (rule.whole and number != int(number)):
        raise VexoraConfigError(f"extra {key}={value!r} must be {kind} {bounds}")
    return number


def _flag(extra: Mapping[str, object], key: str, default: bool) -> bool:
    value = extra.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise VexoraConfigError(f"extra {key}={value!r} must be true or false")


def _text(extra: Mapping[str, object], key: str) -> str | None:
    value = extra.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.strip():
        raise VexoraConfigError(f"extra {key} must be a string, got {type(value).__name__}")
    return value.strip()


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
        raise VexoraConfigError(
            f"extra timezone {name!r} is not an IANA timezone name (e.g. Africa/Lagos)"
        ) from None


def _ca_bundle(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        ssl_context(verify=True, cafile=path, capath=None)  # the context the hook will use, cached
    except FileNotFoundError:
        raise VexoraConfigError(
            f"extra ca_bundle: no file at {path!r}; give the path of a PEM file"
        ) from None
    except (OSError, ssl.SSLError) as err:
        raise VexoraConfigError(
            f"extra ca_bundle: cannot read certificates from {path!r} ({type(err).__name__}); "
            "it must be a PEM file of CA certificates"
        ) from None
    return path


def _merchant_no(login: str | None, conn_id: str) -> str:
    if not login or not login.strip():
        raise VexoraConfigError(f"connection {conn_id!r} has no login (the merchant number)")
    merchant_no = login.strip()
    if not _HEADER_SAFE.fullmatch(merchant_no):
        raise VexoraConfigError(
            f"connection {conn_id!r}: the login (merchant number) may hold only visible ASCII "
            "characters, no spaces, line breaks or accented letters: it is sent as the merchantNo "
            "header; copy the merchant number exactly as Vexora issued it"
        )
    return merchant_no


@dataclass(frozen=True, slots=True)
class VexoraConfig:
    """
    Everything the hook needs to talk to one merchant account; secrets never show in repr.

    :param base_url: scheme, host and region path, without a trailing slash.
    :param merchant_no: the merchant number (connection login), sent as the ``merchantNo`` header.
    :param secret: the app secret (connection password) used to sign bodies.
    :param connect_timeout: seconds to establish a connection.
    :param read_timeout: seconds to wait for an answer.
    :param max_attempts: total tries of one call, including the first.
    :param requests_per_second: client-side rate limit, ``None`` for unlimited.
    :param timezone: the region's local time, used for ``successTime``; ``None`` when unknown.
    :param status_map: status code classification with the connection's overrides.
    :param proxy: the ``proxy`` extra (an ``http://`` proxy, maybe with credentials), ``None`` to
        follow the ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` environment.
    :param ca_bundle: path of a PEM file of CAs to trust instead of the default store.
    :param verify: whether TLS certificates are verified.
    :param retry_after_cap: the longest single ``Retry-After`` wait obeyed, in seconds.
    :param retry_after_budget: the total of ``Retry-After`` waits one session obeys, in seconds.
    :param timezone_from_extra: whether ``timezone`` came from the extra (else from the region).
    :param budget_storage: the Redis holding the gateway budget shared by every task and trigger
        using this merchant (then ``requests_per_second`` is shared too); ``None``: per-task limits.
    :param max_in_flight: requests in flight for this merchant across every task and trigger
        (needs ``budget_storage``); ``None`` for no such cap.
    """

    base_url: str
    merchant_no: str
    secret: str = field(repr=False)
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    max_attempts: int = 4
    requests_per_second: float | None = None
    timezone: ZoneInfo | None = None
    status_map: StatusMap = field(default_factory=StatusMap.with_overrides)
    proxy: ProxyURL | None = None
    ca_bundle: str | None = None
    verify: bool = True
    retry_after_cap: float = 30.0
    retry_after_budget: float = 120.0
    timezone_from_extra: bool = False
    budget_storage: StorageURL | None = None
    max_in_flight: int | None = None

    @classmethod
    def from_connection(cls, conn: Connection, conn_id: str) -> VexoraConfig:
        """Validate an Airflow connection's fields (the raw extra text: malformed JSON is an error)."""
        return cls.from_connection_fields(
            host=conn.host,
            port=conn.port,
            schema=conn.schema,
            login=conn.login,
            password=conn.password,
            extra=conn.extra,
            conn_id=conn_id,
        )

    @classmethod
    def from_connection_fields(
        cls,
        *,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: str | Mapping[str, object] | None,
        conn_id: str = "vexora_default",
        port: int | None = None,
        schema: str | None = None,
    ) -> VexoraConfig:
        """Validate a connection's fields and extras; raise :class:`VexoraConfigError` naming the problem.

        :param extra: the extra as Airflow stores it (JSON text) or an already decoded mapping.
        """
        extras = parse_extra(extra, conn_id)
        unknown = sorted(set(extras) - EXTRA_KEYS)
        if unknown:
            close = {k: difflib.get_close_matches(k, EXTRA_KEYS, n=1) for k in unknown}
            hints = "".join(f"; did you mean {m[0]!r} for {k!r}?" for k, m in close.items() if m)
            raise VexoraConfigError(
                f"connection {conn_id!r} has unknown extra keys {unknown}; allowed: "
                f"{sorted(EXTRA_KEYS)}{hints}"
            )
        merchant_no = _merchant_no(login, conn_id)
        if not password or not password.strip():
            raise VexoraConfigError(f"connection {conn_id!r} has no password (the app secret)")
        base_url = base_url_from_fields(host, port, schema, _flag(extras, "allow_insecure_http", False))
        zone_name = _text(extras, "timezone")
        verify = _flag(extras, "verify", True)
        ca_bundle = _ca_bundle(_text(extras, "ca_bundle"))
        if ca_bundle and not verify:
            raise VexoraConfigError(
                "extras ca_bundle and verify=false contradict each other: keep ca_bundle and "
                "remove verify to trust your CA"
            )
        proxy = _text(extras, "proxy")
        storage = _text(extras, "budget_storage")
        max_in_flight = _number(extras, "max_in_flight")
        if max_in_flight is not None and storage is None:
            raise VexoraConfigError(
                "extra max_in_flight needs budget_storage: the cap is shared by every task and "
                "trigger through that storage, e.g. redis://redis.internal:6379/0"
            )
        return cls(
            base_url=base_url,
            merchant_no=merchant_no,
            secret=password,
            connect_timeout=_number(extras, "connect_timeout") or 0.0,
            read_timeout=_number(extras, "read_timeout") or 0.0,
            max_attempts=int(_number(extras, "max_attempts") or 1),
            requests_per_second=_number(extras, "requests_per_second"),
            timezone=_zone(zone_name or timezone_for_base_url(base_url)),
            status_map=_status_map(extras.get("status_map")),
            proxy=parse_proxy(proxy, source="extra proxy") if proxy else None,
            ca_bundle=ca_bundle,
            verify=verify,
            retry_after_cap=_number(extras, "retry_after_cap") or 0.0,
            retry_after_budget=_number(extras, "retry_after_budget") or 0.0,
            timezone_from_extra=zone_name is not None,
            budget_storage=parse_storage(storage) if storage else None,
            max_in_flight=None if max_in_flight is None else int(max_in_flight),
        )

    def url(self, endpoint: str) -> str:
        """Return the full URL of an endpoint path such as ``/v1/vexora/queryPayOutResult``."""
        return self.base_url + endpoint

    @property
    def region(self) -> str | None:
        """The documented region segment of the base URL, ``None`` when it has none."""
        region = region_of(self.base_url)
        return region if region in REGION_TIMEZONES else None

    def region_report(self) -> str:
        """One sentence: which region and timezone ``successTime`` is read in."""
        where = f"region {self.region}" if self.region else "no documented region in the base URL"
        if self.timezone is None:
            return f"{where}; successTime cannot be read (no timezone)"
        source = "the timezone extra" if self.timezone_from_extra else "the region"
        return f"{where}; successTime read as {self.timezone.key} local time (from {source})"

    def region_warning(self) -> str | None:
        """What to do when ``successTime`` cannot be read, or ``None`` when it can."""
        if self.timezone is not None:
            return None
        segment = region_of(self.base_url)
        close = difflib.get_close_matches(segment, REGION_TIMEZONES, n=1) if segment else []
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        found = (
            f"its last path segment {segment!r} is not a documented region{guess}"
            if segment
            else ("it has no region path segment")
        )
        return (
            f"the base URL {self.base_url} names no region Vexora documents: {found}. Every "
            "success_time will be empty. Put the region path in the host (e.g. .../nigeria), or "
            "set the connection extra timezone to the region's IANA zone (e.g. Africa/Lagos)"
        )
