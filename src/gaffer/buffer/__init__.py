"""The burst buffer: holds a project's triggers in Redis when it floods, drains them fairly.

Where things are (README "Burst buffer" is the operator's view):

* :mod:`~gaffer.buffer.gate` decides at trigger time (inside :class:`gaffer.runs.intake.RunIntake`)
  whether a submission passes straight to the run engine or is held;
* :mod:`~gaffer.buffer.store` (with the Lua scripts in ``lua/``) is the buffer itself: every
  operation is one atomic script;
* :mod:`~gaffer.buffer.drainer` replays held requests through the run engine, rotating fairly
  over organizations and projects; :mod:`~gaffer.buffer.replay` does one batch;
* :mod:`~gaffer.buffer.sweeps` puts back entries whose drainer died, and counts stale entries;
* :mod:`~gaffer.buffer.access` answers reads and cancels of runs wherever they are;
* :mod:`~gaffer.buffer.metrics` exports the gauges and counters.
"""
