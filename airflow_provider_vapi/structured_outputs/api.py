"""``StructuredOutputApi(hook)``: Vapi's structured-output routes, wrapping a hook.

The hook imports no feature; a feature wraps a hook instead (``ARCHITECTURE.md``). Reads go
through the hook's generator protocol (:mod:`airflow_provider_vapi.wire.transport`); the run is
:func:`.extraction.submit_op`, never sent twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.structured_outputs.extraction import submit_op


class StructuredOutputApi:
    """Read a saved structured output and run one over past calls, with ``hook``'s connection."""

    def __init__(self, hook: VapiHook) -> None:
        self.hook = hook

    def get(self, structured_output_id: str) -> dict[str, Any]:
        """One saved structured output (raw JSON: ``name``, ``schema``, ``updatedAt`` ...); the id
        is checked before it goes into the path (:mod:`airflow_provider_vapi.wire.ids`)."""
        return self.hook._run(
            self.hook._get_op("/structured-output", "structured_output_id", structured_output_id)
        )

    def run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /structured-output/run``: extract an output from up to 100 ended calls. Never sent
        twice: an answer lost in flight raises :class:`~airflow_provider_vapi.exceptions.
        VapiRunUnresolvedError` (the run may be under way; :mod:`.extraction` waits to see)."""
        return self.hook._run(submit_op(self.hook, body))


__all__ = ["StructuredOutputApi"]
