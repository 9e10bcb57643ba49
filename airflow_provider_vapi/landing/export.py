"""``ExportCallsOperator``: every call Vapi changed in a window, to the team's own storage.

Not only the calls a DAG placed: inbound calls, campaign and dashboard calls too. The window is
the run's data interval by default and is matched on ``updatedAt``, so a call lands in the
interval in which it last changed (a call still live at the end of one interval is exported again,
ended, in a later one; :class:`~.warehouse.LoadCallsOperator` keeps the newest). Listing is
:meth:`.VapiHook.iter_call_pages` (one page in memory, pages past 1,000 by time windows), files
are :mod:`~.files`' (named by the window, committed whole), recordings are
:mod:`~.recordings`'.

**The window rule: a window is exported once it has settled**, at ``updated_before`` +
:data:`~.skew.CLOCK_SKEW` (10 minutes) by Airflow's clock, never before, and never cut short.
``updatedAt`` is stamped by Vapi's clock, which may be up to :data:`~.skew.CLOCK_SKEW` off
Airflow's either way (or a change may become visible after the stamp it carries). Once Airflow's
clock passes ``updated_before + CLOCK_SKEW``, every change Vapi stamps before ``updated_before``
has been made and is listed, and every change still to come is stamped at or after
``updated_before``: it lands in a later window. So a call's final state always lands in some
window's file, consecutive windows still share no call version, and one window is one file (its
name is its window, whenever it runs). A window that has closed but not settled is waited for
(deferred to the triggerer until it settles, or, not deferrable, waited for in the worker: at
most :data:`~.skew.CLOCK_SKEW` for a run scheduled at the end of its interval); a window ending
more than :data:`~.skew.CLOCK_SKEW` in the future is refused (:func:`check_settled`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_vapi.exceptions import VapiError
from airflow_provider_vapi.hook.core import VapiHook
from airflow_provider_vapi.landing.files import (
    FORMATS,
    NOTHING,
    Committing,
    Format,
    check_format,
    check_location,
    file_name,
    storage_path,
    sweep_temporaries,
    writer_key,
)
from airflow_provider_vapi.landing.recordings import RecordingReport, copy_recordings
from airflow_provider_vapi.rendering.gate import RenderingGate
from airflow_provider_vapi.waiting.task import default_deferrable
from airflow_provider_vapi.wire.downloads import check_kinds
from airflow_provider_vapi.wire.paging import iso, parse_param_ts
from airflow_provider_vapi.wire.skew import CLOCK_SKEW

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

T = TypeVar("T")
CALL_TYPES = ("inboundPhoneCall", "outboundPhoneCall", "webCall", "vapi.websocketCall")
PATH_FIX = "give the folder to export to: s3://bucket/vapi/calls, file:///data/vapi or /data/vapi"
ID_FILTERS = ("assistant_id", "phone_number_id", "campaign_id")


class WindowNotSettledError(AirflowFailException, ValueError):
    """The window ends too far in the future to be waited for: export it once it has settled."""


def settles_at(end: datetime) -> datetime:
    """When the window ending at ``end`` (exclusive) may be exported: ``end`` + the clock-skew
    margin, by Airflow's clock (see the module's docstring)."""
    return end + CLOCK_SKEW


def check_settled(start: datetime, end: datetime, now: datetime) -> timedelta:
    """How long to wait before ``[start, end)`` may be exported (zero: now). A window ending more
    than :data:`~.skew.CLOCK_SKEW` after ``now`` is refused: it has not closed, and the waiting
    would be longer than any scheduled run needs (it starts at the end of its interval)."""
    ready = settles_at(end)
    if end - now > CLOCK_SKEW:
        raise WindowNotSettledError(
            f"updated_before={iso(end)} is in the future: the window [{iso(start)}, {iso(end)}) has "
            f"not closed. A window is exported once, under its own name, when it has settled: from "
            f"{iso(ready)} (updated_before + {CLOCK_SKEW}, the margin for Vapi's clock). Run it from "
            "then on, or give an updated_before in the past (a run scheduled at the end of its data "
            "interval waits for its window by itself); nothing was sent to Vapi."
        )
    return max(ready - now, timedelta(0))


def date_time_trigger(moment: datetime) -> Any:
    """Airflow's ``DateTimeTrigger`` (the standard provider's on Airflow 3, the core one on 2.x)."""
    try:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger
    except ImportError:  # Airflow 2.x without the standard provider
        from airflow.triggers.temporal import DateTimeTrigger  # type: ignore[no-redef]
    return DateTimeTrigger(moment=moment)


def read_ahead(pages: Iterator[T]) -> Iterator[T]:
    """``pages``, the next one fetched (in a thread) while the current one is written: Vapi's time
    to answer overlaps the time to write, and memory holds two pages at most."""
    with ThreadPoolExecutor(1, thread_name_prefix="vapi-export-listing") as pool:
        upcoming = pool.submit(next, pages, None)
        while (page := upcoming.result()) is not None:
            upcoming = pool.submit(next, pages, None)
            yield page


class ExportCallsOperator(RenderingGate, BaseOperator):
    """Export the calls Vapi changed in a window (default: the run's data interval) to storage.

    Writes ``<path>/calls_<after>_<before>.<format>`` through Airflow's object storage, so the same
    task writes to a local folder, ``s3://``, ``gs://`` or ``abfs://`` (with ``storage_conn_id``).
    A window is exported once it has settled, ``updated_before`` + 10 minutes (the clock-skew
    margin, :mod:`~.skew`): a run scheduled at the end of its interval waits that long first. A
    rerun or backfill of an interval replaces its file; a backfill of consecutive intervals
    exports each version of a call once, in the interval of that change; the temporary files of a
    killed export are removed by the next export into the folder. Returns a small summary:
    ``{"path", "format", "calls", "updated_after", "updated_before", "recordings"}``.

    :param path: the folder (templated): ``s3://bucket/vapi/calls``, ``file:///data/vapi`` or ``/data/vapi``.
    :param updated_after: the window's start, inclusive (templated; default ``data_interval_start``).
    :param updated_before: the window's end, exclusive (templated; default ``data_interval_end``).
        Exported from ``updated_before`` + 10 minutes on (waited for); more than 10 minutes in
        the future: refused, never cut short.
    :param format: ``"jsonl"`` (each call whole, secrets redacted) or ``"parquet"`` (one flat row
        per call, :mod:`~.rows`; needs the ``parquet`` extra).
    :param include_recordings: also copy each ended call's recordings into ``<path>/recordings/``.
    :param recording_kinds: which recordings: ``"mono"`` (default), ``"stereo"``, ``"customer"``,
        ``"assistant"``.
    :param assistant_id: only this assistant's calls (filtered by Vapi).
    :param phone_number_id: only calls on this Vapi phone number (filtered by Vapi).
    :param campaign_id: only this campaign's calls (filtered here: Vapi's list has no such filter).
    :param call_type: only calls of this type (``inboundPhoneCall``, ``outboundPhoneCall`` ...).
    :param storage_conn_id: the Airflow connection for ``path`` (``aws_default`` ...), if any.
    :param recording_concurrency: recordings downloaded at once.
    :param vapi_conn_id: the Airflow connection of the Vapi account.
    :param deferrable: wait for a window to settle in the triggerer, holding no worker slot
        (default: ``[operators] default_deferrable``); otherwise the worker waits (at most
        20 minutes: longer waits are refused).
    """

    template_fields: Sequence[str] = (
        "path",
        "updated_after",
        "updated_before",
        "assistant_id",
        "phone_number_id",
        "campaign_id",
        "call_type",
        "storage_conn_id",
    )
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        path: str,
        updated_after: str | datetime | None = None,
        updated_before: str | datetime | None = None,
        format: str = "jsonl",
        include_recordings: bool = False,
        recording_kinds: str | Sequence[str] = ("mono",),
        assistant_id: str | None = None,
        phone_number_id: str | None = None,
        campaign_id: str | None = None,
        call_type: str | None = None,
        storage_conn_id: str | None = None,
        recording_concurrency: int = 4,
        vapi_conn_id: str = VapiHook.default_conn_name,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if format not in FORMATS:
            raise ValueError(f"format={format!r} is not one of {', '.join(map(repr, FORMATS))}.")
        if call_type is not None and call_type not in CALL_TYPES and "{{" not in call_type:
            raise ValueError(f"call_type={call_type!r} is not one of {', '.join(CALL_TYPES)}.")
        self.path = path
        self.updated_after = updated_after
        self.updated_before = updated_before
        self.format = format
        self.include_recordings = include_recordings
        self.recording_kinds = check_kinds(recording_kinds)
        self.assistant_id = assistant_id
        self.phone_number_id = phone_number_id
        self.campaign_id = campaign_id
        self.call_type = call_type
        self.storage_conn_id = storage_conn_id
        self.recording_concurrency = recording_concurrency
        self.vapi_conn_id = vapi_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def window(self, context: Context) -> tuple[datetime, datetime]:
        """``[after, before)``: the parameters, else the run's data interval."""
        start = parse_param_ts(self.updated_after or context.get("data_interval_start"), "updated_after")
        end = parse_param_ts(self.updated_before or context.get("data_interval_end"), "updated_before")
        given = self.updated_after or self.updated_before
        if start is None or end is None or (not given and start == end):
            raise AirflowFailException(
                "This run has no data interval to export (a manual run, or a cron schedule, which "
                "Airflow 3 runs with CronTriggerTimetable: its intervals are empty). Schedule with "
                "CronDataIntervalTimetable('@daily', timezone='UTC') (or CronTriggerTimetable(..., "
                "interval=timedelta(days=1))), or give updated_after and updated_before."
            )
        if start >= end:
            raise AirflowFailException(
                f"The window [{iso(start)}, {iso(end)}) is empty: updated_after must be before "
                "updated_before."
            )
        return start, end

    def wait_until_settled(self, start: datetime, end: datetime) -> None:
        """Return once ``[start, end)`` has settled: at once, after waiting in the worker, or never
        (deferred: :meth:`execute_complete` runs the export once the trigger fires)."""
        wait = check_settled(start, end, datetime.now(UTC))
        if not wait:
            return
        self.log.info(
            "The window [%s, %s) settles at %s (updated_before + %s, the margin for Vapi's clock): "
            "waiting %.0f s %s",
            iso(start),
            iso(end),
            iso(settles_at(end)),
            CLOCK_SKEW,
            wait.total_seconds(),
            "in the triggerer" if self.deferrable else "in the worker",
        )
        if self.deferrable:
            self.defer(trigger=date_time_trigger(settles_at(end)), method_name="execute_complete")
        while (left := settles_at(end) - datetime.now(UTC)) > timedelta(0):
            time.sleep(min(left.total_seconds(), 60.0))

    def check_filters(self) -> None:
        """The rendered filters, before any request: ``call_type`` one of :data:`CALL_TYPES` (or
        empty: every type); an id filter that rendered to ``None`` is refused, not sent."""
        call_type = self.call_type.strip() if isinstance(self.call_type, str) else self.call_type
        if call_type not in (None, "") and call_type not in CALL_TYPES:
            nothing = " (a template that rendered to nothing?)" if str(call_type).lower() in NOTHING else ""
            raise AirflowFailException(
                f"call_type={str(call_type)[:80]!r} is not one of {', '.join(CALL_TYPES)}{nothing}: give "
                "one of them, or leave call_type out to export every type; nothing was sent to Vapi."
            )
        self.call_type = call_type
        for name in ID_FILTERS:
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, str) or value.strip().lower() in ("none", "null")
            ):
                raise AirflowFailException(
                    f"{name}={str(value)[:80]!r} is not an id (a template that rendered to nothing?): "
                    f"give the id, or leave {name} out to export every call; nothing was sent to Vapi."
                )

    def _wanted(self, call: dict[str, Any]) -> bool:
        if self.campaign_id and call.get("campaignId") != self.campaign_id:
            return False
        return not self.call_type or call.get("type") == self.call_type

    def execute(self, context: Context) -> dict[str, Any]:
        fmt: Format = check_format(self.format)
        self.check_filters()
        start, end = self.window(context)
        root = storage_path(check_location(self.path, "path", PATH_FIX), self.storage_conn_id or None)
        self.wait_until_settled(start, end)
        return self._export(context, fmt, root, start, end)

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Resumed from the triggerer once the window settled: the export (checked again)."""
        return self.execute(context)

    def _export(
        self, context: Context, fmt: Format, root: Any, start: datetime, end: datetime
    ) -> dict[str, Any]:
        key = writer_key(context)
        for name in sweep_temporaries(root, key):
            self.log.info("Removed %s, left by an export that did not finish", name)
        hook = VapiHook(self.vapi_conn_id)
        report = RecordingReport() if self.include_recordings else None
        out = Committing(root / file_name(start, end, fmt), fmt, key)
        self.log.info("Exporting Vapi calls updated in [%s, %s) to %s", iso(start), iso(end), out.target)
        try:
            pages = hook.iter_call_pages(
                updated_from=start,
                updated_to=end,
                assistantId=self.assistant_id or None,
                phoneNumberId=self.phone_number_id or None,
            )
            for page in read_ahead(pages):
                calls = [call for call in page if self._wanted(call)]
                out.write(calls)
                if report is not None:
                    copy_recordings(
                        hook, calls, root, self.recording_kinds, report, self.recording_concurrency
                    )
            out.commit()
        except BaseException:
            out.abort()
            raise
        finally:
            hook.close()
        return self._summary(out, fmt, start, end, report)

    def _summary(
        self, out: Committing, fmt: Format, start: datetime, end: datetime, report: RecordingReport | None
    ) -> dict[str, Any]:
        self.log.info("Exported %d calls to %s", out.count, out.target)
        summary = {
            "path": str(out.target),
            "format": fmt,
            "calls": out.count,
            "updated_after": iso(start),
            "updated_before": iso(end),
            "recordings": report.to_xcom() if report else None,
        }
        if report is None:
            return summary
        self.log.info("Recordings: %s", report.to_xcom())
        if report.without:
            self.log.info(
                "%d ended calls have no recording (e.g. %s)", report.without, report.samples["without"]
            )
        if report.failed:
            raise VapiError(
                f"{report.failed} recordings could not be copied (the calls file is written; a retry "
                f"copies only what is missing): {'; '.join(report.errors)}"
            )
        return summary
