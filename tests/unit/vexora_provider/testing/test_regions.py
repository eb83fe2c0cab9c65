from __future__ import annotations

from decimal import Decimal

import pytest

from vexora_provider.testing.regions import REGION_VARIANTS, RegionVariant, format_amount


class TestRegionVariant:
    @pytest.mark.parametrize(
        ("variant", "value", "text"),
        [
            (RegionVariant(amounts_as="string", decimals=2), Decimal("300"), '"300.00"'),
            (RegionVariant(amounts_as="number", decimals=4), Decimal("3"), "3.0000"),
            (RegionVariant(amounts_as="number", decimals=2), Decimal("0.1"), "0.10"),
            (
                RegionVariant(amounts_as="number", decimals=2),
                Decimal("12345678901234.56"),
                "12345678901234.56",
            ),
        ],
    )
    def test_amounts_are_written_exactly(self, variant: RegionVariant, value: Decimal, text: str) -> None:
        assert format_amount(value, variant) == text

    def test_documented_regions_use_documented_fields(self) -> None:
        for region in ("argentina", "vietnam", "australia", "pakistan"):
            assert REGION_VARIANTS[region].amount_fields == "amount"
        for region in ("indonesia", "colombia", "korea"):
            assert REGION_VARIANTS[region].amount_fields == "order_pay"

    def test_every_shape_is_served_somewhere(self) -> None:
        shapes = {(v.amount_fields, v.amounts_as, v.success_time) for v in REGION_VARIANTS.values()}
        assert len(shapes) == 8
        assert any(v.extra_field for v in REGION_VARIANTS.values())
