"""OpenLineage for the Vexora provider: what the sync, the sensor, the create operator and the hook
read and write.

:mod:`.hook` reports hook-level lineage through Airflow's own collector and needs nothing more.
The other modules import the OpenLineage provider; the operators import them inside their
``get_openlineage_facets_*`` methods only, and return ``None`` when it is not installed.
"""

from __future__ import annotations
