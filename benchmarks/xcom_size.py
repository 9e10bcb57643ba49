"""How many bytes a finished call puts in Airflow's metadata database, per XCom form (issue #13).

A 1,000-call campaign runs against the emulator (a subprocess; every call a full conversation
with an analysis and two structured outputs), then each call is read back with ``VapiHook`` and
its XCom built the three ways ``xcom_detail`` allows:

* ``compact`` (the default): ids, status, outcome, times, costs, analysis, structured outputs by
  name, customer, metadata, dashboard URL;
* ``transcript``: that and the transcript;
* ``full``: the whole call as Vapi sent it (what a wait returned before ``xcom_detail``), which is
  what a user keeps who does ``hook.get_call(id).model_dump()`` in a ``@task``.

Sizes are of the JSON Airflow stores. The emulator's conversations are six lines long; a real
ten-minute call has ~150 messages, so ``full`` and ``transcript`` grow with the call while
``compact`` does not (``tests/test_results.py`` checks a ten-minute call stays under 4 KiB).

    .venv/bin/python benchmarks/xcom_size.py            # 1,000 calls (~1 minute)
    .venv/bin/python benchmarks/xcom_size.py --n 200
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import conn_env, header, percentile, quiet_airflow

FORMS = ("compact", "transcript", "full")
OUTPUTS = (
    {"name": "appointment_confirmed", "schema": {"type": "boolean"}},
    {"name": "callback", "schema": {"type": "object",
                                    "properties": {"wanted": {"type": "boolean"}, "day": {"type": "string"}}}},
)  # fmt: skip


def campaign(emu: Any, n: int) -> list[str]:
    """``n`` finished conversations of an assistant with two structured outputs; their ids."""
    ids = [emu.create_structured_output(o["name"], o["schema"])["id"] for o in OUTPUTS]
    with emu.client() as http:
        answer = http.post("/assistant", json={"name": "bench", "artifactPlan": {"structuredOutputIds": ids}})
        answer.raise_for_status()
        assistant = answer.json()["id"]
    calls = []
    for i in range(n):
        metadata = {"personId": f"p-{i:05d}", "campaign": "bench"}
        calls.append(emu.create_call("+14155550123", assistantId=assistant,
                                     assistantOverrides={"metadata": metadata})["id"])  # fmt: skip
    deadline = time.monotonic() + 300
    for call_id in calls:
        emu.wait_for(
            call_id, structured_outputs=True, analysis=True, timeout=max(1.0, deadline - time.monotonic())
        )
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="calls in the campaign")
    args = parser.parse_args()
    quiet_airflow()
    from airflow_provider_vapi.emulator.server import EmulatorProcess
    from airflow_provider_vapi.hooks import VapiHook
    from airflow_provider_vapi.results import call_result

    header("xcom_size")
    emulator = EmulatorProcess(speed=500.0, concurrency_limit=100_000, analysis_delay=0.5,
                               structured_output_delay=0.5, log_level="error")  # fmt: skip
    print(f"emulator: {' '.join(emulator.command[1:])}")
    sizes: dict[str, list[int]] = {form: [] for form in FORMS}
    with emulator as emu:
        os.environ.update(conn_env(emu.url, emu.api_key))
        ids = campaign(emu, args.n)
        hook = VapiHook()
        for call_id in ids:
            call = hook.get_call(call_id)
            for form in FORMS:
                sizes[form].append(len(json.dumps(call_result(call, form)).encode()))  # type: ignore[arg-type]
        hook.close()
    compact_total = sum(sizes["compact"])
    print(f"\n{args.n} calls; bytes of XCom per call, and for the whole campaign\n")
    print(f"{'xcom_detail':<12} {'mean':>8} {'p95':>8} {'max':>8} {'campaign':>12} {'vs compact':>11}")
    summary: dict[str, Any] = {"n": args.n}
    for form in FORMS:
        values = sizes[form]
        total = sum(values)
        ratio = total / compact_total
        print(f"{form:<12} {total / len(values):>8.0f} {percentile(values, 95):>8.0f} {max(values):>8} "
              f"{total / 1024:>10.1f}Ki {ratio:>10.1f}x")  # fmt: skip
        summary[form] = {"mean": round(total / len(values)), "max": max(values), "campaign_bytes": total}
    print(json.dumps({"benchmark": "xcom_size", **summary}))


if __name__ == "__main__":
    main()
