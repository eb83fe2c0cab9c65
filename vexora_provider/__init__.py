"""Apache Airflow provider for the Vexora payment gateway."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
