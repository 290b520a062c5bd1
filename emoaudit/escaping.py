"""One escaping function per kind of output, for every string that came from a model, a checkpoint, a path or
a results file: the terminal, XML (JUnit), Markdown (the model card), a SARIF artifact URI and HTML.

Hostile text stays inert: no terminal escape runs, no markup or link is made, no bidirectional override
reorders what is around it, and every output stays parseable. Depends on nothing of emoaudit's.
"""

from __future__ import annotations

import os
import re
import unicodedata
from urllib.parse import quote

from markupsafe import Markup
from markupsafe import escape as _html_escape
from rich.markup import escape as rich_escape

# Control (Cc), format (Cf: bidirectional overrides and isolates, zero-width characters), surrogate (Cs),
# line and paragraph separators (Zl, Zp): what moves the cursor, rings, reorders or hides text.
_INVISIBLE = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))


def _visible(c: str) -> str:
    """A control or format character as its Python escape (`\\x1b`, `\\u202e`), readable and inert."""
    return repr(c)[1:-1]


def _show(text: str, keep: str) -> str:
    return "".join(c if c in keep or unicodedata.category(c) not in _INVISIBLE else _visible(c) for c in text)


def terminal(text: str, *, one_line: bool = False) -> str:
    """Text safe to print on a terminal: every control and format character (ESC, OSC, BEL, a bidi override)
    shown as its Python escape; newlines and tabs kept unless `one_line` (an error line). Rich markup is not
    escaped here: a caller printing through Rich escapes the result with `rich.markup.escape`."""
    return _show(text, "" if one_line else "\n\t")


def console_text(text: str, *, one_line: bool = False) -> str:
    """`terminal`, with Rich markup escaped too: for text printed through a Rich console."""
    return rich_escape(terminal(text, one_line=one_line))


# What XML 1.0 allows: tab, newline, carriage return and these ranges. A NUL, an ESC or a lone surrogate
# (from a path that was not UTF-8) anywhere in the file makes every XML reader refuse all of it.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml(text: str) -> str:
    """Text an XML 1.0 document can hold (the serializer escapes `<`, `&` and quotes): each character XML
    forbids becomes U+FFFD, each bidi or other format character its visible escape."""
    return _NOT_XML.sub("\ufffd", _show(text, "\t\n\r"))


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~&!:])")
# GitHub's extended autolinks start at `www.`, at a scheme's `:` and around an e-mail's `@`; a backslash
# escape breaks the first two, but not an e-mail, which cmark-gfm finds in the text after escapes are
# resolved. An `@` set as code is text no autolink or @mention reads (tested with cmark-gfm).
_WWW_DOT = re.compile(r"(?i)(?<=www)\.")


def markdown(text: str) -> str:
    """Text safe inside a Markdown paragraph or table cell, as GitHub renders it: one line; control and
    format characters (a U+202E override) shown as escapes; every character Markdown or inline HTML would
    read backslash-escaped; no `https://…`, `www.…` or `a@b.c` becomes a link."""
    flat = " ".join(_show(text, "").split())
    escaped = _WWW_DOT.sub(r"\\.", _MARKDOWN_SPECIAL.sub(r"\\\1", flat))
    return escaped.replace("@", "`@`")


def uri_reference(reference: str) -> str:
    """A model reference as an RFC 3986 URI reference (a SARIF artifact `uri`): an absolute path as a
    `file:` URI (RFC 8089), anything else as a relative reference. Every byte that is not unreserved or `/`
    is percent-encoded, `:` included, so no first segment reads as a scheme (`2024-06-01T12:30/ckpt`); the
    bytes of a path that was not UTF-8 are kept as their percent-encoding."""
    try:
        raw = reference.encode("utf-8", "surrogateescape")  # a path's original bytes
    except UnicodeEncodeError:  # a lone surrogate no byte stands for
        raw = reference.encode("utf-8", "surrogatepass")
    path = quote(raw, safe="/")
    return "file://" + path if os.path.isabs(reference) else path


def html(text: str) -> Markup:
    """Text safe in HTML element content or a quoted attribute: `<`, `&` and quotes escaped, control and
    format characters (a bidi override) shown as escapes."""
    return _html_escape(_show(text, "\n\t"))
