"""Reporting: the release-gating policy and its findings, the HTML report, comparison of two audits."""
