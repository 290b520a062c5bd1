"""emoaudit: audit the emotion representations of open-weight causal language models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("emoaudit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
