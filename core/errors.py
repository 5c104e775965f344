"""User-facing errors.

Every mistake a user can make (a missing file, a bad config key, a wrong grid) is raised as
:class:`UserError` with a one-line message that names the file or setting and the problem.  The CLI
turns it into ``s2kd: error: <message>`` on stderr and exit status 2 -- never a traceback.
"""

from __future__ import annotations

import os


class UserError(Exception):
    """A problem with the user's input; printed as one line, exit status 2."""

    exit_code = 2

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        message = " ".join(str(message).split())  # always one line
        if path is not None:
            message = f"{os.fspath(path)}: {message}"
        super().__init__(message)


class DataError(UserError):
    """Input data that cannot be read or does not have the expected layout."""


class ConfigError(UserError):
    """A configuration key or value that is unknown, of the wrong type or out of range."""
