"""The one error type users see: a bad input or an unmet precondition, told in one line."""


class EmoauditError(Exception):
    """An input or environment problem the user can fix; the CLI prints it and exits with status 2."""


def input_error_line(exc: EmoauditError | OSError) -> str:
    """The one line a user reads of an input error: the message, or an OSError's reason and file."""
    if isinstance(exc, EmoauditError):
        return str(exc)
    # An unwritable --out, a full disk: the user's to fix, not a crash. filename2 is the destination of a
    # rename (an atomic write's target), the path the user gave.
    where = exc.filename2 or exc.filename or ""
    return f"{exc.strerror or exc}: {where}".rstrip(": ")
