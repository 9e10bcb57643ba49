"""Structured outputs: extracting them from calls that already happened.

:mod:`.api` (``StructuredOutputApi(hook)``: read one, run one), :mod:`.extraction` (the run that is
never sent twice, and waiting for its results), :mod:`.operator` (``RunStructuredOutputOperator``).
"""
