"""The fault simulation (issue #23, part 6): seeded, randomized schedules of faults against the
operators' own code, judged by the emulator's own records.

One *schedule* (:mod:`.plan`, from a seed) is one dag run of one task (``PlaceCallOperator`` mapped
over rows, one batch, or ``RunCampaignOperator``): try sets separated by clears (minutes to days
later, the upstream list reordered, grown, shrunk or edited, Vapi's clock skewed up to ±10 min),
each map index's tries meeting faults on any request (lost answer, an answer 1x-6x slower than
the timeout, 5xx, 429, garbage 2xx), a kill before or after any request, and two workers on one
task. :mod:`.driver` runs it (``execute()`` with a context built like Airflow's, or a real
``dag.test()``: :mod:`.dagtest`); :mod:`.faults` injects the faults at the HTTP client boundary;
:mod:`.invariants` judges the outcome from the emulator's calls and campaigns alone, by the
person (the number), never by the provider's key. A failing schedule names its seed, its steps and
a one-line replay command (:mod:`.runner`).
"""
