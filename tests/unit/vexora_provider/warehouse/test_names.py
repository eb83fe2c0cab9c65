from __future__ import annotations

import pytest

from vexora_provider.warehouse import TableName


class TestTableName:
    @pytest.mark.parametrize(
        ("value", "schema", "name"), [("t", None, "t"), ("s.t", "s", "t"), ("_A9.b_", "_A9", "b_")]
    )
    def test_parse(self, value: str, schema: str | None, name: str) -> None:
        assert TableName.parse(value) == TableName(schema, name)

    @pytest.mark.parametrize("value", ["", "t;", "a.b.c", "9t", "t-x", "t x", "ß", None, 3, "x" * 57])
    def test_refused(self, value: object) -> None:
        with pytest.raises(ValueError, match="not a plain"):
            TableName.parse(value)

    def test_quoting_and_errors_table(self) -> None:
        name = TableName.parse("wh.payouts")
        assert name.quoted('"') == '"wh"."payouts"'
        assert name.quoted("`") == "`wh`.`payouts`"
        assert name.errors.quoted('"') == '"wh"."payouts_errors"'
        assert str(name) == "wh.payouts"
