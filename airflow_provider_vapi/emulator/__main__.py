"""``python -m airflow_provider_vapi.emulator``: same as ``vapi-emulator``."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
