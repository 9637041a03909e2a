"""`python -m finoa` runs the CLI."""

from finoa.cli import app

if __name__ == "__main__":
    app()
