"""``vapi-emulator``: serve the Vapi emulator from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .constants import (
    ADMIN_PREFIX,
    ASSISTANT_ID,
    CONCURRENCY_MODES,
    CUSTOMER_ID,
    DEFAULT_ANALYSIS_DELAY_S,
    DEFAULT_API_KEY,
    DEFAULT_CONCURRENCY_LIMIT,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_PRESIGNED_URL_TTL_S,
    DEFAULT_PUBLIC_KEY,
    DEFAULT_REQUEST_LOG_BYTES,
    DEFAULT_REQUEST_LOG_SIZE,
    DEFAULT_STRUCTURED_OUTPUT_DELAY_S,
    PHONE_NUMBER_ID,
)
from .faults import parse_rate_spec
from .server import URL_LINE_PREFIX, bind_socket, build_runtime, socket_url


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="vapi-emulator",
        description="A local emulator of Vapi's call API (POST/GET/PATCH/DELETE /call, assistants, "
        "phone numbers, structured outputs, monitor.controlUrl) for tests and demos.",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"interface to listen on (default {DEFAULT_HOST})")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)"
    )
    p.add_argument(
        "--api-key", default=DEFAULT_API_KEY, help=f"bearer key accepted (default {DEFAULT_API_KEY})"
    )
    p.add_argument(
        "--public-key",
        default=DEFAULT_PUBLIC_KEY,
        help="the account's public key: the bearer key a call's monitor.controlUrl (listenUrl) wants when "
        f"its assistant sets monitorPlan.controlAuthenticationEnabled (default {DEFAULT_PUBLIC_KEY})",
    )
    p.add_argument("--speed", type=float, default=1.0, help="time factor: 10 runs calls ten times faster")
    p.add_argument("--state", metavar="FILE", help="keep calls in this SQLite file (default: memory)")
    p.add_argument(
        "--concurrency-limit", type=int, default=DEFAULT_CONCURRENCY_LIMIT, help="live calls at once"
    )
    p.add_argument(
        "--concurrency-mode",
        choices=CONCURRENCY_MODES,
        default="queue",
        help="over the limit: wait queued, or end at once "
        "(call.start.error-subscription-concurrency-limit-reached)",
    )
    _add_delay_options(p)
    _add_fault_options(p)
    p.add_argument(
        "--request-log-size",
        type=int,
        default=DEFAULT_REQUEST_LOG_SIZE,
        help=f"requests the admin request log keeps, the oldest dropped first (default {DEFAULT_REQUEST_LOG_SIZE})",
    )
    p.add_argument(
        "--request-log-bytes",
        type=int,
        default=DEFAULT_REQUEST_LOG_BYTES,
        help=f"bytes of memory the request log's entries hold at most (default {DEFAULT_REQUEST_LOG_BYTES})",
    )
    p.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    return p


def _add_delay_options(p: argparse.ArgumentParser) -> None:
    """How long after a call ends its analysis and its structured outputs appear."""
    p.add_argument(
        "--analysis-delay",
        type=float,
        default=DEFAULT_ANALYSIS_DELAY_S,
        help="seconds (at speed 1) between ended and analysis",
    )
    p.add_argument(
        "--structured-output-delay",
        type=float,
        default=DEFAULT_STRUCTURED_OUTPUT_DELAY_S,
        help="seconds (at speed 1) between ended (or POST /structured-output/run) and "
        "artifact.structuredOutputs",
    )
    p.add_argument(
        "--presigned-url-ttl",
        type=float,
        default=DEFAULT_PRESIGNED_URL_TTL_S,
        help=f"real seconds (not divided by --speed) a presigned recording URL stays valid "
        f"(default {DEFAULT_PRESIGNED_URL_TTL_S:g})",
    )


def _add_fault_options(p: argparse.ArgumentParser) -> None:
    """The options of fault injection: random faults, and Vapi's clock skewed."""
    p.add_argument(
        "--fault-rate",
        default="",
        metavar="SPEC",
        help="random faults: ACTION=RATE,... with ACTION a status (429, 500, 502, 503), drop, delay:S, "
        "late:S, stall:S or garbage:html|null|truncated, e.g. 429=0.1,500=0.05",
    )
    p.add_argument(
        "--fault-match",
        default="*",
        metavar="'METHOD PATH'",
        help="requests --fault-rate applies to, e.g. 'POST /call' or '/call*' (default: every Vapi route)",
    )
    p.add_argument("--fault-seed", type=int, default=None, help="seed of the random faults (repeatable runs)")
    p.add_argument(
        "--clock-offset",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="run Vapi's clock this many seconds ahead of this machine's (negative: behind); every "
        "timestamp and time filter uses it (default 0)",
    )


def _runtime(args: argparse.Namespace) -> Any:
    """The :class:`~.runtime.Runtime` the parsed options describe; ValueError on a bad one."""
    return build_runtime(
        api_key=args.api_key,
        public_key=args.public_key,
        speed=args.speed,
        concurrency_limit=args.concurrency_limit,
        concurrency_mode=args.concurrency_mode,
        analysis_delay=args.analysis_delay,
        structured_output_delay=args.structured_output_delay,
        state_file=args.state,
        fault_rates=parse_rate_spec(args.fault_rate),
        fault_match=args.fault_match,
        fault_seed=args.fault_seed,
        request_log_size=args.request_log_size,
        request_log_bytes=args.request_log_bytes,
        presigned_url_ttl=args.presigned_url_ttl,
        clock_offset=args.clock_offset,
    )


def main(argv: list[str] | None = None) -> int:
    """Start serving; prints the URL, the accepted key and the seeded ids first."""
    args = parser().parse_args(argv)
    try:
        runtime = _runtime(args)
    except ValueError as exc:
        print(f"vapi-emulator: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from .app import create_app

    sock = bind_socket(args.host, args.port)
    url = socket_url(sock)
    lines = [
        f"{URL_LINE_PREFIX}{url}",
        f"  API key:         {args.api_key}  (Authorization: Bearer {args.api_key})",
        f"  public key:      {args.public_key}  (locked monitor URLs: monitorPlan.*AuthenticationEnabled)",
        f"  assistant id:    {ASSISTANT_ID}",
        f"  phone number id: {PHONE_NUMBER_ID}",
        f"  customer id:     {CUSTOMER_ID}",
        f"  speed:           {args.speed:g}x",
        f"  concurrency:     {args.concurrency_limit} ({args.concurrency_mode})",
        f"  analysis delay:  {args.analysis_delay:g}s, structured outputs {args.structured_output_delay:g}s "
        "(at speed 1)",
        f"  recordings:      presigned URLs valid {args.presigned_url_ttl:g}s (real time)",
        f"  clock offset:    {args.clock_offset:+g}s (Vapi's clock against this machine's)",
        f"  state:           {args.state or 'memory'}",
        f"  faults:          {args.fault_rate or 'none'}",
        f"  request log:     last {args.request_log_size} requests, {args.request_log_bytes} bytes, "
        "secrets redacted, no body kept without the key",
        f"  admin API:       {url}{ADMIN_PREFIX}/ (requests, reset, faults, config, calls, calls/inbound, "
        "calls/seed; the same bearer key, but health)",
    ]
    print("\n".join(lines), flush=True)
    config = uvicorn.Config(create_app(runtime), log_level=args.log_level, access_log=False, lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        runtime.engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
