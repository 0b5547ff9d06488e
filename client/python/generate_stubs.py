"""Generates the tokenlake.v1 gRPC stubs into tokenlake/v1/ with grpcio-tools.

The native crate's build script runs it whenever the package is built (`pip install`, a
wheel), so the stubs ship inside the package. To use the source tree directly, run it once:

    python client/python/generate_stubs.py
"""

import pathlib
import sys

from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "schemas" / "proto"
PROTO = PROTO_ROOT / "tokenlake" / "v1" / "tokenlake.proto"


def main() -> int:
    out = HERE
    # protoc writes tokenlake/v1/tokenlake_pb2*.py under `out`, inside this package.
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--pyi_out={out}",
            str(PROTO),
        ]
    )
    if code != 0:
        print(f"protoc failed on {PROTO}", file=sys.stderr)
        return code
    (out / "tokenlake" / "v1" / "__init__.py").touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
