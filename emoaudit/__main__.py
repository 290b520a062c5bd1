"""`python -m emoaudit` and the `emoaudit` console script."""

import sys


def main() -> None:
    """Run the command line; Ctrl-C while it imports (transformers takes seconds) is one line, exit 130."""
    try:
        from emoaudit.cli import main as cli_main
    except KeyboardInterrupt:
        print("emoaudit: interrupted before any work started", file=sys.stderr)
        raise SystemExit(130) from None
    cli_main()


if __name__ == "__main__":
    main()
