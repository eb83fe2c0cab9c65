"""Provider metadata read by Airflow's ProvidersManager through the entry point."""

from __future__ import annotations

from typing import Any

__all__ = ["get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """Return the provider description: modules, and the declarative ``vexora`` connection form."""
    return {
        "package-name": "airflow-provider-vexora",
        "name": "Vexora",
        "description": "Vexora payment gateway: payout creation and status hook, sensor, trigger, operators.",
        "integrations": [
            {
                "integration-name": "Vexora",
                "external-doc-url": "https://github.com/vexora/airflow-provider-vexora/tree/main/docs",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Vexora", "python-modules": ["vexora_provider.hooks.vexora"]}],
        "sensors": [
            {"integration-name": "Vexora", "python-modules": ["vexora_provider.sensors.payout_status"]}
        ],
        "triggers": [
            {
                "integration-name": "Vexora",
                "python-modules": [
                    "vexora_provider.triggers.payout_status",
                    "vexora_provider.triggers.settlement",
                ],
            }
        ],
        "operators": [
            {
                "integration-name": "Vexora",
                "python-modules": [
                    "vexora_provider.operators.payout_status",
                    "vexora_provider.operators.create_payout",
                ],
            }
        ],
        # The callback plugin is registered through the ``airflow.plugins`` entry point only: a
        # "plugins" entry here would load it a second time where lazy provider discovery is off.
        "asset-uris": [
            {
                "schemes": ["vexora"],
                "handler": "vexora_provider.assets.sanitize_uri",
                "factory": "vexora_provider.assets.create_asset",
                "to_openlineage_converter": "vexora_provider.assets.convert_asset_to_openlineage",
            }
        ],
        "config": {
            "vexora": {
                "description": "The Vexora callback receiver on the API server.",
                "options": {
                    "callback_dedupe_days": {
                        "description": "Days a received callback is remembered, so a redelivery of it "
                        "creates no second asset event. Vexora retries a callback for 24 hours.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "7",
                        "default": "7",
                    },
                },
            }
        },
        "connection-types": [
            {
                "connection-type": "vexora",
                "hook-class-name": "vexora_provider.hooks.vexora.VexoraHook",
                "hook-name": "Vexora",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "Base URL (with region path)",
                        "login": "Merchant number",
                        "password": "App secret",
                    },
                    "placeholders": {
                        "host": "https://sandbox-api.vexora.com/nigeria",
                        "login": "3060414594",
                        "password": "app secret issued by Vexora",
                    },
                },
                "conn-fields": {
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "description": "Seconds to wait for a TCP/TLS connection, 0.001-300. Default 5.",
                        "schema": {"type": ["number", "null"], "minimum": 0.001, "maximum": 300},
                    },
                    "read_timeout": {
                        "label": "Read timeout (s)",
                        "description": "Seconds to wait for a response, 0.001-600. Default 10.",
                        "schema": {"type": ["number", "null"], "minimum": 0.001, "maximum": 600},
                    },
                    "max_attempts": {
                        "label": "Max attempts",
                        "description": "Total tries of one call, including the first, 1-10. Default 4.",
                        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 10},
                    },
                    "requests_per_second": {
                        "label": "Requests per second",
                        "description": "Client-side rate limit for this connection, 0.01-10000. "
                        "Empty or 0: unlimited.",
                        "schema": {"type": ["number", "null"], "minimum": 0, "maximum": 10000},
                    },
                    "retry_after_cap": {
                        "label": "Retry-After cap (s)",
                        "description": "Longest single wait obeyed when Vexora sends Retry-After, 0-600. "
                        "Default 30.",
                        "schema": {"type": ["number", "null"], "minimum": 0, "maximum": 600},
                    },
                    "retry_after_budget": {
                        "label": "Retry-After budget (s)",
                        "description": "Total Retry-After waiting one session obeys before falling back "
                        "to normal backoff, 0-3600. Default 120.",
                        "schema": {"type": ["number", "null"], "minimum": 0, "maximum": 3600},
                    },
                    "timezone": {
                        "label": "Region timezone",
                        "description": "IANA name of the region's local time, used for successTime. "
                        "Empty: inferred from the region path of the base URL.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "status_map": {
                        "label": "Status map",
                        "description": "JSON object of status code to state, merged over the defaults, "
                        'e.g. {"0099": "failed"}.',
                        "schema": {"type": ["object", "null"], "format": "json"},
                    },
                    "proxy": {
                        "label": "Proxy",
                        "description": "http://[user:password@]host:port of a proxy to tunnel through. "
                        "Empty: HTTPS_PROXY/HTTP_PROXY from the environment unless NO_PROXY names the host.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "ca_bundle": {
                        "label": "CA bundle",
                        "description": "Path of a PEM file of CA certificates to trust (a private CA). "
                        "Empty: SSL_CERT_FILE if set, else certifi's bundle.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "verify": {
                        "label": "Verify TLS certificates",
                        "description": "Default true. False only for tests: it logs a warning.",
                        "schema": {"type": ["boolean", "null"]},
                    },
                    "budget_storage": {
                        "label": "Budget storage",
                        "description": "redis://[:password@]host:port/db shared by every task and trigger "
                        "of this merchant: max_in_flight and requests_per_second become one budget across "
                        "them. Empty: per-task limits.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "max_in_flight": {
                        "label": "Max in flight",
                        "description": "Requests in flight for this merchant across every task and "
                        "trigger, 1-10000 (needs budget storage). Empty: no cap.",
                        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 10000},
                    },
                    "allow_insecure_http": {
                        "label": "Allow plain http",
                        "description": "Permit an http:// base URL on a non-loopback host.",
                        "schema": {"type": ["boolean", "null"]},
                    },
                },
            }
        ],
    }
