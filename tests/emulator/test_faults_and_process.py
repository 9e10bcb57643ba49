"""Fault injection, the admin request log, the CLI, and a restart on a --state file."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from airflow_provider_vapi.emulator import ASSISTANT_ID, CUSTOMER_ID, DEFAULT_API_KEY, PHONE_NUMBER_ID
from airflow_provider_vapi.emulator.faults import parse_rate_spec
from airflow_provider_vapi.emulator.server import EmulatorProcess
from tests.emulator.conftest import create, error, get_call


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_status_faults_answer_without_processing(emu, http, status):
    emu.fault(status, method="POST", path="/call", retry_after=2)
    answer = http.post("/call", json=emu.call_body())
    error(answer, status)
    assert ("Retry-After" in answer.headers) == (status == 429)
    if status == 429:
        assert answer.headers["Retry-After"] == "2"
    assert emu.calls() == []  # nothing was created
    create(http, emu.call_body())  # used up: the next one goes through
    assert [(r["status"], r["fault"]) for r in emu.requests(method="POST", path="/call")] == [
        (status, str(status)),
        (201, None),
    ]


def test_a_lost_answer_creates_the_call_but_breaks_the_transport(emu, http):
    emu.fault("drop", method="POST", path="/call")
    with pytest.raises(httpx.TransportError):
        http.post("/call", json=emu.call_body(assistantOverrides={"metadata": {"key": "k-9"}}))
    calls = emu.calls()
    assert len(calls) == 1 and calls[0]["assistantOverrides"]["metadata"] == {"key": "k-9"}
    listed = http.get("/call").json()  # reconciling by listing finds it
    assert [c["id"] for c in listed] == [calls[0]["id"]]
    assert emu.requests(method="POST")[0]["fault"] == "drop"


def test_a_slow_answer(emu, http):
    emu.fault("delay:0.4", method="GET", path="/call*")
    started = time.monotonic()
    assert http.get("/call").status_code == 200
    assert time.monotonic() - started >= 0.4
    with pytest.raises(httpx.ReadTimeout):
        emu.fault("delay:1", path="/call")
        http.get("/call", timeout=0.2)


def test_a_scripted_sequence_then_normal(emu, http):
    emu.faults([429, 503, "ok", "500"], method="GET", path="/call")
    assert [http.get("/call").status_code for _ in range(5)] == [429, 503, 200, 500, 200]
    assert emu.active_faults() == []
    assert http.get("/assistant").status_code == 200  # other routes unaffected


def test_rate_faults_are_seeded_and_roughly_at_rate(vapi_emulator_factory):
    emu = vapi_emulator_factory(
        fault_rates=parse_rate_spec("503=0.3"), fault_seed=7, fault_match="GET /assistant"
    )
    with emu.client() as http:
        codes = [http.get("/assistant").status_code for _ in range(200)]
        assert http.get("/phone-number").status_code == 200
    assert 30 < codes.count(503) < 90 and set(codes) == {200, 503}
    emu.reset()  # back to the start-up rules
    assert [r["rate"] for r in emu.active_faults()] == [0.3]
    emu.clear_faults()
    with emu.client() as http:
        assert all(http.get("/assistant").status_code == 200 for _ in range(20))


def test_fault_specs_are_checked(emu):
    with pytest.raises(httpx.HTTPStatusError):
        emu.fault("explode")
    with pytest.raises(ValueError):
        parse_rate_spec("429")
    assert parse_rate_spec("429=0.1,drop=0.01,delay:2=0.5") == [
        ("429", 0.1),
        ("drop", 0.01),
        ("delay:2", 0.5),
    ]


def test_request_log_and_reset(emu, http):
    http.post("/call", json=emu.call_body())
    http.get("/call", params={"limit": 3})
    emu.calls()  # admin requests are not recorded
    log = emu.requests()
    assert [(r["method"], r["path"]) for r in log] == [("POST", "/call"), ("GET", "/call")]
    assert log[0]["body"] == emu.call_body() and log[0]["status"] == 201
    assert log[1]["query"] == {"limit": "3"} and log[1]["body"] is None
    assert log[0]["timestamp"].endswith("Z")
    assert emu.requests(path="/assistant") == []
    emu.clear_requests()
    assert emu.requests() == []
    emu.reset()
    assert emu.calls() == [] and http.get("/assistant").json()[0]["id"] == ASSISTANT_ID


def test_cli_prints_url_key_and_ids():
    proc = EmulatorProcess(port=0)
    handle = proc.start()
    try:
        output = "\n".join(proc.output)
        assert handle.url.startswith("http://127.0.0.1:")
        for expected in (handle.url, DEFAULT_API_KEY, ASSISTANT_ID, PHONE_NUMBER_ID, CUSTOMER_ID):
            assert expected in output
        assert handle.health()["status"] == "ok"
    finally:
        proc.stop()
    assert proc.process is not None and proc.process.returncode is not None


def test_cli_help_and_bad_flags():
    helped = subprocess.run(
        [sys.executable, "-m", "airflow_provider_vapi.emulator", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and "--fault-rate" in helped.stdout and "--state" in helped.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "airflow_provider_vapi.emulator", "--fault-rate", "teapot=1"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "unknown fault action" in bad.stderr


def test_a_restart_on_the_state_file_keeps_calls_going(tmp_path):
    state = tmp_path / "vapi.sqlite"
    first = EmulatorProcess(port=0, state_file=state, speed=20)
    emu = first.start()
    port = emu.url.rsplit(":", 1)[1]
    with emu.client() as http:
        holding = create(http, emu.call_body("+15550100006"))
        talking = create(http, emu.call_body("+15550001234"))
        assistant = http.post("/assistant", json={"name": "kept"}).json()
    emu.wait_for(holding["id"], status="in-progress")
    first.kill()  # no clean shutdown
    time.sleep(0.5)  # meanwhile the conversation would have ended
    second = EmulatorProcess(port=int(port), state_file=state, speed=20)
    emu = second.start()
    try:
        with emu.client() as http:
            assert get_call(http, holding["id"])["status"] == "in-progress"
            finished = get_call(http, talking["id"])
            assert finished["status"] == "ended"  # its timeline went on while we were down
            assert http.get(f"/assistant/{assistant['id']}").status_code == 200
            httpx.post(holding["monitor"]["controlUrl"], json={"type": "end-call"}).raise_for_status()
            assert get_call(http, holding["id"])["endedReason"] == "manually-canceled"
            analysed = emu.wait_for(talking["id"], analysis=True)
            assert analysed["endedAt"] == finished["endedAt"]
    finally:
        second.stop()


def test_connections_to_the_emulator_send_without_nagle_delay():
    """Every accepted connection has ``TCP_NODELAY`` under plain asyncio (no uvloop, as in the
    lowest-dependency leg). Without it each answer (headers, then body) waited for the client's
    delayed ACK: 44 ms a request instead of 3 ms, and the compat suite's 1,150-call listing test
    took 55 s instead of 4."""
    import asyncio
    import socket

    from airflow_provider_vapi.emulator.server import bind_socket

    async def nodelay_of_an_accepted_connection() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=bind_socket("127.0.0.1", 0))
        host, port = server.sockets[0].getsockname()[:2]
        _, writer = await asyncio.open_connection(host, port)
        try:
            return await asyncio.wait_for(seen, 10)
        finally:
            writer.close()
            server.close()

    loop = asyncio.SelectorEventLoop()  # plain asyncio, never uvloop
    try:
        assert loop.run_until_complete(nodelay_of_an_accepted_connection()) != 0
    finally:
        loop.close()
