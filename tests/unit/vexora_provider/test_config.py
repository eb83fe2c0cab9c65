from __future__ import annotations

import pytest

from vexora_provider.config import (
    EXTRA_KEYS,
    NUMBER_EXTRAS,
    REGION_TIMEZONES,
    VexoraConfig,
    parse_extra,
    timezone_for_base_url,
)
from vexora_provider.exceptions import VexoraConfigError
from vexora_provider.models import PayoutState

SECRET = "dbecac55466b4958a2d06069fcf49e18"

# Every way a connection can be wrong: (connection fields, what the error must name). Shared with
# the hook tests, which check that none of them sends a request on either path.
BAD_CONNECTIONS: dict[str, tuple[dict[str, object], str]] = {
    "login-not-latin-1": ({"login": "商户3060414594"}, "login"),
    "login-crlf": ({"login": "3060414594\r\nX-Evil: 1"}, "login"),
    "login-inner-space": ({"login": "3060 414594"}, "login"),
    "login-missing": ({"login": None}, "no login"),
    "secret-empty": ({"password": ""}, "password"),
    "secret-whitespace": ({"password": "   "}, "password"),
    "host-blank": ({"host": "   "}, "no host"),
    "host-bare-scheme": ({"host": "https://"}, "host"),
    "host-scheme-no-slashes": ({"host": "https:"}, "host"),
    "host-javascript": ({"host": "javascript:alert(1)"}, "host"),
    "host-port-not-a-number": ({"host": "https://api.example.com:abc/nigeria"}, "port"),
    "host-port-out-of-range": ({"host": "https://api.example.com:70000/nigeria"}, "port"),
    "host-port-zero": ({"host": "https://api.example.com:0/nigeria"}, "port"),
    "port-field-out-of-range": ({"host": "https://api.example.com/nigeria", "port": 70000}, "port"),
    "host-userinfo": ({"host": "https://user:hunter2@api.example.com/nigeria"}, "credentials"),
    "host-space": ({"host": "https://api.exa mple.com/nigeria"}, "host"),
    "host-plain-http": ({"host": "http://api.example.com/nigeria"}, "allow_insecure_http"),
    "extra-number": ({"extra": "123"}, "extra must be a JSON object"),
    "extra-list": ({"extra": "[1, 2]"}, "extra must be a JSON object"),
    "extra-string": ({"extra": '"read_timeout"'}, "extra must be a JSON object"),
    "extra-malformed": ({"extra": '{"timezone": "UTC",}'}, "extra is not valid JSON"),
    "extra-unknown-key": ({"extra": {"read_timout": 5}}, "did you mean 'read_timeout'"),
    "allow-insecure-list": ({"extra": {"allow_insecure_http": [0]}}, "allow_insecure_http"),
    "allow-insecure-word": ({"extra": {"allow_insecure_http": "maybe"}}, "allow_insecure_http"),
    "max-attempts-huge": ({"extra": {"max_attempts": 1e300}}, "max_attempts"),
    "max-attempts-over": ({"extra": {"max_attempts": 11}}, "max_attempts"),
    "rate-tiny": ({"extra": {"requests_per_second": 1e-9}}, "requests_per_second"),
    "rate-huge": ({"extra": {"requests_per_second": 1e9}}, "requests_per_second"),
    "connect-timeout-huge": ({"extra": {"connect_timeout": 1e9}}, "connect_timeout"),
    "read-timeout-zero": ({"extra": {"read_timeout": 0}}, "read_timeout"),
    "retry-after-cap-negative": ({"extra": {"retry_after_cap": -1}}, "retry_after_cap"),
    "retry-after-budget-huge": ({"extra": {"retry_after_budget": 1e9}}, "retry_after_budget"),
    "timezone-not-text": ({"extra": {"timezone": 5}}, "timezone"),
    "timezone-unknown": ({"extra": {"timezone": "Mars/Olympus"}}, "timezone"),
    "status-map-list": ({"extra": {"status_map": [1]}}, "status_map"),
    "proxy-socks": ({"extra": {"proxy": "socks5://proxy.corp:1080"}}, "proxy"),
    "proxy-path": ({"extra": {"proxy": "http://proxy.corp:3128/x"}}, "proxy"),
    "proxy-bad-port": ({"extra": {"proxy": "http://proxy.corp:abc"}}, "proxy"),
    "ca-bundle-missing": ({"extra": {"ca_bundle": "/nonexistent/ca.pem"}}, "ca_bundle"),
    "ca-bundle-not-pem": ({"extra": {"ca_bundle": __file__}}, "ca_bundle"),
    "verify-word": ({"extra": {"verify": "sometimes"}}, "verify"),
    "verify-false-with-ca": ({"extra": {"verify": False, "ca_bundle": __file__}}, "ca_bundle"),
    "budget-storage-http": ({"extra": {"budget_storage": "http://redis.internal:6379"}}, "budget_storage"),
    "budget-storage-no-scheme": ({"extra": {"budget_storage": "redis.internal:6379"}}, "budget_storage"),
    "budget-storage-db-word": (
        {"extra": {"budget_storage": "redis://redis.internal/zero"}},
        "budget_storage",
    ),
    "budget-storage-bad-port": (
        {"extra": {"budget_storage": "redis://:hunter2@redis.internal:abc/0"}},
        "budget_storage",
    ),
    "budget-storage-space": ({"extra": {"budget_storage": "redis://redis internal"}}, "budget_storage"),
    "budget-storage-unix-no-path": ({"extra": {"budget_storage": "unix://"}}, "budget_storage"),
    "budget-storage-number": ({"extra": {"budget_storage": 6379}}, "budget_storage"),
    "max-in-flight-alone": ({"extra": {"max_in_flight": 8}}, "needs budget_storage"),
    "max-in-flight-zero": (
        {"extra": {"max_in_flight": 0, "budget_storage": "redis://r:6379/0"}},
        "max_in_flight",
    ),
    "max-in-flight-fraction": (
        {"extra": {"max_in_flight": 2.5, "budget_storage": "redis://r:6379/0"}},
        "max_in_flight",
    ),
}


def config_from(fields: dict[str, object]) -> VexoraConfig:
    """Build a config from connection fields: the defaults overridden by ``fields``."""
    values: dict[str, object] = {
        "host": "https://sandbox-api.vexora.com/nigeria",
        "login": "3060414594",
        "password": SECRET,
        "extra": None,
        "conn_id": "vexora_x",
    }
    values.update(fields)
    return VexoraConfig.from_connection_fields(**values)  # type: ignore[arg-type]


def _config(host: str | None = "https://sandbox-api.vexora.com/nigeria", **extra: object) -> VexoraConfig:
    return VexoraConfig.from_connection_fields(host=host, login="3060414594", password=SECRET, extra=extra)


class TestBadConnections:
    @pytest.mark.parametrize("case", list(BAD_CONNECTIONS))
    def test_refused_naming_the_field(self, case: str) -> None:
        fields, named = BAD_CONNECTIONS[case]
        with pytest.raises(VexoraConfigError) as raised:
            config_from(fields)
        message = str(raised.value)
        assert named in message
        leaked = SECRET in message or "hunter2" in message
        assert not leaked, "a secret is in the error message"  # never print it

    def test_userinfo_is_never_echoed(self) -> None:
        with pytest.raises(VexoraConfigError) as raised:
            config_from({"host": "https://merchant:hunter2@api.example.com/nigeria"})
        assert "api.example.com" not in str(raised.value)
        assert "login" in str(raised.value)
        assert "password" in str(raised.value)


class TestParseExtra:
    @pytest.mark.parametrize(("raw", "expected"), [(None, {}), ("", {}), ("  ", {}), ('{"a": 1}', {"a": 1})])
    def test_accepts(self, raw: str | None, expected: dict[str, object]) -> None:
        assert parse_extra(raw, "c") == expected

    def test_mapping_is_copied(self) -> None:
        given = {"read_timeout": 3}
        parsed = parse_extra(given, "c")
        assert parsed == given
        assert parsed is not given


class TestRegionReport:
    def test_documented_region(self) -> None:
        config = _config()
        assert config.region == "nigeria"
        assert config.region_report() == (
            "region nigeria; successTime read as Africa/Lagos local time (from the region)"
        )
        assert config.region_warning() is None

    def test_timezone_extra_without_region(self) -> None:
        config = _config("http://127.0.0.1:37399", timezone="Asia/Jakarta")
        assert config.region is None
        assert "from the timezone extra" in config.region_report()
        assert config.region_warning() is None

    @pytest.mark.parametrize(
        ("host", "hint"),
        [
            ("http://127.0.0.1:37399", "it has no region path segment"),
            ("https://sandbox-api.vexora.com/nigera", "did you mean 'nigeria'?"),
            ("https://api.example.com/v1", "'v1' is not a documented region"),
        ],
    )
    def test_missing_region_warns_naming_the_extra(self, host: str, hint: str) -> None:
        config = _config(host)
        warning = config.region_warning()
        assert warning is not None
        assert hint in warning
        assert "success_time will be empty" in warning
        assert "extra timezone" in warning


class TestVexoraConfig:
    def test_only_host_login_password(self) -> None:
        config = _config()
        assert config.base_url == "https://sandbox-api.vexora.com/nigeria"
        assert config.merchant_no == "3060414594"
        assert (config.connect_timeout, config.read_timeout, config.max_attempts) == (5.0, 10.0, 4)
        assert config.requests_per_second is None
        assert config.timezone is not None
        assert config.timezone.key == "Africa/Lagos"
        assert (
            config.url("/v1/vexora/queryBalance")
            == "https://sandbox-api.vexora.com/nigeria/v1/vexora/queryBalance"
        )

    def test_repr_hides_secret(self) -> None:
        leaked = SECRET in repr(_config()) or SECRET in str(_config())
        assert not leaked, "repr/str of VexoraConfig shows the secret"  # never print it

    @pytest.mark.parametrize(
        ("host", "expected"),
        [
            ("sandbox-api.vexora.com/nigeria", "https://sandbox-api.vexora.com/nigeria"),
            ("https://sandbox-api.vexora.com/nigeria/", "https://sandbox-api.vexora.com/nigeria"),
            ("  https://x.example/korea  ", "https://x.example/korea"),
            ("http://127.0.0.1:8080/nigeria", "http://127.0.0.1:8080/nigeria"),
            ("http://localhost:9/korea", "http://localhost:9/korea"),
            ("http://[::1]:9/korea", "http://[::1]:9/korea"),
            ("localhost:8080/korea", "https://localhost:8080/korea"),
            ("https://bücher.example/korea", "https://bücher.example/korea"),
        ],
    )
    def test_base_url(self, host: str, expected: str) -> None:
        assert _config(host).base_url == expected

    def test_uri_port_and_schema_fold_in(self) -> None:
        config = config_from({"host": "http://127.0.0.1", "port": 8080, "schema": "korea"})
        assert config.base_url == "http://127.0.0.1:8080/korea"

    @pytest.mark.parametrize(
        ("host", "message"),
        [
            (None, "no host"),
            ("", "no host"),
            ("   ", "no host"),
            ("http://api.example.com/nigeria", "plain http to api.example.com is refused"),
            ("ftp://api.example.com/nigeria", "not an http"),
            ("https:///nigeria", "not an http"),
            ("https://api.example.com/nigeria?x=1", r"must not carry a query \(\?…\) or fragment"),
            ("https://api.example.com/nigeria#frag", r"must not carry a query \(\?…\) or fragment"),
        ],
    )
    def test_bad_host(self, host: str | None, message: str) -> None:
        with pytest.raises(VexoraConfigError, match=message):
            _config(host)

    @pytest.mark.parametrize("flag", [True, "true", "yes", "1", "on", "TRUE"])
    def test_allow_insecure_http(self, flag: object) -> None:
        assert _config("http://api.example.com/nigeria", allow_insecure_http=flag).base_url.startswith(
            "http://"
        )

    @pytest.mark.parametrize(
        ("login", "password"), [(None, SECRET), ("  ", SECRET), ("123", None), ("123", "")]
    )
    def test_missing_credentials(self, login: str | None, password: str | None) -> None:
        with pytest.raises(VexoraConfigError, match="connection 'vexora_x' has no") as exc:
            VexoraConfig.from_connection_fields(
                host="https://x.example/nigeria",
                login=login,
                password=password,
                extra=None,
                conn_id="vexora_x",
            )
        leaked = SECRET in str(exc.value)
        assert not leaked, "the error message shows the secret"  # never print it

    def test_unknown_extra(self) -> None:
        with pytest.raises(VexoraConfigError, match=r"unknown extra keys \['api_key'\]"):
            _config(api_key="x")

    def test_extras_parsed(self) -> None:
        config = _config(
            connect_timeout="2.5", read_timeout=30, max_attempts="6", requests_per_second=12.5, timezone="UTC"
        )
        assert (config.connect_timeout, config.read_timeout, config.max_attempts) == (2.5, 30.0, 6)
        assert config.requests_per_second == 12.5
        assert config.timezone is not None
        assert config.timezone.key == "UTC"

    def test_empty_extras_mean_defaults(self) -> None:
        config = _config(connect_timeout="", read_timeout=None, max_attempts="", requests_per_second=0)
        assert (config.connect_timeout, config.read_timeout, config.max_attempts) == (5.0, 10.0, 4)
        assert config.requests_per_second is None

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("connect_timeout", 0),
            ("read_timeout", -1),
            ("read_timeout", "abc"),
            ("read_timeout", "nan"),
            ("read_timeout", True),
            ("max_attempts", 0),
            ("max_attempts", 2.5),
            ("requests_per_second", -3),
            ("requests_per_second", "inf"),
        ],
    )
    def test_bad_numbers(self, key: str, value: object) -> None:
        with pytest.raises(VexoraConfigError, match=key):
            VexoraConfig.from_connection_fields(
                host="https://x.example/nigeria", login="3060414594", password=SECRET, extra={key: value}
            )

    @pytest.mark.parametrize(("region", "zone"), sorted(REGION_TIMEZONES.items()))
    def test_region_timezones(self, region: str, zone: str) -> None:
        config = _config(f"https://sandbox-api.vexora.com/{region.upper()}")
        assert config.timezone is not None
        assert config.timezone.key == zone

    def test_unknown_region_has_no_zone(self) -> None:
        assert _config("https://api.example.com/atlantis").timezone is None
        assert timezone_for_base_url("https://api.example.com") is None
        assert timezone_for_base_url("https://api.example.com/v2/korea/") == "Asia/Seoul"

    def test_timezone_extra_overrides_region(self) -> None:
        config = _config(timezone="Asia/Tokyo")
        assert config.timezone is not None
        assert config.timezone.key == "Asia/Tokyo"

    def test_bad_timezone(self) -> None:
        with pytest.raises(VexoraConfigError, match="not an IANA timezone"):
            _config(timezone="Mars/Olympus")

    @pytest.mark.parametrize("status_map", [{"0099": "failed"}, '{"0099": "failed"}'])
    def test_status_map(self, status_map: object) -> None:
        config = _config(status_map=status_map)
        assert config.status_map.classify("0099") is PayoutState.FAILED
        assert config.status_map.classify("0000") is PayoutState.SUCCESS

    @pytest.mark.parametrize(
        ("status_map", "message"),
        [("{not json", "not valid JSON"), ("[1]", "JSON object"), ({"0099": "nope"}, "must be one of")],
    )
    def test_bad_status_map(self, status_map: object, message: str) -> None:
        with pytest.raises(VexoraConfigError, match=message):
            _config(status_map=status_map)

    def test_extra_keys_match_the_connection_form(self) -> None:
        from vexora_provider.get_provider_info import get_provider_info

        (conn_type,) = get_provider_info()["connection-types"]
        assert set(conn_type["conn-fields"]) == set(EXTRA_KEYS)

    @pytest.mark.parametrize("key", sorted(NUMBER_EXTRAS))
    def test_number_bounds_match_the_connection_form(self, key: str) -> None:
        from vexora_provider.get_provider_info import get_provider_info

        (conn_type,) = get_provider_info()["connection-types"]
        schema = conn_type["conn-fields"][key]["schema"]
        rule = NUMBER_EXTRAS[key]
        assert schema["maximum"] == rule.maximum
        assert schema["minimum"] == (0 if rule.zero else rule.minimum)

    @pytest.mark.parametrize("key", sorted(NUMBER_EXTRAS))
    def test_number_bounds_are_inclusive(self, key: str) -> None:
        rule = NUMBER_EXTRAS[key]
        needs = {"budget_storage": "redis://127.0.0.1:6379/0"} if key == "max_in_flight" else {}
        assert getattr(_config(**{key: rule.maximum}, **needs), key) == rule.maximum
        assert getattr(_config(**{key: rule.minimum}, **needs), key) == rule.minimum

    def test_network_extras(self) -> None:
        config = _config(proxy="http://user:p%40ss@proxy.corp:3128", ca_bundle=__import__("certifi").where())
        assert config.proxy is not None
        assert (config.proxy.url, config.proxy.username, config.proxy.password) == (
            "http://proxy.corp:3128",
            "user",
            "p@ss",
        )
        leaked = "p@ss" in repr(config)  # never ``assert password not in``: a failure would print it
        assert not leaked, "the proxy password is in the config's repr"
        assert config.verify is True
        assert _config(verify="false").verify is False

    def test_retry_after_defaults(self) -> None:
        config = _config()
        assert (config.retry_after_cap, config.retry_after_budget) == (30.0, 120.0)


class TestBudgetExtras:
    def test_off_by_default(self) -> None:
        config = _config()
        assert (config.budget_storage, config.max_in_flight) == (None, None)

    @pytest.mark.parametrize(
        ("given", "shown", "password"),
        [
            ("redis://redis.internal", "redis://redis.internal:6379/0", None),
            ("redis://127.0.0.1:6380/3", "redis://127.0.0.1:6380/3", None),
            ("rediss://:hunter2@redis.internal:6380/2", "rediss://redis.internal:6380/2", "hunter2"),
            ("redis://svc:p%40ss@[::1]:6379/0", "redis://[::1]:6379/0", "p@ss"),
            ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock", None),
            ("unix:///run/redis.sock?db=1&password=hunter3", "unix:///run/redis.sock", "hunter3"),
            ("redis://redis.internal/0?password=p%40ss", "redis://redis.internal:6379/0", "p@ss"),
        ],
    )
    def test_storage_urls(self, given: str, shown: str, password: str | None) -> None:
        config = _config(budget_storage=given, max_in_flight="16")
        assert config.budget_storage is not None
        assert (config.budget_storage.url, config.budget_storage.shown) == (given, shown)
        assert config.budget_storage.password == password
        assert config.max_in_flight == 16
        if password:
            leaked = password in repr(config)  # never ``assert password not in``: it would print it
            assert not leaked, "the storage password is in the config's repr"

    def test_storage_alone_shares_the_rate(self) -> None:
        config = _config(budget_storage="redis://r:6379/0", requests_per_second=20)
        assert (config.max_in_flight, config.requests_per_second) == (None, 20.0)
