"""Vapi's clock is not Airflow's: the one margin every "what did an earlier try make" lookup, and
every time window read from Vapi, allows for that.

Vapi stamps ``createdAt`` and ``updatedAt`` with its own clock; Airflow's ``run_after``, a task's
start and ``datetime.now()`` come from the workers' clocks. The two may differ by minutes either way
(a worker without NTP, a container clock that drifted). A lookup that starts at an Airflow time
without a margin misses what Vapi stamped earlier, and a retry then creates a second call or
campaign: so every such lookup starts :data:`CLOCK_SKEW` earlier (:func:`looking_back`). The key,
never the window, decides what matches: a wider window costs a longer listing, nothing else.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

#: How far Vapi's clock may be off Airflow's, either way.
CLOCK_SKEW: Final = timedelta(minutes=10)


def looking_back(since: datetime) -> datetime:
    """Where a lookup of what Vapi made at or after ``since`` (an Airflow time) must start."""
    return since - CLOCK_SKEW
