"""Prints every YAML document of the given files as one JSON object, {path: [document, ...]},
for tests that check deployment manifests from Rust (which has no YAML parser in this project).

    python dump_yaml.py FILE.yaml...
"""

import json
import sys

import yaml


def main() -> int:
    out = {}
    for path in sys.argv[1:]:
        with open(path) as f:
            out[path] = [d for d in yaml.safe_load_all(f) if d is not None]
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
