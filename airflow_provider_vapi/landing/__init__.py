"""Landing what calls learned in the team's own storage and warehouse.

:mod:`.export` (``ExportCallsOperator``: a window of calls to files), :mod:`.files` (the files:
names, streamed writes, reads), :mod:`.rows` (one row per call: the table's shape),
:mod:`.recordings` (the audio, archived before its link expires), :mod:`.warehouse`
(``LoadCallsOperator``: files into any SQL table).
"""
