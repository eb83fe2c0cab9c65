from __future__ import annotations

import importlib

import pytest

from vexora_provider.get_provider_info import get_provider_info

MODULES = [
    module
    for kind in ("hooks", "sensors", "triggers", "operators")
    for entry in get_provider_info()[kind]
    for module in entry["python-modules"]
]


class TestGetProviderInfo:
    @pytest.mark.parametrize("module", MODULES)
    def test_every_listed_module_imports(self, module: str) -> None:
        importlib.import_module(module)

    def test_the_create_operator_is_listed(self) -> None:
        assert "vexora_provider.operators.create_payout" in MODULES
