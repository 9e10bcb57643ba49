"""Waiting for calls to end: the task side, the triggerer side, and the one shared poll.

* the task: :mod:`.task` (``CallWaitMixin``: poke, reschedule or defer; which outcomes fail),
  :mod:`.sensor` (``CallStatusSensor``), :mod:`.completion` (when a wait is over, its event);
* the triggerer: :mod:`.trigger` (``CallStatusTrigger``), :mod:`.subscription` (one trigger's
  interest), :mod:`.shared_poll` (which watcher serves a trigger);
* the shared poll: :mod:`.watcher` (one change-feed poll per connection and event loop),
  :mod:`.feed` (reading it), :mod:`.cursor` (where it starts), :mod:`.census` (calls that
  vanished), :mod:`.direct_reads` (a trigger's own reads).
"""
