"""Type hints of the native module (client/python/native)."""

from typing import List

def main(argv: List[str]) -> None:
    """Runs the `tokenlake` command line `argv` (the program's name first) and ends the process
    with its exit code."""

def version() -> str:
    """The package's version."""
