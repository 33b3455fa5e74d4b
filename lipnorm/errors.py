"""The one exception type that carries a user-facing message."""


class LipnormError(Exception):
    """A problem the user can fix (bad flag, missing file, wrong shape, ...).

    The command line prints its message as one line and exits with status 2,
    so every message names the problem and how to fix it.
    """
