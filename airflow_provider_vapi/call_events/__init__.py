"""DAGs started by calls: every ended Vapi call (inbound too) becomes one asset event.

* :mod:`.filters` - which calls a watcher delivers.
* :mod:`.ledger` - what it has delivered (the watermark kept in the asset state store).
* :mod:`.stream` - the change feed in, one event per call out.
* :mod:`.trigger` - ``VapiCallEventTrigger``, for ``AssetWatcher``.
"""

from airflow_provider_vapi.call_events.filters import CallFilter
from airflow_provider_vapi.call_events.trigger import VapiCallEventTrigger

__all__ = ["CallFilter", "VapiCallEventTrigger"]
