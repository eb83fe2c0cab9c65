"""The payouts dataset, and the sensor's and create operator's lineage."""

from __future__ import annotations

from typing import Any

import pytest
from openlineage.client.serde import Serde

from tests.unit.vexora_provider.operators._fakes import MERCHANT, FakeConfig
from vexora_provider.assets import convert_asset_to_openlineage, payouts_asset
from vexora_provider.lineage.datasets import VEXORA_FIELDS, payouts_dataset, payouts_lineage
from vexora_provider.operators.create_payout import CreatePayoutOperator
from vexora_provider.sensors.payout_status import PayoutStatusSensor


class FakeHook:
    config = FakeConfig()


def as_json(value: Any) -> Any:
    import json

    return json.loads(Serde.to_json(value))


class TestPayoutsDataset:
    def test_named_as_the_asset_converts(self) -> None:
        dataset = payouts_dataset(MERCHANT)
        converted = convert_asset_to_openlineage(payouts_asset(MERCHANT), None)
        assert (dataset.namespace, dataset.name) == (converted.namespace, converted.name)
        assert (dataset.namespace, dataset.name) == (f"vexora://{MERCHANT}", "payouts")

    def test_schema_lists_the_vexora_fields(self) -> None:
        facets = as_json(payouts_dataset(MERCHANT))["facets"]
        assert [f["name"] for f in facets["schema"]["fields"]] == list(VEXORA_FIELDS)
        assert MERCHANT in facets["documentation"]["description"]

    @pytest.mark.parametrize(("row_count", "statistics"), [(None, {}), (1, {"rowCount": 1})])
    def test_as_an_output(self, row_count: int | None, statistics: dict[str, int]) -> None:
        found = as_json(payouts_dataset(MERCHANT, output=True, row_count=row_count))["outputFacets"]
        assert {k: v for k, v in found.get("outputStatistics", {}).items() if not k.startswith("_")} == (
            statistics
        )


class TestPayoutsLineage:
    def test_reading(self) -> None:
        lineage = payouts_lineage(MERCHANT)
        assert ([d.name for d in lineage.inputs], lineage.outputs) == (["payouts"], [])

    def test_creating(self) -> None:
        lineage = payouts_lineage(MERCHANT, output=True, created=0)
        assert (lineage.inputs, [d.name for d in lineage.outputs]) == ([], ["payouts"])
        assert lineage.outputs[0].outputFacets["outputStatistics"].rowCount == 0


class TestTaskLineageMethods:
    def test_sensor_reads_the_payouts_on_start_and_complete(self) -> None:
        sensor = PayoutStatusSensor(task_id="w", trade_nos=["T1"], deferrable=True)
        sensor.hook = FakeHook()  # type: ignore[assignment]
        for lineage in (
            sensor.get_openlineage_facets_on_start(),
            sensor.get_openlineage_facets_on_complete(None),
        ):
            assert lineage is not None
            assert [(d.namespace, d.name) for d in lineage.inputs] == [(f"vexora://{MERCHANT}", "payouts")]

    @pytest.mark.parametrize(("created", "row_count"), [(None, None), (True, 1), (False, 0)])
    def test_create_operator_writes_the_payouts(self, created: bool | None, row_count: int | None) -> None:
        op = CreatePayoutOperator(task_id="c", amount="1.00")
        op.hook = FakeHook()  # type: ignore[assignment]
        op._created = created
        lineage = op.get_openlineage_facets_on_complete(None)
        assert lineage is not None
        (output,) = lineage.outputs
        statistics = output.outputFacets.get("outputStatistics")
        assert (None if statistics is None else statistics.rowCount) == row_count

    @pytest.mark.usefixtures("without_openlineage")
    def test_without_openlineage_every_method_returns_none(self) -> None:
        sensor = PayoutStatusSensor(task_id="w", trade_nos="T1")
        op = CreatePayoutOperator(task_id="c", amount="1.00")
        sensor.hook = op.hook = FakeHook()  # type: ignore[assignment]
        assert sensor.get_openlineage_facets_on_start() is None
        assert sensor.get_openlineage_facets_on_complete(None) is None
        assert op.get_openlineage_facets_on_start() is None
        assert op.get_openlineage_facets_on_complete(None) is None
