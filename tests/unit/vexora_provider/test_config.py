from __future__ import annotations

import pytest

from vexora_provider.config import (
    EXTRA_KEYS,
    REGION_TIMEZONES,
    VexoraConfig,
    timezone_for_base_url,
)
from vexora_provider.exceptions import VexoraConfigError
from vexora_provider.models import PayoutState

SECRET = "dbecac55466b4958a2d06069fcf49e18"


def _config(host: str | None = "https://sandbox-api.vexora.com/nigeria", **extra: object) -> VexoraConfig:
    return VexoraConfig.from_connection_fields(host=host, login="3060414594", password=SECRET, extra=extra)


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
        ],
    )
    def test_base_url(self, host: str, expected: str) -> None:
        assert _config(host).base_url == expected

    @pytest.mark.parametrize(
        ("host", "message"),
        [
            (None, "no host"),
            ("", "no host"),
            ("   ", "no host"),
            ("http://api.example.com/nigeria", "plain http to api.example.com is refused"),
            ("ftp://api.example.com/nigeria", "not an http"),
            ("https:///nigeria", "not an http"),
            ("https://api.example.com/nigeria?x=1", "query or fragment"),
            ("https://api.example.com/nigeria#frag", "query or fragment"),
        ],
    )
    def test_bad_host(self, host: str | None, message: str) -> None:
        with pytest.raises(VexoraConfigError, match=message):
            _config(host)

    @pytest.mark.parametrize("flag", [True, "true", "yes", "1", "on"])
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
