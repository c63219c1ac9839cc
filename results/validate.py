#!/usr/bin/env python3
"""Validate harness result files against results/schema.json.

Usage: validate.py RESULTS.json [RESULTS.json ...]
Prints one line per file; exits 0 when all are valid, 1 when one is not, 2 on unreadable input.
"""
import json
import pathlib
import sys

import jsonschema

SCHEMA = pathlib.Path(__file__).resolve().with_name("schema.json")


def validate(path, schema):
    """Returns an error message, or None when the file is valid."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        return f"cannot read: {e}"
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        return f"{len(errors)} schema error(s); first at {where}: {first.message}"
    return None


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    bad = 0
    for path in argv[1:]:
        error = validate(path, schema)
        print(f"{path}: {'valid' if error is None else error}")
        bad += error is not None
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
