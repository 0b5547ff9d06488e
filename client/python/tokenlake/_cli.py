"""The `tokenlake` command of the Python package: the workspace's command, run by the native
module in this process (the same code as the binary, with the same exit codes)."""

import sys

from . import _native


def main() -> None:
    _native.main(sys.argv)


if __name__ == "__main__":
    main()
