"""``VapiCallEventTrigger`` on every Airflow this provider supports: importable everywhere, and on
Airflow 2 a clear refusal naming Airflow 3 (event-driven scheduling does not exist there)."""

from __future__ import annotations

import pytest
from airflow import __version__

from airflow_provider_vapi.triggers import CallStatusTrigger, VapiCallEventTrigger

AIRFLOW_2 = int(__version__.split(".")[0]) < 3


@pytest.mark.skipif(not AIRFLOW_2, reason="Airflow 2 only")
def test_airflow_2_refuses_the_trigger_naming_airflow_3_and_the_alternative():
    with pytest.raises(RuntimeError, match=r"needs Airflow 3 .*AssetWatcher.*ExportCallsOperator"):
        VapiCallEventTrigger(direction="inbound")
    assert CallStatusTrigger("call-1").call_ids == ["call-1"], "the rest of the provider keeps working"


@pytest.mark.skipif(AIRFLOW_2, reason="Airflow 3 only")
def test_airflow_3_builds_it_as_an_event_trigger():
    from airflow.triggers.base import BaseEventTrigger

    trigger = VapiCallEventTrigger(direction="inbound")
    assert isinstance(trigger, BaseEventTrigger)
    classpath, kwargs = trigger.serialize()
    assert type(trigger)(**kwargs).serialize() == (classpath, kwargs), "rebuilt from its kwargs as is"
