"""The ``gaffer`` command line (Typer + Rich). Thin: parse, call, print."""
