from __future__ import annotations

import ssl

import certifi
import pytest

from vexora_provider.config import VexoraConfig
from vexora_provider.exceptions import VexoraConfigError
from vexora_provider.hooks._network import network_for, ssl_context

SECRET = "dbecac55466b4958a2d06069fcf49e18"


def config(host: str = "https://api.vexora.example/nigeria", **extra: object) -> VexoraConfig:
    return VexoraConfig.from_connection_fields(host=host, login="3060414594", password=SECRET, extra=extra)


class TestNetworkFor:
    def test_direct_without_settings(self) -> None:
        network = network_for(config(), {})
        assert network.proxy is None
        assert network.describe() == "direct"

    @pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])
    def test_environment_proxy_for_https(self, name: str) -> None:
        network = network_for(config(), {name: "http://proxy.corp:3128"})
        assert network.proxy is not None
        assert network.proxy.url == "http://proxy.corp:3128"
        assert network.describe() == f"via proxy http://proxy.corp:3128 (from {name})"

    def test_http_base_url_reads_http_proxy_only(self) -> None:
        environ = {"HTTPS_PROXY": "http://tls-proxy:1", "HTTP_PROXY": "http://plain-proxy:2"}
        network = network_for(config("http://127.0.0.1:9/nigeria"), environ)
        assert network.proxy is not None
        assert network.proxy.url == "http://plain-proxy:2"

    def test_lower_case_wins_as_in_curl(self) -> None:
        network = network_for(config(), {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2"})
        assert network.proxy is not None
        assert network.proxy.url == "http://low:1"

    @pytest.mark.parametrize(
        "no_proxy",
        ["api.vexora.example", ".vexora.example", "vexora.example", "*", "a.b, api.vexora.example"],
    )
    def test_no_proxy_names_the_host(self, no_proxy: str) -> None:
        network = network_for(config(), {"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": no_proxy})
        assert network.proxy is None
        assert network.describe() == "direct (NO_PROXY names api.vexora.example)"

    def test_no_proxy_other_host_keeps_the_proxy(self) -> None:
        network = network_for(config(), {"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "example.org"})
        assert network.proxy is not None

    def test_proxy_extra_wins_and_hides_credentials(self) -> None:
        network = network_for(
            config(proxy="http://svc:hunter2@corp-proxy:8080"),
            {"HTTPS_PROXY": "http://other:1", "NO_PROXY": "*"},
        )
        assert network.proxy is not None
        assert (network.proxy.username, network.proxy.password) == ("svc", "hunter2")
        assert network.proxy.with_credentials == "http://svc:hunter2@corp-proxy:8080"
        described = network.describe() + repr(network)
        # Never ``assert password not in described``: a failure would print the password.
        leaked = "hunter2" in described or "svc" in described
        assert not leaked, "the proxy's credentials are in its description or repr"

    @pytest.mark.parametrize("value", ["socks5://proxy:1080", "https://proxy:443", "http://proxy:3128/path"])
    def test_unusable_environment_proxy_is_a_config_error(self, value: str) -> None:
        with pytest.raises(VexoraConfigError, match="environment variable HTTPS_PROXY"):
            network_for(config(), {"HTTPS_PROXY": value})

    def test_ca_bundle_and_environment_choose_the_same_context_for_both_paths(self) -> None:
        bundle = certifi.where()
        by_extra = network_for(config(ca_bundle=bundle), {"SSL_CERT_FILE": "/nonexistent"})
        by_env = network_for(config(), {"SSL_CERT_FILE": bundle})
        assert by_extra.ssl is by_env.ssl is ssl_context(verify=True, cafile=bundle, capath=None)

    def test_bad_ssl_cert_file_is_a_config_error(self) -> None:
        with pytest.raises(VexoraConfigError, match="SSL_CERT_FILE"):
            network_for(config(), {"SSL_CERT_FILE": "/nonexistent/ca.pem"})

    def test_verify_false_context(self) -> None:
        context = network_for(config(verify=False), {}).ssl
        assert context.verify_mode is ssl.CERT_NONE
        assert not context.check_hostname

    def test_default_trusts_certifi(self) -> None:
        context = network_for(config(), {}).ssl
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context is ssl_context(verify=True, cafile=None, capath=None)
