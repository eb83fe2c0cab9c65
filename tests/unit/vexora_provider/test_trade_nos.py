from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from vexora_provider.exceptions import VexoraInvalidTradeNoError
from vexora_provider.trade_nos import (
    DistinctTradeNos,
    LiteralTradeNosRendering,
    TradeNos,
    TradeNosError,
    clean_trade_no,
    coerce_trade_nos,
    literal_trade_nos,
    refuse_literal_mistakes,
)


class TestCleanTradeNo:
    @pytest.mark.parametrize(
        ("entry", "clean"),
        [
            ("T1", "T1"),
            ("  T1\t", "T1"),
            (b"T1", "T1"),
            (bytearray(b" T1 "), "T1"),
            (memoryview(b"T1"), "T1"),  # what psycopg2 gives for bytea
            (1001, "1001"),
            ("x" * 32, "x" * 32),
            ("ORD,1", "ORD,1"),  # one entry of a list may hold any printable character
        ],
    )
    def test_cleans(self, entry: object, clean: str) -> None:
        assert clean_trade_no(entry) == clean

    @pytest.mark.parametrize(
        ("entry", "cause"),
        [
            ("", "empty or blank"),
            ("   ", "empty or blank"),
            ("x" * 33, "at most 32"),
            ("a\nb", "printable"),
            ("nul\x00", "printable"),
            (b"\xff", "UTF-8"),
            (None, "got NoneType"),
            (True, "got bool"),
            (2.5, "got float"),
            (["T1"], "got list"),
            (Decimal("1.5"), "got Decimal"),
        ],
    )
    def test_refuses_naming_the_entry(self, entry: object, cause: str) -> None:
        with pytest.raises(VexoraInvalidTradeNoError, match=cause) as raised:
            clean_trade_no(entry)
        assert raised.value.permanence == "trade"

    def test_undecodable_bytes_are_named_readably(self) -> None:
        with pytest.raises(VexoraInvalidTradeNoError) as raised:
            clean_trade_no(b"\xffP2")
        assert raised.value.trade_no == "\\xffP2"  # never "b'...'"


class TestTradeNos:
    def test_invalid_summary_counts_and_caps(self) -> None:
        coerced = coerce_trade_nos([None, 1.5, 2.5, 3.5, 4.5, 5.5, True])
        summary = coerced.invalid_summary()
        assert summary.startswith("7 entries are not trade numbers: trade 'None': a trade number must be")
        assert coerced.duplicates == 0
        assert summary.endswith("; and 2 more")

    def test_invalid_summary_singular(self) -> None:
        assert coerce_trade_nos(["A", ""]).invalid_summary().startswith("1 entry is not a trade number: ")


class TestCoerceTradeNos:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("T1", TradeNos(("T1",), single=True)),
            (" T1 ", TradeNos(("T1",), single=True)),
            (b"T1", TradeNos(("T1",), single=True)),
            (1001, TradeNos(("1001",), single=True)),
            (["T1", "T2"], TradeNos(("T1", "T2"))),
            (("T1", " T2 ", "T1"), TradeNos(("T1", "T2"), duplicates=1)),
            ({"T2", "T1"}, TradeNos(("T1", "T2"))),  # sorted: the same order on every run
            (frozenset({"B", "A"}), TradeNos(("A", "B"))),
            (iter(["T1"]), TradeNos(("T1",))),
            ("['T1', 'T2', 'T1']", TradeNos(("T1", "T2"), duplicates=1)),  # Jinja's text of a list
            ('["T1"]', TradeNos(("T1",))),  # JSON
            ("('T1', 'T2')", TradeNos(("T1", "T2"))),
            ("[]", TradeNos(())),
            ([], TradeNos(())),
            ([b"T1", 7, "T1"], TradeNos(("T1", "7"), duplicates=1)),
            (memoryview(b"T1"), TradeNos(("T1",), single=True)),
            ("[PO-1]", TradeNos(("[PO-1]",), single=True)),  # brackets, but not list text
            ("(123)", TradeNos(("(123)",), single=True)),
            ("[1]", TradeNos(("1",))),  # list text: the list
            ([Decimal("1001.00"), Decimal("1E+3")], TradeNos(("1001", "1000"))),  # NUMERIC columns
        ],
    )
    def test_rule(self, value: object, expected: TradeNos) -> None:
        assert coerce_trade_nos(value) == expected

    def test_entries_that_are_not_trade_numbers_are_kept_aside_in_order(self) -> None:
        coerced = coerce_trade_nos(["A", "", None, "B", 2.5, "x" * 40, "  "])
        assert coerced.trade_nos == ("A", "B")
        assert [i.entry for i in coerced.invalid] == ["", "None", "2.5", "x" * 40, "  "]  # as given
        assert all(isinstance(i.error, VexoraInvalidTradeNoError) for i in coerced.invalid)

    @pytest.mark.parametrize(
        ("value", "match"),
        [
            ("ORD-1,ORD-2", r"did you mean a list\? e.g. trade_nos=\['ORD-1', 'ORD-2'\]"),
            ("ORD-1, ORD-2", "did you mean a list"),
            ("ORD-1 ORD-2", "did you mean a list"),
            ("A\nB", "did you mean a list"),
            ("[T1, T2]", "did you mean a list"),  # not list text: one string, with a space
            ("['T1'", None),  # not list text at all: one trade number
            ("{'T1': 1}", "did you mean a list"),
            ({"T1": 1}, "not a mapping"),
            (2.5, "not float"),
            (None, "not NoneType"),
            (b"\xff", "not UTF-8"),
            ("", "empty or blank"),
            ("x" * 40, "at most 32"),
        ],
    )
    def test_refuses_what_is_not_trade_numbers(self, value: object, match: str | None) -> None:
        if match is None:
            assert coerce_trade_nos(value).single
            return
        with pytest.raises(TradeNosError, match=match):
            coerce_trade_nos(value)

    def test_repeated_entries_that_are_not_trade_numbers_are_recorded_once(self) -> None:
        coerced = coerce_trade_nos(["A", None, None, "", "", Decimal("1.5")])
        assert [i.entry for i in coerced.invalid] == ["None", "", "Decimal('1.5')"]
        assert coerced.duplicates == 2

    def test_the_error_fails_a_task_without_retries(self) -> None:
        with pytest.raises(AirflowFailException):
            coerce_trade_nos("A,B")

    def test_names_the_argument(self) -> None:
        with pytest.raises(TradeNosError, match=r"^trade_nos_sql "):
            coerce_trade_nos("A,B", param="trade_nos_sql")

    def test_suggestion_is_short_for_long_strings(self) -> None:
        with pytest.raises(TradeNosError, match=r"\['A1', 'A2', 'A3', '…'\]"):
            coerce_trade_nos(",".join(f"A{i}" for i in range(1, 100)))


class TestDistinctTradeNos:
    def test_each_trade_once_cleaned_and_invalid_entries_passed_on(self) -> None:
        distinct = DistinctTradeNos()
        entries: list[Any] = ["A", " A", b"B", None, "B", "", 3]
        assert [distinct.pick(e) for e in entries] == [
            (True, "A"),
            (False, "A"),
            (True, "B"),
            (True, None),
            (False, "B"),
            (True, ""),
            (True, "3"),
        ]


class TestLiteralTradeNos:
    @pytest.mark.parametrize(
        ("content", "expected"),
        [
            (["A", "B"], ["A", "B"]),
            (("A",), ["A"]),
            (["{{ x }}"], None),
            (["A", 1], None),
            ("A", None),
        ],
    )
    def test_only_plain_literal_lists(self, content: object, expected: list[str] | None) -> None:
        assert literal_trade_nos(content) == expected


class TestRefuseLiteralMistakes:
    @pytest.mark.parametrize(
        "value",
        [
            "T1",
            ["T1", "T2"],
            "{{ params.trade_nos }}",
            ["{{ params.a }}", "B"],
            "{% for t in params.x %}{{ t }},{% endfor %}",  # a template: judged once rendered
        ],
    )
    def test_accepts(self, value: object) -> None:
        refuse_literal_mistakes(value, param="trade_nos")

    def test_leaves_iterators_unused(self) -> None:
        entries = iter(["A", "B"])
        refuse_literal_mistakes(entries, param="trade_nos")
        assert list(entries) == ["A", "B"]

    def test_leaves_values_resolved_at_run_time(self) -> None:
        class Resolvable:
            def resolve(self, context: object) -> list[str]:
                return ["T1"]

        refuse_literal_mistakes(Resolvable(), param="trade_nos")
        refuse_literal_mistakes([Resolvable()], param="trade_nos")

    @pytest.mark.parametrize(
        ("value", "match"),
        [
            ("A,B", "did you mean a list"),
            (["A", ""], "1 entry is not a trade number"),
            (["A", None, 2.5], "2 entries are not trade numbers"),
            ({"A": 1}, "mapping"),
            (3.0, "not float"),
        ],
    )
    def test_refuses(self, value: object, match: str) -> None:
        with pytest.raises(TradeNosError, match=match):
            refuse_literal_mistakes(value, param="trade_nos")

    def test_entries_can_be_left_for_run_time(self) -> None:
        refuse_literal_mistakes(["A", "", None], param="trade_nos", entries=False)
        with pytest.raises(TradeNosError, match="did you mean a list"):
            refuse_literal_mistakes("A,B", param="trade_nos", entries=False)


class TestLiteralTradeNosRendering:
    class Base:
        def render_template(
            self, content: Any, context: Any, jinja_env: Any = None, seen_oids: Any = None
        ) -> Any:
            return ("rendered", content)

    class Task(LiteralTradeNosRendering, Base):
        pass

    def test_literal_lists_skip_rendering_the_rest_is_rendered(self) -> None:
        task = self.Task()
        assert task.render_template(["A", "B"], {}) == ["A", "B"]
        assert task.render_template(["{{ a }}"], {}) == ("rendered", ["{{ a }}"])
        assert task.render_template("A", {}) == ("rendered", "A")
