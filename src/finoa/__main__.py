"""`python -m finoa` runs the CLI."""

from finoa.cli import app

app()
