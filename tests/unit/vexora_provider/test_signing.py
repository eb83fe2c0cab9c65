from __future__ import annotations

import hashlib

import pytest

from vexora_provider.signing import SIGN_FIELD, canonical_string, sign, signed_body, timestamp_ms, verify

SECRET = "dbecac55466b4958a2d06069fcf49e18"

# Vexora's documented signature examples, computed from the rule.
VECTORS = [
    ({"tradeNo": "test_00000002", "timestamp": "1728613320708"}, "bf0e0b049174b1fbc55e851ba47ad860"),
    ({"timestamp": "1724151084278"}, "968075cd818792c843a132c7473b5918"),
    ({"amount": "100", "currency": "USD", "to": "john.doe@email.com"}, "ecf90dd700a8668b6b64213cc7a82311"),
]


class TestSign:
    @pytest.mark.parametrize(("fields", "expected"), VECTORS)
    def test_documented_vectors(self, fields: dict[str, str], expected: str) -> None:
        assert sign(fields, SECRET) == expected

    def test_non_ascii_is_utf8(self) -> None:
        fields = {"remark": "pago José – 付款", "tradeNo": "ñ-1", "timestamp": "1728613320708"}
        text = "remark=pago José – 付款timestamp=1728613320708tradeNo=ñ-1" + SECRET
        assert sign(fields, SECRET) == hashlib.md5(text.encode("utf-8")).hexdigest()
        # Pinned so a change of encoding (latin-1, NFC/NFD) shows up as a diff here.
        assert sign(fields, SECRET) == "9944f290fa80dabcda73c17f7f1b5f6d"

    def test_drops_sign_none_and_empty(self) -> None:
        base = {"tradeNo": "test_00000002", "timestamp": "1728613320708"}
        noisy = {**base, "sign": "whatever", "remark": "", "notifyUrl": None}
        assert sign(noisy, SECRET) == sign(base, SECRET)

    def test_code_point_order_is_case_sensitive(self) -> None:
        assert canonical_string({"b": "1", "B": "2", "a": "3"}) == "B=2a=3b=1"

    def test_lowercase_hex(self) -> None:
        signature = sign({"x": "1"}, SECRET)
        assert len(signature) == 32
        assert signature == signature.lower()


class TestVerify:
    def test_accepts_own_signature_in_any_case(self) -> None:
        fields, expected = VECTORS[0]
        assert verify(fields, SECRET, expected)
        assert verify(fields, SECRET, expected.upper())

    @pytest.mark.parametrize("signature", ["0" * 32, "", None, 42, "é" * 32, "\ud800" * 32])
    def test_rejects(self, signature: object) -> None:
        assert not verify(VECTORS[0][0], SECRET, signature)

    def test_wrong_secret(self) -> None:
        fields, expected = VECTORS[0]
        assert not verify(fields, "another-secret", expected)


class TestSignedBody:
    def test_adds_sign_without_mutating(self) -> None:
        fields = {"tradeNo": "test_00000002", "timestamp": "1728613320708"}
        body = signed_body(fields, SECRET)
        assert body[SIGN_FIELD] == VECTORS[0][1]
        assert SIGN_FIELD not in fields


class TestTimestampMs:
    def test_milliseconds_as_string(self) -> None:
        assert timestamp_ms(1728613320.708) == "1728613320708"
        assert timestamp_ms().isdigit()
        assert len(timestamp_ms()) == 13
