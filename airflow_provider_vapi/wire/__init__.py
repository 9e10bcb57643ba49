"""The wire layer's HTTP half: how a request is sent, retried, paged and checked.

:mod:`.transport` (the generator protocol every operation follows, its two drivers, the errors),
:mod:`.retries` (when to try again), :mod:`.paging` (reading ``GET /call`` past its cap),
:mod:`.ids` (ids checked before they go into a path), :mod:`.skew` (Vapi's clock is not ours),
:mod:`.control` (a live call's control URL), :mod:`.downloads` (recordings),
:mod:`.connection` (the connection and its form). Beside it in the same layer:
:mod:`airflow_provider_vapi.models`, :mod:`airflow_provider_vapi.exceptions` and
:mod:`airflow_provider_vapi.secrets`. Nothing here imports a layer above (``ARCHITECTURE.md``).
"""
