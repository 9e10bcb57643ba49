"""The paginated answers of the campaign routes: ``GET /v2/campaign``
(``CampaignSummaryPaginatedResponse``) and ``GET /v2/campaign/{id}/contacts``
(``CampaignContactPaginatedResponse``).

Both cost one pass over what they list and the rendering of one page: contacts are kept in
position order, so the default order needs no sorting at all, and ``sortBy=status`` is a stable
bucketing by status (the spec's declaration order), never a sort; a 10,000-contact campaign
read 1,000 at a time costs ten passes, not a quadratic walk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .campaign_records import CONTACT_STATUSES, CampaignRecord, Contact
from .listing import ContactQuery, ListQuery, page_meta


def campaigns_page(campaigns: Iterable[CampaignRecord], query: ListQuery) -> dict[str, Any]:
    """``GET /v2/campaign``: by ``createdAt`` (``sortOrder``, newest first by default; ties in
    creation order), filtered by ``id``, ``status`` and time, then page ``page`` of ``limit``;
    with ``contactCounters`` and ``callMetrics`` when ``includeCounters=true``."""
    (created_lo, created_hi), (updated_lo, updated_hi) = query.ms_ranges()
    wanted_id, wanted_status = query.equal.get("id"), query.equal.get("status")
    found = [
        c
        for c in campaigns
        if created_lo <= c.created_ms <= created_hi
        and updated_lo <= c.updated_ms <= updated_hi
        and wanted_id in (None, c.id)
        and wanted_status in (None, c.status)
    ]
    found.sort(key=lambda c: (c.created_ms, c.seq), reverse=query.sort_order == "DESC")
    start = (query.page - 1) * query.limit
    counters = query.flags.get("includeCounters", False)
    return {
        "results": [c.summary(counters) for c in found[start : start + query.limit]],
        "metadata": page_meta(len(found), query.page, query.limit, query.sort_order),
    }


def contacts_page(camp: CampaignRecord, query: ContactQuery) -> dict[str, Any]:
    """``GET /v2/campaign/{id}/contacts``: in position (upload, dial) order, or by status in the
    spec's order (then position); only the ``status`` values asked for, if any; then page
    ``page`` of ``limit``."""
    wanted = query.statuses
    ordered: Sequence[Contact]
    if query.sort_by == "status":
        buckets: dict[str, list[Contact]] = {s: [] for s in CONTACT_STATUSES if wanted is None or s in wanted}
        for contact in camp.contacts:
            bucket = buckets.get(contact.status)
            if bucket is not None:
                bucket.append(contact)
        ordered = [contact for bucket in buckets.values() for contact in bucket]
    elif wanted is not None:
        ordered = [contact for contact in camp.contacts if contact.status in wanted]
    else:
        ordered = camp.contacts
    start = (query.page - 1) * query.limit
    return {
        "results": [contact.to_wire() for contact in ordered[start : start + query.limit]],
        "metadata": page_meta(len(ordered), query.page, query.limit),
    }
