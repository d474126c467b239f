"""The base of errors a user causes and can fix (bad input, missing set-up).

The CLI prints these as one line without a traceback (exit code 1); anything else is a bug and
keeps its traceback. Subclasses live next to the code that raises them.
"""

from __future__ import annotations


class UserError(Exception):
    """An error whose message tells the user what to change."""
