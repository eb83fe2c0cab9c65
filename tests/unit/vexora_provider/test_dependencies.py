"""Workers and triggerers need only the runtime dependencies: no simulator server packages.

A fresh interpreter refuses to import uvicorn, httptools and uvloop (the ``testing`` extra), then
imports everything a DAG and the triggerer use and queries a payout through the hook.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SERVER_PACKAGES = ("uvicorn", "httptools", "uvloop")

PROBE = textwrap.dedent(
    """
    import sys

    for name in {packages!r}:
        sys.modules[name] = None  # `import name` now fails as if it were not installed

    import pendulum
    from airflow.sdk import DAG

    import vexora_provider
    from vexora_provider.get_provider_info import get_provider_info
    from vexora_provider.hooks.vexora import VexoraHook
    from vexora_provider.operators.payout_status import PayoutStatusToSqlOperator
    from vexora_provider.sensors.payout_status import PayoutStatusSensor
    from vexora_provider.testing import VexoraSimulator
    from vexora_provider.triggers.payout_status import PayoutStatusTrigger

    assert get_provider_info()["package-name"] == "airflow-provider-vexora"
    assert PayoutStatusTrigger.__module__ == "vexora_provider.triggers.payout_status"
    with DAG("d", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        PayoutStatusSensor(task_id="wait", trade_nos=["T1"])
        PayoutStatusToSqlOperator(task_id="sync", trade_nos=["T1"], sql_conn_id="warehouse")

    import os
    with VexoraSimulator(seed=3) as sim:
        os.environ.update(sim.airflow_env())
        sim.add_payout("T1", "partial", amount="300.00")
        hook = VexoraHook(transport=sim.transport(), async_transport=sim.async_transport())
        print(hook.get_payout_status("T1").state.value)
    """
).format(packages=SERVER_PACKAGES)


class TestRuntimeDependencies:
    def test_hook_sensor_trigger_operator_without_the_testing_extra(self) -> None:
        result = subprocess.run(
            [sys.executable, "-c", PROBE],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip().splitlines()[-1] == "partial"
