"""``python -m vexora_provider.testing serve ...``, the same as ``vexora-simulator``."""

from __future__ import annotations

import sys

from vexora_provider.testing.cli import main

sys.exit(main())
