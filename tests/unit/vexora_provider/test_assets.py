"""vexora:// assets: the URI rule Airflow applies, the OpenLineage dataset, and the settlement vocabulary."""

from __future__ import annotations

import json
from collections import namedtuple
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from airflow.sdk import Asset, AssetWatcher

from vexora_provider import assets
from vexora_provider.assets import (
    SETTLEMENT_FIELDS,
    callback_marker_key,
    create_asset,
    event_key,
    is_announced,
    merchant_of,
    payouts_asset,
    payouts_uri,
    poll_memory,
    poll_memory_value,
    settlement_extra,
    settlements_for_run,
    settlements_from_events,
)
from vexora_provider.get_provider_info import get_provider_info
from vexora_provider.models import PayoutStatus, StatusMap, parse_payout_status
from vexora_provider.triggers.settlement import PayoutSettledTrigger

MERCHANT = "3060414594"
LAGOS = ZoneInfo("Africa/Lagos")


def status(code: str, *, trade_no: str = "T1", **data: Any) -> PayoutStatus:
    body = {"tradeNo": trade_no, "platFormTradeNo": "VX9", "status": code, **data}
    return parse_payout_status(
        json.loads(json.dumps(body), parse_float=Decimal), trade_no=trade_no, status_map=StatusMap(), tz=LAGOS
    )


class TestPayoutsAsset:
    def test_uri_and_default_name(self) -> None:
        asset = payouts_asset(MERCHANT)
        assert asset.uri == f"vexora://{MERCHANT}/payouts"
        assert asset.name == f"vexora_payouts_{MERCHANT}"

    def test_asset_arguments_pass_through(self) -> None:
        watcher = AssetWatcher(name="w", trigger=PayoutSettledTrigger(sql_conn_id="wh"))
        asset = payouts_asset(MERCHANT, name="ledger_feed", group="finance", watchers=[watcher])
        assert (asset.name, asset.group, asset.watchers) == ("ledger_feed", "finance", [watcher])

    @pytest.mark.parametrize("merchant", ["", "a/b", "m 1", "m@x", "m:1", "x" * 65, None])
    def test_bad_merchant_refused(self, merchant: Any) -> None:
        with pytest.raises(ValueError, match="merchant number"):
            payouts_asset(merchant)

    def test_factory_matches(self) -> None:
        assert create_asset(merchant_no=MERCHANT) == payouts_asset(MERCHANT)
        assert create_asset(merchant_no=MERCHANT, extra={"k": "v"}).extra == {"k": "v"}


class TestSanitizeUri:
    """Airflow runs the provider's handler for every vexora:// URI (registered in asset-uris)."""

    @pytest.mark.parametrize(
        ("uri", "message"),
        [
            ("vexora:///payouts", "must name a merchant"),
            ("vexora://m1", "must be vexora://m1/payouts"),
            ("vexora://m1/collections", "got path '/collections'"),
            ("vexora://m1/payouts/x", "got path '/payouts/x'"),
            ("vexora://m1/payouts?region=ng", "and query"),
            ("vexora://m1:80/payouts", "user info or a port"),
            ("vexora://ops@m1/payouts", "user info or a port"),
            ("vexora://m%201/payouts", "merchant number"),
        ],
    )
    def test_refuses_anything_but_the_payouts_uri(self, uri: str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            Asset(uri=uri)

    def test_normalises_like_airflow(self) -> None:
        assert Asset(uri="VEXORA://m1/payouts/#frag").uri == "vexora://m1/payouts"

    def test_registered_in_provider_info(self) -> None:
        [entry] = get_provider_info()["asset-uris"]
        assert entry["schemes"] == ["vexora"]
        assert entry["handler"] == "vexora_provider.assets.sanitize_uri"
        assert entry["factory"] == "vexora_provider.assets.create_asset"
        assert entry["to_openlineage_converter"] == "vexora_provider.assets.convert_asset_to_openlineage"

    @pytest.mark.parametrize(
        ("uri", "merchant"),
        [
            (f"vexora://{MERCHANT}/payouts", MERCHANT),
            ("vexora://m1/other", None),
            ("s3://b/payouts", None),
            ("vexora://a/b/payouts", None),
        ],
    )
    def test_merchant_of(self, uri: str, merchant: str | None) -> None:
        assert merchant_of(uri) == merchant


class TestOpenLineage:
    def test_dataset_is_merchant_namespace_and_payouts(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from airflow.providers.common.compat.openlineage import facet

        dataset = namedtuple("dataset", "namespace name")
        monkeypatch.setattr(facet, "Dataset", dataset)
        converted = assets.convert_asset_to_openlineage(payouts_asset(MERCHANT), None)
        assert converted == dataset(namespace=f"vexora://{MERCHANT}", name="payouts")


class TestSettlement:
    @pytest.mark.parametrize(
        ("code", "announced", "key"),
        [
            ("0000", True, "success"),
            ("0001", True, "partial"),
            ("00029", True, "failed"),
            ("0015", False, "pending"),
            ("0099", True, "unknown-0099"),
        ],
    )
    def test_what_is_announced_and_its_key(self, code: str, announced: bool, key: str) -> None:
        result = status(code)
        assert is_announced(result) is announced
        assert event_key(result) == key
        assert callback_marker_key(result) == f"vexora.callback.{key}.T1"

    def test_extra_is_exact_plain_json(self) -> None:
        extra = settlement_extra(
            status("0000", amount="300.10", successTime="2026-01-02 10:00:00"), source="callback"
        )
        assert extra == {
            "trade_no": "T1",
            "platform_trade_no": "VX9",
            "status_code": "0000",
            "state": "success",
            "amount": "300.10",
            "success_time": "2026-01-02T10:00:00+01:00",
            "source": "callback",
        }
        assert tuple(extra) == SETTLEMENT_FIELDS

    def test_amount_sent_as_a_json_number_keeps_its_digits(self) -> None:
        data = json.loads('{"tradeNo": "T1", "status": "0000", "amount": 3.0000}', parse_float=Decimal)
        paid = parse_payout_status(data, trade_no="T1", status_map=StatusMap(), tz=None)
        assert settlement_extra(paid, source="poll")["amount"] == "3.0000"

    def test_paid_amount_of_order_pay_regions(self) -> None:
        extra = settlement_extra(status("0001", orderAmount="90.00", payAmount="45.5"), source="poll")
        assert (extra["amount"], extra["success_time"]) == ("45.5", None)

    def test_poll_memory_round_trip(self) -> None:
        assert poll_memory(poll_memory_value({"T1": "success"})) == {"T1": "success"}
        assert poll_memory(None) == poll_memory({"trades": 3}) == {}


class TestSettlementsFromEvents:
    def test_reads_every_source_and_dedupes(self, caplog: pytest.LogCaptureFixture) -> None:
        callback = settlement_extra(status("0000", amount="1.00"), source="callback")
        poll = {
            "from_trigger": True,
            "payload": settlement_extra(status("0000", amount="1.00"), source="poll"),
        }
        unknown = settlement_extra(status("0099", trade_no="T3"), source="poll")
        sync = {
            "source": "sync",
            "settled": [{"trade_no": "T2", "state": "failed"}, {"trade_no": "T1", "state": "success"}],
            "counts": {"failed": 1, "success": 2},
            "truncated": True,
        }
        event = namedtuple("event", "extra")
        found = settlements_from_events([event(callback), event(poll), event(sync), unknown, event(None)])
        assert [(s["trade_no"], s["state"], s["source"]) for s in found] == [
            ("T1", "success", "callback"),
            ("T2", "failed", "sync"),
            ("T3", "unknown", "poll"),
        ]
        assert found[1]["amount"] is None
        assert "read the rest from its table" in caplog.text
        assert "without an extra dict" in caplog.text

    def test_foreign_events_are_skipped_loudly(self, caplog: pytest.LogCaptureFixture) -> None:
        assert settlements_from_events([{"from_rest_api": True, "note": "manual"}]) == []
        assert "not a Vexora settlement" in caplog.text

    def test_uri(self) -> None:
        assert payouts_uri("m-1_2") == "vexora://m-1_2/payouts"


class InletEvents:
    """``inlet_events[asset]``: the asset's events, filtered with ``after`` like the real accessor."""

    def __init__(self, events: list[tuple[datetime, dict[str, Any]]]) -> None:
        self.events = events
        self.asked_after: list[str] = []

    def __getitem__(self, asset: Asset) -> InletEvents:
        if asset != payouts_asset(MERCHANT):
            raise KeyError(asset)
        return self

    def after(self, after: str) -> list[Any]:
        self.asked_after.append(after)
        event = namedtuple("event", "extra")
        return [event(extra) for at, extra in self.events if at >= datetime.fromisoformat(after)]


class TestSettlementsForRun:
    def test_triggering_events_and_those_after_the_trigger(self) -> None:
        asset = payouts_asset(MERCHANT)
        run_after = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
        first = settlement_extra(status("0000", trade_no="T1"), source="callback")
        late = settlement_extra(status("00029", trade_no="T2"), source="callback")
        inlets = InletEvents([(run_after, first), (run_after + timedelta(milliseconds=80), late)])
        context = {
            "triggering_asset_events": {asset: [namedtuple("event", "extra")(first)]},
            "inlet_events": inlets,
            "dag_run": namedtuple("run", "run_after")(run_after),
        }
        found = settlements_for_run(context, asset)
        assert [(s["trade_no"], s["state"]) for s in found] == [("T1", "success"), ("T2", "failed")]
        assert inlets.asked_after == ["2026-01-02T10:00:00+00:00"]

    def test_without_the_asset_in_inlets_only_the_triggering_events(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        asset = payouts_asset(MERCHANT)
        first = settlement_extra(status("0000"), source="poll")
        context = {
            "triggering_asset_events": {asset: [{"from_trigger": True, "payload": first}]},
            "inlet_events": InletEvents([]),
            "dag_run": namedtuple("run", "run_after")(datetime(2026, 1, 2, tzinfo=UTC)),
        }
        assert [s["trade_no"] for s in settlements_for_run(context, payouts_asset("other"))] == []
        assert "is not in the task's inlets" in caplog.text
        assert [s["trade_no"] for s in settlements_for_run(context, asset)] == ["T1"]

    def test_a_run_not_triggered_by_the_asset(self) -> None:
        assert settlements_for_run({}, payouts_asset(MERCHANT)) == []
