"""The one error a user sees as one line: a mistake in what they asked, or a state that forbids it."""

from __future__ import annotations


class TroupeError(Exception):
    """A user's mistake or a state that forbids the request; the message says what and why."""
