"""The one error type users see: a bad input or an unmet precondition, told in one line."""


class EmoauditError(Exception):
    """An input or environment problem the user can fix; the CLI prints it and exits with status 2."""
