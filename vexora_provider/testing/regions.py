"""How each Vexora region shapes the ``data`` of a payout answer, as Vexora documents it.

The real gateway is one deployment per region and the deployments disagree on field names, on
number vs string amounts and on whether ``successTime`` is sent. Clients must accept all of them,
so the simulator reproduces every variant, chosen by the first path segment of the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

__all__ = ["DEFAULT_REGION", "REGION_VARIANTS", "RegionVariant", "format_amount"]

AmountFields = Literal["amount", "order_pay"]


@dataclass(frozen=True, slots=True)
class RegionVariant:
    """The response shape of one region.

    :param timezone: IANA zone in which ``successTime`` is written (local time, no offset).
    :param amount_fields: ``"amount"`` (actual amount only) or ``"order_pay"``
        (``orderAmount`` ordered and ``payAmount`` disbursed).
    :param amounts_as: ``"string"`` (``"300.00"``) or ``"number"`` (``3.0000`` as a JSON number).
    :param decimals: digits after the point, always written out (``3.0000``, never ``3``).
    :param success_time: whether ``successTime`` is sent once a payout succeeded.
    :param extra_field: add an undocumented field (``channelCode``) clients must tolerate.
    """

    timezone: str = "UTC"
    amount_fields: AmountFields = "amount"
    amounts_as: Literal["string", "number"] = "string"
    decimals: int = 2
    success_time: bool = True
    extra_field: bool = False


def format_amount(value: Decimal, variant: RegionVariant) -> str:
    """Return the JSON text of ``value``: exact digits, quoted when the region sends strings."""
    text = f"{value.quantize(Decimal(1).scaleb(-variant.decimals)):f}"
    return f'"{text}"' if variant.amounts_as == "string" else text


# Documented regions first (amount vs orderAmount/payAmount as Vexora documents), the rest pick a shape so
# that every combination of field names x number/string x successTime on/off is served somewhere.
REGION_VARIANTS: dict[str, RegionVariant] = {
    "argentina": RegionVariant("America/Argentina/Buenos_Aires", "amount", "string", 2, True),
    "vietnam": RegionVariant("Asia/Ho_Chi_Minh", "amount", "number", 4, False),
    "australia": RegionVariant("Australia/Sydney", "amount", "string", 2, True, True),
    "pakistan": RegionVariant("Asia/Karachi", "amount", "number", 2, True),
    "indonesia": RegionVariant("Asia/Jakarta", "order_pay", "string", 2, True),
    "colombia": RegionVariant("America/Bogota", "order_pay", "number", 2, False, True),
    "korea": RegionVariant("Asia/Seoul", "order_pay", "number", 4, True),
    "nigeria": RegionVariant("Africa/Lagos", "amount", "string", 2, True),
    "cambodia": RegionVariant("Asia/Phnom_Penh", "order_pay", "number", 4, False),
    "cambodia-usd": RegionVariant("Asia/Phnom_Penh", "order_pay", "string", 2, True, True),
    "myanmar": RegionVariant("Asia/Yangon", "amount", "number", 2, True),
    "brazil": RegionVariant("America/Sao_Paulo", "amount", "string", 2, True),
    "mexico": RegionVariant("America/Mexico_City", "order_pay", "string", 2, True),
    "malaysia": RegionVariant("Asia/Kuala_Lumpur", "amount", "string", 2, False),
    "india": RegionVariant("Asia/Kolkata", "amount", "number", 2, True, True),
    "thailand": RegionVariant("Asia/Bangkok", "amount", "string", 2, True),
    "philippines": RegionVariant("Asia/Manila", "order_pay", "string", 2, False),
    "japan": RegionVariant("Asia/Tokyo", "amount", "number", 4, True),
    "kenya": RegionVariant("Africa/Nairobi", "amount", "string", 2, True),
    "bangladesh": RegionVariant("Asia/Dhaka", "amount", "string", 2, False),
    "chile": RegionVariant("America/Santiago", "order_pay", "number", 2, True),
    "peru": RegionVariant("America/Lima", "amount", "string", 2, True),
}

DEFAULT_REGION = RegionVariant()
