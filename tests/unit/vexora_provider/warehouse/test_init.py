from __future__ import annotations

from unittest import mock

import pytest

from vexora_provider.warehouse import (
    GenericWriter,
    MySqlWriter,
    PostgresWriter,
    SqliteWriter,
    TableName,
    writer_for,
)


class TestWriterFor:
    @pytest.mark.parametrize(
        ("dialect", "kind"),
        [
            ("sqlite", SqliteWriter),
            ("postgresql", PostgresWriter),
            ("mysql", MySqlWriter),
            ("mariadb", MySqlWriter),
            ("mssql", GenericWriter),
            ("snowflake", GenericWriter),
        ],
    )
    def test_by_dialect(self, dialect: str, kind: type) -> None:
        assert type(writer_for(mock.Mock(dialect_name=dialect), TableName.parse("t"))) is kind

    def test_forced_generic(self) -> None:
        writer = writer_for(mock.Mock(dialect_name="mysql"), TableName.parse("t"), dialect="generic")
        assert type(writer) is GenericWriter
