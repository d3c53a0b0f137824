"""The base of every error that is the user's to fix (bad config, unreachable service, bad input).

Command-line entry points print these as one line and exit non-zero; anything else is a bug
and keeps its traceback.
"""


class NtpmonError(Exception):
    """An error with a message fit to show a user as it is."""
