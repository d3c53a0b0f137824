"""Regenerate every generated file: the protobuf/gRPC modules and schema.sql.

Run through ``make generate``. The outputs are committed; tests regenerate them into a
temporary directory and fail when the committed copies are stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from ntpmon.devtools.codegen import write_protobuf, write_schema_sql  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT, help="tree to write into")
    args = parser.parse_args()
    for path in write_protobuf(ROOT / "proto", args.out / "src" / "ntpmon" / "pb"):
        print(f"wrote {path.relative_to(args.out)}")
    schema = write_schema_sql(args.out / "schema.sql")
    print(f"wrote {schema.relative_to(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
