"""Jinja templates of the report: a package so that they install inside emoaudit."""
