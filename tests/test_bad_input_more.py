"""More bad input, refused before anything is done: the files and folders the export, load and
campaign operators are given, their rendered filters, and a recording link that is no web link.

Each is a clear, final error (``AirflowFailException``, or ``VapiInvalidRequestError`` where the
campaign request is built) naming the parameter and the fix, quoting no secret, with nothing sent
to Vapi, nothing written and no database reached (``AIRFLOW_CONN_WAREHOUSE`` is left undefined:
reaching for it would be a different error). The DAG-level test shows the task failing once, not
retried. The database side (NUL characters, table names) is tests/test_warehouse_text.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_vapi.exceptions import VapiInvalidRequestError, VapiResponseError
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.operators import ExportCallsOperator, LoadCallsOperator, RunCampaignOperator
from tests.conftest import vapi_conn_json
from tests.dag_runner import run_dag, states, tries

SECRET = "sk-live-MORE-BAD-INPUT-7e7e"
DAY = datetime(2026, 11, 20, tzinfo=UTC)
CALL_ID = "3f2a9c1e-8b7d-4c2a-9f1e-2b3c4d5e6f70"


@pytest.fixture(autouse=True)
def no_warehouse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE", raising=False)


def load(source: Any) -> dict[str, Any]:
    result: dict[str, Any] = LoadCallsOperator(task_id="load", source=source, conn_id="warehouse").execute({})
    return result


def export(path: Any, **rendered: Any) -> dict[str, Any]:
    """Export the test window; ``rendered``: templated parameters as a template rendered them."""
    op = ExportCallsOperator(
        task_id="export", path=path, updated_after=DAY, updated_before=DAY + timedelta(hours=1)
    )
    for name, value in rendered.items():
        setattr(op, name, value)
    result: dict[str, Any] = op.execute({})
    return result


# -- LoadCallsOperator: what it is given to read -------------------------------------------------


def sources(tmp_path: Path) -> list[tuple[Any, str]]:
    (tmp_path / "folder").mkdir()
    return [
        ("", "source='' is empty"),
        (None, "source=None is empty"),
        ("None", "source='None' is empty"),
        ("  \n", "is empty"),
        ([], "source=\\[\\] names no export file"),
        ({"calls": 3}, "is not an export"),
        ("{'path': '/data/calls.jsonl', 'calls': 3}", "is the text of a Python value"),
        (str(tmp_path / "missing.jsonl"), "missing.jsonl does not exist"),
        (str(tmp_path / "folder"), "folder is a folder: give the export file in it"),
    ]


def test_a_source_that_names_no_export_is_refused(tmp_path):
    for source, why in sources(tmp_path):
        with pytest.raises(AirflowFailException, match=why) as caught:
            load(source)
        assert "ExportCallsOperator's output (export.output)" in str(caught.value), source


FILES = [
    ("calls.jsonl", f"number,token\n+14155550100,{SECRET}\n", "calls.jsonl, line 1: not JSON"),
    ("calls.jsonl", f"\n\n[1, 2, {json.dumps(SECRET)}]\n", "calls.jsonl, line 3: a JSON list, not a call object"),
    ("calls.jsonl", json.dumps({"token": SECRET, "status": "ended"}), "line 1: not a Vapi call \\(id: Field required\\)"),
    ("calls.jsonl", '{"id": "caf\xe9"}', "line 1: not JSON \\(not UTF-8\\)"),
    ("calls.parquet", json.dumps({"id": SECRET}), "calls.parquet is not a Parquet file"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "why"), FILES, ids=[f[2][:30] for f in FILES])
def test_a_file_that_is_not_an_export_is_refused_before_the_database(tmp_path, name, text, why):
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(AirflowFailException, match=why) as caught:
        load(str(path))
    assert SECRET not in str(caught.value)
    assert "export.output" in str(caught.value)


# -- ExportCallsOperator: its rendered path and filters ------------------------------------------


@pytest.mark.usefixtures("vapi_conn")
@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"call_type": "outbound"}, "call_type='outbound' is not one of inboundPhoneCall"),
        (
            {"call_type": "None"},
            r"call_type='None' is not one of .* \(a template that rendered to nothing\?\)",
        ),
        ({"assistant_id": "None"}, "assistant_id='None' is not an id"),
        ({"phone_number_id": "null"}, "phone_number_id='null' is not an id"),
        ({"campaign_id": "None"}, "campaign_id='None' is not an id"),
        ({"path": ""}, "path='' is empty"),
        ({"path": "None"}, "path='None' is empty"),
    ],
)
def test_export_parameters_that_rendered_wrong_fail_before_any_request(
    vapi_emulator, tmp_path, monkeypatch, kwargs, why
):
    monkeypatch.chdir(tmp_path)  # where an empty path would write
    vapi_emulator.seed_calls(3, DAY, DAY + timedelta(hours=1))
    vapi_emulator.clear_requests()
    with pytest.raises(AirflowFailException, match=why):
        export(**{"path": str(tmp_path / "out"), **kwargs})
    assert vapi_emulator.requests() == []
    assert list(tmp_path.rglob("*")) == []


@pytest.mark.usefixtures("vapi_conn")
def test_a_call_type_with_a_newline_from_a_template_still_filters(vapi_emulator, tmp_path):
    vapi_emulator.seed_calls(4, DAY, DAY + timedelta(minutes=30), call_type="inboundPhoneCall")
    vapi_emulator.seed_calls(6, DAY + timedelta(minutes=30), DAY + timedelta(hours=1))
    assert export(str(tmp_path), call_type="inboundPhoneCall\n")["calls"] == 4


# -- RunCampaignOperator: the customers file -----------------------------------------------------


def campaign(emu: Any, customers_path: Any) -> RunCampaignOperator:
    return RunCampaignOperator(
        task_id="campaign", customers_path=customers_path, name="file campaign",
        assistant_id=emu.assistant_id, phone_number_id=emu.phone_number_id,
    )  # fmt: skip


def customer_files(tmp_path: Path) -> list[tuple[Any, str]]:
    (tmp_path / "folder.csv").mkdir()
    files = {
        "bad.json": f'[{{"number": "+14155550100"}},\n {{"number": "{SECRET}",}}]',
        "bad.jsonl": f'{{"number": "+14155550100"}}\n\n{{"number": {SECRET}}}\n',
        "object.json": json.dumps({"customers": [{"number": "+14155550100"}]}),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "latin.csv").write_bytes("number,name\n+14155550100,Zo\xeb\n".encode("latin-1"))
    return [
        (str(tmp_path / "missing.csv"), "missing.csv does not exist"),
        ("None", "customers_path='None' is empty"),
        (str(tmp_path / "folder.csv"), "folder.csv is a folder"),
        (str(tmp_path / "bad.json"), "bad.json, line 2: not JSON"),
        (str(tmp_path / "bad.jsonl"), "bad.jsonl, line 3: not JSON"),
        (str(tmp_path / "object.json"), "object.json holds a JSON dict, not an array"),
        (str(tmp_path / "latin.csv"), "latin.csv is not UTF-8 text"),
    ]


def test_a_customers_file_that_cannot_be_read_is_a_clear_error(vapi_emulator, tmp_path):
    for path, why in customer_files(tmp_path):
        with pytest.raises(VapiInvalidRequestError, match=why) as caught:
            campaign(vapi_emulator, path).build_body({})
        message = str(caught.value)
        assert message.startswith("customers_path") and "nothing was sent to Vapi" in message, message
        assert SECRET not in message


def test_a_csv_saved_by_excel_with_a_bom_is_read(vapi_emulator, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("number,name\r\n+14155550100,Zoë\r\n".encode("utf-8-sig"))
    body = campaign(vapi_emulator, str(path)).build_body({})
    assert body["customers"] == [{"number": "+14155550100", "name": "Zoë"}]


# -- a recording link that is not a web link -----------------------------------------------------


@pytest.fixture
def vapi_redirecting_to(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[str], Any]]:
    """A real HTTP server in Vapi's place that answers every ``GET`` with a redirect to the location
    the test sets: the emulator's redirect always leads to its own storage."""
    asked: list[str] = []
    where = {"location": ""}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(302)
            self.send_header("Location", where["location"])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    conn = vapi_conn_json(url, "key", timeout=5, retry_max_wait=0.01, retry_total_seconds=5)
    monkeypatch.setenv("AIRFLOW_CONN_VAPI_REDIRECTING", conn)
    try:
        yield asked, where
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://storage.example.com/x.wav?token=abc"])
def test_a_recording_link_that_is_not_http_fails_at_once(vapi_redirecting_to, tmp_path, location):
    asked, where = vapi_redirecting_to
    where["location"] = location
    sink = tmp_path / "recording.wav"
    hook = VapiHook("vapi_redirecting")
    with pytest.raises(VapiResponseError, match=r"is not an http\(s\) link \((file|ftp) scheme\)") as caught:
        hook.download_recording(CALL_ID, lambda: sink.open("wb"))
    hook.close()
    assert asked == [f"/call/{CALL_ID}/mono-recording"], "asked once, not retried"
    assert "/etc/passwd" not in str(caught.value) and "token=abc" not in str(caught.value)


# -- through Airflow: failed once, never retried -------------------------------------------------


@pytest.mark.usefixtures("airflow_db", "vapi_conn")
def test_rendered_bad_input_fails_the_task_once_and_sends_nothing(vapi_emulator, tmp_path):
    emu = vapi_emulator
    emu.seed_calls(3, DAY, DAY + timedelta(hours=1))
    emu.clear_requests()
    dag_run = run_dag(
        "more_bad_input",
        f"""
        from airflow_provider_vapi.operators import ExportCallsOperator, LoadCallsOperator, RunCampaignOperator
        again = {{"retries": 2, "retry_delay": timedelta(seconds=0)}}
        with DAG("more_bad_input", start_date=datetime(2026, 1, 1), schedule=None,
                 params={{"kind": "outbound", "folder": None}}) as dag:
            ExportCallsOperator(task_id="bad_type", path={str(tmp_path)!r}, call_type="{{{{ params.kind }}}}",
                                updated_after="2026-11-20T00:00:00Z", updated_before="2026-11-20T01:00:00Z", **again)
            ExportCallsOperator(task_id="no_path", path="{{{{ params.folder }}}}",
                                updated_after="2026-11-20T00:00:00Z", updated_before="2026-11-20T01:00:00Z", **again)
            LoadCallsOperator(task_id="no_source", source="{{{{ params.folder }}}}", conn_id="warehouse", **again)
            RunCampaignOperator(task_id="no_file", customers_path={str(tmp_path / "gone.csv")!r},
                                assistant_id={emu.assistant_id!r}, phone_number_id={emu.phone_number_id!r}, **again)
        """,
    )
    tasks = ("bad_type", "no_path", "no_source", "no_file")
    assert states(dag_run) == {(t, -1): "failed" for t in tasks}
    assert tries(dag_run) == {(t, -1): 1 for t in tasks}, "bad input is final"
    assert emu.requests() == []
    assert list(tmp_path.iterdir()) == []
