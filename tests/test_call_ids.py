"""What CallStatusSensor accepts as call_id, once resolved."""

from __future__ import annotations

import pytest

from airflow_provider_vapi.waiting.task import normalize_call_ids


def test_ids_lists_and_batch_results() -> None:
    assert normalize_call_ids(" c1 ") == "c1"
    assert normalize_call_ids(["c1", "c2"]) == ["c1", "c2"]
    assert normalize_call_ids(("c1",)) == ["c1"]  # a one-element sequence stays a list
    assert normalize_call_ids({"call_ids": ["c1", "c2"], "errors": []}) == ["c1", "c2"]


@pytest.mark.parametrize("value", ["", "  ", [], None, {"errors": []}, 42])
def test_nothing_to_wait_on_is_a_clear_error(value: object) -> None:
    with pytest.raises(ValueError, match="no call id"):
        normalize_call_ids(value)
