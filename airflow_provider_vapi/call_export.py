"""``ExportCallsOperator``: every call Vapi changed in a window, to the team's own storage.

Not only the calls a DAG placed: inbound calls, campaign and dashboard calls too. The window is
the run's data interval by default and is matched on ``updatedAt``, so a call lands in the
interval in which it last changed (a call still live at the end of one interval is exported again,
ended, in a later one; :class:`~.warehouse.LoadCallsOperator` keeps the newest). Listing is
:meth:`.VapiHook.iter_call_pages` (one page in memory, pages past 1,000 by time windows), files
are :mod:`~.call_files`' (named by the window, committed whole), recordings are
:mod:`~.recordings`'.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator

from airflow_provider_vapi.call_files import (
    FORMATS,
    NOTHING,
    Committing,
    Format,
    check_format,
    check_location,
    file_name,
    storage_path,
)
from airflow_provider_vapi.downloads import check_kinds
from airflow_provider_vapi.exceptions import VapiError
from airflow_provider_vapi.hooks import VapiHook
from airflow_provider_vapi.paging import iso, parse_param_ts
from airflow_provider_vapi.recordings import RecordingReport, copy_recordings
from airflow_provider_vapi.rendering import RenderingGate

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

T = TypeVar("T")
CALL_TYPES = ("inboundPhoneCall", "outboundPhoneCall", "webCall", "vapi.websocketCall")
PATH_FIX = "give the folder to export to: s3://bucket/vapi/calls, file:///data/vapi or /data/vapi"
ID_FILTERS = ("assistant_id", "phone_number_id", "campaign_id")


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
    A rerun or backfill of an interval replaces its file; a backfill of consecutive intervals
    exports each call once, in the interval of its last change. Returns a small summary:
    ``{"path", "format", "calls", "updated_after", "updated_before", "recordings"}``.

    :param path: the folder (templated): ``s3://bucket/vapi/calls``, ``file:///data/vapi`` or ``/data/vapi``.
    :param updated_after: the window's start, inclusive (templated; default ``data_interval_start``).
    :param updated_before: the window's end, exclusive (templated; default ``data_interval_end``).
        A window reaching past now is cut at now (a rerun later exports the rest).
    :param format: ``"jsonl"`` (each call whole, secrets redacted) or ``"parquet"`` (one flat row
        per call, :mod:`~.call_rows`; needs the ``parquet`` extra).
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

    def window(self, context: Context) -> tuple[datetime, datetime]:
        """``[after, before)``: the parameters, else the run's data interval; cut at now."""
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
        now = datetime.now(UTC)
        if end > now:
            self.log.warning(
                "updated_before %s is in the future: exporting up to now (%s)", iso(end), iso(now)
            )
            end = now
        if start >= end:
            raise AirflowFailException(
                f"The window [{iso(start)}, {iso(end)}) is empty: updated_after must be before "
                "updated_before (and before now)."
            )
        return start, end

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
        hook = VapiHook(self.vapi_conn_id)
        report = RecordingReport() if self.include_recordings else None
        out = Committing(root / file_name(start, end, fmt), fmt)
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
