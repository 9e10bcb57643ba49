"""Exporting every call of a window to a file: ``ExportCallsOperator`` against what a user writes today.

The emulator (a subprocess) is seeded with N ended calls (realistic content, ~5 KB of JSON each)
whose ``updatedAt`` are spread over one day, then each contender exports that day, in its own
fresh process so that its peak RSS is its own:

* ``ours jsonl``: ``ExportCallsOperator(format="jsonl").execute({})`` (``VapiHook.iter_call_pages``:
  one page of raw calls in memory at a time, streamed into ``calls_<after>_<before>.jsonl``);
* ``ours parquet``: the same with ``format="parquet"`` (a row group per page);
* ``hook list_calls``: ``VapiHook().list_calls(updatedAtGe=..., updatedAtLt=...)`` (every call in
  memory as a pydantic model, paging past 1,000), then each
  ``call.model_dump(mode="json", by_alias=True, exclude_unset=True)`` written as JSON Lines;
* ``sdk calls.list``: Vapi's SDK (``vapi_server_sdk``) ``calls.list(limit=1000, updated_at_ge=...,
  updated_at_lt=...)`` written the same way. It has no way past 1,000 calls: the row says how many
  of the N it returned.

Each size is seeded into an emulator reset first (so the list route scans only that size's calls).
Reported per contender and size: distinct calls in the file, wall seconds of the export (imports
and start-up excluded), calls/s, peak RSS of the process (``ru_maxrss``, imports included) and its
RSS before the export, file size, ``GET /call`` requests, and time and peak RSS relative to
``ours jsonl`` at the same size. The aim checked: ours stays under 300 MiB whatever N.

    .venv/bin/python benchmarks/export_calls.py                             # 10,000 and 100,000 calls (~11 minutes)
    .venv/bin/python benchmarks/export_calls.py --n 10000 --sizes 1000,10000  # quick (~3 minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import conn_env, header, quiet_airflow

CONTENDERS = ("ours_jsonl", "ours_parquet", "hook_list_calls", "sdk_calls_list")
LABELS = {
    "ours_jsonl": "ours jsonl",
    "ours_parquet": "ours parquet",
    "hook_list_calls": "hook list_calls",
    "sdk_calls_list": "sdk calls.list",
}
AIM_MIB = 300.0


# ------------------------------------------------------------------------------------------------
# The exporting side (its own process: python export_calls.py --child CONTENDER ...)
# ------------------------------------------------------------------------------------------------


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def write_models(calls: list[Any], target: Path) -> None:
    """What a user writes: each pydantic call dumped to JSON, one per line."""
    with target.open("w") as out:
        for call in calls:
            out.write(json.dumps(call.model_dump(mode="json", by_alias=True, exclude_unset=True)) + "\n")


def distinct_ids(target: Path) -> tuple[int, int]:
    """(records, distinct ids) in an export file."""
    if target.suffix == ".parquet":
        import pyarrow.parquet as pq

        ids = pq.read_table(target, columns=["id"]).column("id").to_pylist()
        return len(ids), len(set(ids))
    seen: set[str] = set()
    records = 0
    with target.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                records += 1
                seen.add(json.loads(raw)["id"])
    return records, len(seen)


def child(args: argparse.Namespace) -> dict[str, Any]:
    after, before = datetime.fromisoformat(args.after), datetime.fromisoformat(args.before)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.child == "sdk_calls_list":
        try:
            from vapi import Vapi
        except ImportError:
            return {"installed": False}
        sdk = Vapi(token=args.api_key, base_url=args.url)
        target = out / "calls.jsonl"
        base = rss_mib()
        t0 = time.perf_counter()
        write_models(sdk.calls.list(limit=1000, updated_at_ge=after, updated_at_lt=before), target)
    elif args.child == "hook_list_calls":
        from airflow_provider_vapi.hooks import VapiHook

        target = out / "calls.jsonl"
        base = rss_mib()
        t0 = time.perf_counter()
        hook = VapiHook()
        write_models(hook.list_calls(updatedAtGe=after, updatedAtLt=before), target)
        hook.close()
    else:
        from airflow_provider_vapi.operators import ExportCallsOperator

        fmt = args.child.removeprefix("ours_")
        if fmt == "parquet":
            import pyarrow.parquet  # noqa: F401  (imported before the baseline, as jsonl's json is)
        base = rss_mib()
        t0 = time.perf_counter()
        operator = ExportCallsOperator(
            task_id="export", path=str(out), updated_after=after, updated_before=before, format=fmt
        )
        operator.execute({})  # type: ignore[arg-type]
        (target,) = out.glob(f"calls_*.{fmt}")
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    records, distinct = distinct_ids(target)
    return {
        "installed": True,
        "records": records,
        "calls": distinct,
        "seconds": seconds,
        "calls_per_s": distinct / seconds if seconds else 0.0,
        "peak_rss_mib": peak,
        "base_rss_mib": base,
        "bytes": target.stat().st_size,
    }


# ------------------------------------------------------------------------------------------------
# The orchestrating side
# ------------------------------------------------------------------------------------------------


def run_child(emu: Any, contender: str, after: datetime, before: datetime, tmp: Path) -> dict[str, Any]:
    out = tmp / contender
    command = [
        sys.executable, __file__, "--child", contender, "--url", emu.url, "--api-key", emu.api_key,
        "--after", after.isoformat(), "--before", before.isoformat(), "--out", str(out),
    ]  # fmt: skip
    emu.clear_requests()
    env = {**os.environ, **conn_env(emu.url, emu.api_key)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    shutil.rmtree(out, ignore_errors=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{contender} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["list_requests"] = len(emu.requests(method="GET", path="/call"))
    return result


def fmt_row(cells: list[str], widths: list[int]) -> str:
    return " ".join(
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def print_table(rows: list[dict[str, Any]]) -> None:
    titles = ["contender", "N", "exported", "seconds", "calls/s", "peak RSS MiB", "RSS before MiB",
              "file MiB", "GET /call", "time x ours", "RSS x ours"]  # fmt: skip
    widths = [16, 7, 8, 8, 8, 12, 14, 9, 9, 11, 10]
    print(fmt_row(titles, widths))
    ours = {r["n"]: r for r in rows if r["contender"] == "ours_jsonl" and r.get("installed")}
    for r in rows:
        label = LABELS[r["contender"]]
        if not r.get("installed"):
            print(f"{label:<16} {r['n']:>7} not installed (uv pip install -e '.[bench]')")
            continue
        base = ours.get(r["n"])
        exported = f"{r['calls']}" if r["records"] == r["calls"] else f"{r['calls']}*"
        cells = [
            label, str(r["n"]), exported, f"{r['seconds']:.1f}", f"{r['calls_per_s']:.0f}",
            f"{r['peak_rss_mib']:.0f}", f"{r['base_rss_mib']:.0f}", f"{r['bytes'] / 2**20:.0f}",
            str(r["list_requests"]),
            f"{r['seconds'] / base['seconds']:.2f}x" if base else "-",
            f"{r['peak_rss_mib'] / base['peak_rss_mib']:.2f}x" if base else "-",
        ]  # fmt: skip
        print(fmt_row(cells, widths))
    if any(r.get("installed") and r["records"] != r["calls"] for r in rows):
        print("* the file holds duplicate calls (records > distinct ids)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="the largest size (default 100000)")
    parser.add_argument("--sizes", default="10000,100000",
                        help="sizes to run, comma-separated (default 10000,100000; --n is added if missing)")  # fmt: skip
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    for hidden in ("--url", "--api-key", "--after", "--before", "--out"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    return parser.parse_args()


def export_window() -> tuple[datetime, datetime]:
    """A day ending two days ago (the operator cuts a window at now; none of it is near now)."""
    before = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    return before - timedelta(days=1), before


def print_progress(contender: str, result: dict[str, Any]) -> None:
    if result.get("installed"):
        print(f"  {LABELS[contender]:<16} {result['calls']:>7} calls in {result['seconds']:.1f}s, "
              f"peak RSS {result['peak_rss_mib']:.0f} MiB", flush=True)  # fmt: skip
    else:
        print(f"  {LABELS[contender]:<16} not installed", flush=True)


def export_all(sizes: list[int], contenders: list[str]) -> list[dict[str, Any]]:
    """Per size: a reset emulator seeded with that many calls, then each contender's export."""
    from airflow_provider_vapi.emulator.server import EmulatorProcess

    emulator = EmulatorProcess(speed=1.0, request_log_size=100_000, log_level="error")
    print(f"emulator: {' '.join(emulator.command[1:])}")
    after, before = export_window()
    print(
        f"sizes={sizes}; window [{after.isoformat()}, {before.isoformat()}); one fresh process per contender"
    )
    rows: list[dict[str, Any]] = []
    with emulator as emu, tempfile.TemporaryDirectory(prefix="vapi-bench-export-") as tmp:
        for n in sizes:
            emu.reset()
            t0 = time.perf_counter()
            emu.seed_calls(n, after, before, timeout=max(120.0, n / 1000))
            print(f"\nN={n}: seeded in {time.perf_counter() - t0:.1f}s", flush=True)
            for contender in contenders:
                result = run_child(emu, contender, after, before, Path(tmp))
                rows.append({"contender": contender, "n": n, **result})
                print_progress(contender, result)
    return rows


def check_aim(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Ours' peak RSS under ``AIM_MIB`` and flat in N: the aim line, and its figures for the JSON."""
    ours = [r for r in rows if r["contender"] == "ours_jsonl" and r.get("installed")]
    if not ours:
        return {}
    small, large = ours[0], ours[-1]
    peak = max(r["peak_rss_mib"] for r in ours)
    flat = large["peak_rss_mib"] / small["peak_rss_mib"]
    aim: dict[str, Any] = {
        "max_peak_rss_mib": round(peak, 1),
        "flat_ratio": round(flat, 3),
        "met": peak < AIM_MIB,
    }
    parquet = [r for r in rows if r["contender"] == "ours_parquet" and r.get("installed")]
    extra = ""
    if parquet:
        p_flat = parquet[-1]["peak_rss_mib"] / parquet[0]["peak_rss_mib"]
        p_peak = max(r["peak_rss_mib"] for r in parquet)
        extra = f"; parquet: max {p_peak:.0f} MiB, x{p_flat:.2f}"
        aim["parquet"] = {"max_peak_rss_mib": round(p_peak, 1), "flat_ratio": round(p_flat, 3)}
    print(
        f"\naim: ours peak RSS < {AIM_MIB:.0f} MiB and flat in N: jsonl max {peak:.0f} MiB, "
        f"RSS at N={large['n']} / RSS at N={small['n']} = {flat:.2f}{extra} -> "
        f"{'met' if peak < AIM_MIB else 'NOT met'}"
    )
    return aim


def print_json(sizes: list[int], aim: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    keys = (
        "calls",
        "records",
        "seconds",
        "calls_per_s",
        "peak_rss_mib",
        "base_rss_mib",
        "bytes",
        "list_requests",
    )
    results = [
        {"contender": r["contender"], "n": r["n"], "installed": r.get("installed", False),
         **{k: (round(r[k], 3) if isinstance(r[k], float) else r[k]) for k in keys if k in r}}
        for r in rows
    ]  # fmt: skip
    print(json.dumps({"benchmark": "export_calls", "sizes": sizes, "aim": aim, "results": results}))


def main() -> None:
    args = parse_args()
    quiet_airflow()

    if args.child:
        print(json.dumps(child(args)), flush=True)
        return

    header("export_calls")
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()} | {args.n})
    sizes = [s for s in sizes if s <= args.n]
    contenders = [c for c in args.contenders.split(",") if c]
    rows = export_all(sizes, contenders)
    print()
    print_table(rows)
    aim = check_aim(rows)
    print_json(sizes, aim, rows)


if __name__ == "__main__":
    main()
