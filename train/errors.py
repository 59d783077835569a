"""The one error of user input: every layer raises it, the ``lgagent`` group prints it.

A bad argument or unusable input exits with code 2 and one line on stderr
(``Error: ...``), never a traceback.
"""

from __future__ import annotations

import click


class BadInput(click.ClickException):
    """Unusable user input: one-line message, exit code 2."""

    exit_code = 2
