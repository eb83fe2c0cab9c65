from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from vexora_provider.exceptions import (
    VexoraConfigError,
    VexoraInvalidPayoutError,
    VexoraResponseFormatError,
    VexoraTransportError,
)
from vexora_provider.models import (
    DEFAULT_STATUS_MAP,
    Balance,
    PayoutQueryError,
    PayoutState,
    PayoutStatus,
    StatusMap,
    decode_envelope,
    dumps_exact,
    parse_balance,
    parse_payout_status,
    validate_payout_amount,
)

JAKARTA = ZoneInfo("Asia/Jakarta")

# Every regional shape of ``data`` Vexora documents, as JSON text so numbers arrive
# exactly as the gateway writes them.
REGIONAL_BODIES: dict[str, str] = {
    "argentina": '{"tradeNo":"T1","platFormTradeNo":"P1","status":"0000","message":"ok",'
    '"amount":"300.00","successTime":"2024-10-11 10:22:00"}',
    "vietnam": '{"tradeNo":"T1","platFormTradeNo":"P1","status":"0015","message":"in processing",'
    '"amount":3.0000}',
    "australia": '{"tradeNo":"T1","platFormTradeNo":"P1","status":"00029","message":"REJECTED_TRANSACTION",'
    '"amount":0}',
    "pakistan": '{"tradeNo":"T1","platFormTradeNo":"P1","status":"0001","amount":"150.5",'
    '"successTime":"2024-10-11 10:22:00"}',
    "indonesia": '{"tradeNo":"T1","platFormTradeNo":"P1","status":"0000","orderAmount":"10000.00",'
    '"payAmount":10000,"successTime":"2024-10-11 10:22:00"}',
    "colombia": '{"tradeNo":"T1","platFormTradeNo":"P1","status":"0015","orderAmount":12.345,'
    '"payAmount":"0"}',
    "korea-no-tradeNo": '{"platFormTradeNo":"P1","status":"0000","orderAmount":"5000","payAmount":"5000"}',
    "extra-fields": '{"tradeNo":"T1","status":"0042","bankCode":"014","fee":1.50,"nested":{"a":[1,2.5]}}',
}


def _data(region: str) -> Any:
    return decode_envelope(
        (
            '{"code":"0000","msg":"success","success":true,"timestamp":1728613320708,"data":'
            + REGIONAL_BODIES[region]
            + "}"
        ).encode()
    ).data


def _parse(data: Any, tz: ZoneInfo | None = JAKARTA, trade_no: str = "T1") -> PayoutStatus:
    return parse_payout_status(data, trade_no=trade_no, status_map=StatusMap.with_overrides(), tz=tz)


def _no_floats(value: Any) -> None:
    assert not isinstance(value, float)
    if isinstance(value, dict):
        for item in value.values():
            _no_floats(item)
    if isinstance(value, list):
        for item in value:
            _no_floats(item)


class TestPayoutState:
    @pytest.mark.parametrize(
        ("state", "terminal"),
        [("pending", False), ("success", True), ("partial", True), ("failed", True), ("unknown", False)],
    )
    def test_terminal(self, state: str, terminal: bool) -> None:
        assert PayoutState(state).is_terminal is terminal


class TestStatusMap:
    @pytest.mark.parametrize(
        ("code", "state"),
        [
            ("0000", "success"),
            ("0001", "partial"),
            ("0015", "pending"),
            ("00029", "failed"),
            ("0029", "unknown"),
            ("9999", "unknown"),
            ("", "unknown"),
        ],
    )
    def test_defaults(self, code: str, state: str) -> None:
        assert StatusMap.with_overrides().classify(code) is PayoutState(state)

    def test_overrides_merge_over_defaults(self) -> None:
        # Keys may arrive as JSON numbers when a user writes the extra by hand.
        overrides: dict[Any, object] = {"0099": "FAILED", 15: "pending", "0015": "unknown"}
        status_map = StatusMap.with_overrides(overrides)
        assert status_map.classify("0099") is PayoutState.FAILED
        assert status_map.classify("15") is PayoutState.PENDING
        assert status_map.classify("0015") is PayoutState.UNKNOWN
        assert status_map.classify("0000") is PayoutState.SUCCESS
        assert status_map.overrides() == {"0099": "failed", "15": "pending", "0015": "unknown"}
        assert dict(DEFAULT_STATUS_MAP)["0015"] is PayoutState.PENDING  # defaults untouched

    def test_bad_state(self) -> None:
        with pytest.raises(VexoraConfigError, match="must be one of"):
            StatusMap.with_overrides({"0099": "refunded"})


class TestDecodeEnvelope:
    def test_numbers_are_decimal(self) -> None:
        envelope = decode_envelope(b'{"code":"0000","msg":"success","data":{"amount":3.0000,"n":7}}')
        assert envelope.code == "0000"
        assert envelope.msg == "success"
        assert envelope.data == {"amount": Decimal("3.0000"), "n": 7}
        assert str(envelope.data["amount"]) == "3.0000"

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (b"<html>502</html>", "not JSON"),
            (b"", "not JSON"),
            (b'{"code":"0000","data":NaN}', "not JSON"),
            (b'{"code":"0000","data":Infinity}', "not JSON"),
            (b"[1,2]", "no request-level 'code'"),
            (b'{"msg":"x"}', "no request-level 'code'"),
            (b'{"code":true}', "'code' is a bool"),
            (b'{"code":null}', "'code' is a NoneType"),
        ],
    )
    def test_malformed(self, body: bytes, reason: str) -> None:
        with pytest.raises(VexoraResponseFormatError, match=reason) as exc:
            decode_envelope(body, trade_no="T9")
        assert exc.value.trade_no == "T9"
        assert "T9" in str(exc.value)

    def test_numeric_code_and_missing_msg(self) -> None:
        envelope = decode_envelope(b'{"code":5000,"msg":null}')
        assert envelope.code == "5000"
        assert envelope.msg == ""
        assert envelope.data is None


class TestParsePayoutStatus:
    @pytest.mark.parametrize("region", list(REGIONAL_BODIES))
    def test_every_regional_variant(self, region: str) -> None:
        data = _data(region)
        status = _parse(data)
        assert status.trade_no == "T1"
        for amount in (status.amount, status.order_amount, status.pay_amount):
            assert amount is None or isinstance(amount, Decimal)
        _no_floats(dict(status.raw))
        assert status.raw == data  # every field kept, unknown ones included
        assert json.loads(status.raw_json()) == json.loads(REGIONAL_BODIES[region])

    def test_amount_digits_exact(self) -> None:
        status = _parse(_data("vietnam"))
        assert status.amount == Decimal("3.0000")
        assert str(status.amount) == "3.0000"
        assert '"amount":3.0000' in status.raw_json()

    def test_ordered_and_paid(self) -> None:
        status = _parse(_data("indonesia"))
        assert (status.amount, status.order_amount, status.pay_amount) == (
            None,
            Decimal("10000.00"),
            Decimal(10000),
        )
        assert status.state is PayoutState.SUCCESS

    def test_success_time_aware_in_region_zone(self) -> None:
        when = _parse(_data("argentina")).success_time
        assert when is not None
        assert when.tzinfo is JAKARTA
        assert when.utcoffset() == timedelta(hours=7)
        assert when.isoformat() == "2024-10-11T10:22:00+07:00"

    def test_success_time_none_without_zone_or_value(self) -> None:
        assert _parse(_data("argentina"), tz=None).success_time is None
        assert _parse(_data("vietnam")).success_time is None

    def test_unpadded_success_time_still_accepted(self) -> None:
        data = {"tradeNo": "T1", "status": "0000", "successTime": "2024-1-2 3:04:05"}
        when = _parse(data).success_time
        assert when is not None
        assert when.isoformat() == "2024-01-02T03:04:05+07:00"

    def test_unknown_code_kept(self) -> None:
        status = _parse(_data("extra-fields"))
        assert status.state is PayoutState.UNKNOWN
        assert status.status_code == "0042"
        assert status.raw["bankCode"] == "014"
        assert status.raw["fee"] == Decimal("1.50")

    def test_numeric_status_code(self) -> None:
        assert _parse({"status": 15}).status_code == "15"

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            (None, "'data' is not an object"),
            ([], "'data' is not an object"),
            ({"tradeNo": "T1"}, "data.status is missing"),
            ({"status": ""}, "data.status is missing"),
            ({"status": True}, "data.status is missing"),
            ({"status": "0000", "tradeNo": "T2"}, "another trade"),
            ({"status": "0000", "amount": "abc"}, "amount is not an amount"),
            ({"status": "0000", "amount": True}, "amount is not an amount"),
            ({"status": "0000", "payAmount": "NaN"}, "payAmount is not an amount"),
            ({"status": "0000", "successTime": "2024-10-11T10:22:00"}, "successTime"),
            ({"status": "0000", "successTime": "2024-02-30 10:22:00"}, "successTime"),
            ({"status": "0000", "successTime": 1728613320}, "successTime is not a string"),
            ({"status": "0000", "successTime": "٢٠٢٤-10-11 10:22:00"}, "successTime"),
            ({"status": "0000", "tradeNo": [[["T1"]]]}, "another trade"),
        ],
    )
    def test_malformed_data(self, data: Any, reason: str) -> None:
        with pytest.raises(VexoraResponseFormatError, match=reason) as exc:
            _parse(data)
        assert exc.value.trade_no == "T1"

    def test_to_dict_is_plain_json(self) -> None:
        status = _parse(_data("argentina"))
        data = status.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert data["amount"] == "300.00"
        assert data["state"] == "success"
        assert data["success_time"] == "2024-10-11T10:22:00+07:00"
        assert status.is_terminal

    def test_repr_leaves_out_raw(self) -> None:
        assert "raw" not in repr(_parse(_data("extra-fields")))

    def test_text_fields_keep_other_json_values_as_json_text(self) -> None:
        status = _parse({"status": "0015", "message": {"a": [1, True]}, "platFormTradeNo": 7})
        assert status.message == '{"a":[1,true]}'
        assert status.platform_trade_no == "7"


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


class TestHostileAnswers:
    """Parseable answers a hostile gateway could send: each parses, or fails as a format error."""

    def test_unknown_field_nested_400_levels_deep(self) -> None:
        body = '{"code":"0000","data":{"status":"0000","channel":' + _deep(400) + "}}"
        status = _parse(decode_envelope(body.encode()).data)
        assert status.raw_json().endswith('"channel":' + _deep(400) + "}")

    def test_nesting_beyond_the_decoder_is_a_format_error(self) -> None:
        body = '{"code":"0000","data":{"status":"0000","channel":' + _deep(100_000) + "}}"
        with pytest.raises(VexoraResponseFormatError, match="not JSON"):
            decode_envelope(body.encode())

    def test_lone_surrogate_and_nul_kept_in_fields_escaped_in_raw(self) -> None:
        data = decode_envelope(b'{"code":"0000","data":{"status":"0000","message":"a\\ud800\\u0000b"}}').data
        status = _parse(data)
        assert status.message == "a\ud800\x00b"
        raw = status.raw_json()
        assert raw == '{"status":"0000","message":"a\\ud800\\u0000b"}'
        raw.encode("utf-8")  # storable as UTF-8 text
        assert json.loads(raw) == data


class TestAmounts:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("300.00", "300.00"),
            (" 0.00004999 ", "0.00004999"),
            ("99.99999", "99.99999"),
            ("-1.5", "-1.5"),
            ("1E+2", "1E+2"),
            (Decimal("3.0000"), "3.0000"),
            (10000, "10000"),
        ],
    )
    def test_plain_ascii_decimal_notation_kept_exactly(self, value: object, expected: str) -> None:
        status = _parse({"status": "0000", "amount": value})
        assert str(status.amount) == expected

    @pytest.mark.parametrize(
        "value",
        [
            "1_000",
            "١٢٣",
            "\uff11\uff12\uff13",
            "NaN",
            "Infinity",
            "-inf",
            "sNaN",
            "1.",
            ".5",
            "+1",
            "1e",
            "0x10",
            "1,5",
        ],
    )
    def test_anything_else_is_a_format_error(self, value: str) -> None:
        with pytest.raises(VexoraResponseFormatError, match="amount is not an amount"):
            _parse({"status": "0000", "amount": value})


SYDNEY = ZoneInfo("Australia/Sydney")


class TestSuccessTimeRule:
    """One rule for local times a zone skips or repeats, the same for hook, sensor and operator."""

    def test_skipped_time_moves_forward_by_the_gap(self) -> None:
        # 2026-10-04 02:00 in Sydney jumps to 03:00: 02:30 does not exist.
        when = _parse({"status": "0000", "successTime": "2026-10-04 02:30:00"}, tz=SYDNEY).success_time
        assert when is not None
        assert when.isoformat() == "2026-10-04T03:30:00+11:00"

    def test_repeated_time_is_its_first_occurrence(self) -> None:
        # 2026-04-05 03:00 in Sydney goes back to 02:00: 02:30 happens twice.
        when = _parse({"status": "0000", "successTime": "2026-04-05 02:30:00"}, tz=SYDNEY).success_time
        assert when is not None
        assert when.isoformat() == "2026-04-05T02:30:00+11:00"
        assert when.astimezone(ZoneInfo("UTC")).isoformat() == "2026-04-04T15:30:00+00:00"

    @pytest.mark.parametrize(
        ("text", "zone"),
        [("9999-12-31 23:59:59", "America/Bogota"), ("0001-01-01 00:00:00", "Africa/Lagos")],
    )
    def test_outside_the_representable_years_is_a_format_error(self, text: str, zone: str) -> None:
        with pytest.raises(VexoraResponseFormatError, match="outside the years 1-9999"):
            _parse({"status": "0000", "successTime": text}, tz=ZoneInfo(zone))

    @pytest.mark.parametrize(
        ("text", "zone"),
        [("9999-12-31 23:59:59", "Africa/Lagos"), ("0001-01-01 00:00:00", "America/Bogota")],
    )
    def test_extremes_that_exist_in_utc_parse(self, text: str, zone: str) -> None:
        assert _parse({"status": "0000", "successTime": text}, tz=ZoneInfo(zone)).success_time is not None


class TestParseBalance:
    def test_strings_and_numbers(self) -> None:
        data = decode_envelope(
            b'{"code":"0000","data":{"availableAmount":1234.50,"freezeAmount":"0.00","unsettledAmount":null,'
            b'"extra":"kept"}}'
        ).data
        balance = parse_balance(data)
        assert balance == Balance(
            available_amount=Decimal("1234.50"),
            freeze_amount=Decimal("0.00"),
            unsettled_amount=None,
            raw=data,
        )
        assert balance.raw["extra"] == "kept"

    @pytest.mark.parametrize("data", [None, "x", [1]])
    def test_not_an_object(self, data: Any) -> None:
        with pytest.raises(VexoraResponseFormatError):
            parse_balance(data)


class TestPayoutQueryError:
    def test_properties(self) -> None:
        error = VexoraTransportError("read timeout after 10s", trade_no="T1", transient=True, attempts=4)
        item = PayoutQueryError(trade_no="T1", error=error)
        assert item.error_type == "VexoraTransportError"
        assert item.attempts == 4
        assert item.message == "trade 'T1': read timeout after 10s"


class TestDumpsExact:
    def test_round_trip(self) -> None:
        value = {"a": Decimal("1.50"), "b": [1, Decimal("2.0"), None, True], "c": "ü"}
        assert dumps_exact(value) == '{"a":1.50,"b":[1,2.0,null,true],"c":"ü"}'

    def test_nested_and_empty_containers(self) -> None:
        value = {"a": [{}, [], {"b": [Decimal("1E+2")]}], "c": {"d": None}}
        assert dumps_exact(value) == '{"a":[{},[],{"b":[1E+2]}],"c":{"d":null}}'

    def test_any_depth(self) -> None:
        value: list[Any] = []
        inner = value
        for _ in range(5000):
            inner.append([])
            inner = inner[0]
        assert dumps_exact(value) == _deep(5001)


class TestValidatePayoutAmount:
    @pytest.mark.parametrize(
        ("value", "sent"),
        [
            ("1500.00", "1500.00"),
            (" 7.5\n", "7.5"),
            ("0.01", "0.01"),
            ("007.50", "7.50"),
            (Decimal("100.00"), "100.00"),
            (Decimal("1.5E+3"), "1500"),
            (Decimal("0.000001"), "0.000001"),
            (12, "12"),
            ("9" * 32, "9" * 32),
        ],
    )
    def test_sent_as_exact_decimal_text(self, value: object, sent: str) -> None:
        assert validate_payout_amount(value) == sent

    @pytest.mark.parametrize(
        ("value", "words"),
        [
            ("1e3", "not a plain decimal"),
            ("-1", "not a plain decimal"),
            ("+1", "not a plain decimal"),
            ("1_000", "not a plain decimal"),
            ("1,000.00", "not a plain decimal"),
            ("\u0661\u0662", "not a plain decimal"),  # Arabic-Indic digits
            ("NaN", "not a plain decimal"),
            ("Infinity", "not a plain decimal"),
            (".5", "not a plain decimal"),
            ("1.", "not a plain decimal"),
            ("", "not a plain decimal"),
            ("0", "greater than zero"),
            ("0.00", "greater than zero"),
            (Decimal("-1"), "greater than zero"),
            (Decimal("NaN"), "finite"),
            (Decimal("Infinity"), "finite"),
            (Decimal("1E+40"), "more than 32 digits"),
            (Decimal("1E-40"), "more than 32 digits"),
            ("9" * 33, "more than 32 digits"),
            (1.5, "float"),
            (True, "not bool"),
            (None, "not NoneType"),
        ],
    )
    def test_refused_before_any_request(self, value: object, words: str) -> None:
        with pytest.raises(VexoraInvalidPayoutError, match=words) as raised:
            validate_payout_amount(value, trade_no="PO-1")
        assert raised.value.trade_no == "PO-1"
        assert isinstance(raised.value, ValueError)
