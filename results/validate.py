#!/usr/bin/env python3
"""Validate harness result files against results/schema.json and the files' own declarations.

Usage: validate.py RESULTS.json [RESULTS.json ...]
The schema fixes the structure; the metric part comes from each file's context.metrics and
context.scenarios: every declared metric of an ok repetition is a number in its declared range (a
histogram, where it merges as one), each scenario's `always` metrics are there, and a failed
repetition holds no figure.
Prints one line per file; exits 0 when all are valid, 1 when one is not, 2 on unreadable input.
"""
import copy
import json
import pathlib
import sys

import jsonschema

SCHEMA = pathlib.Path(__file__).resolve().with_name("schema.json")


def with_declarations(schema, doc):
    """The schema with its metric part derived from the file's declarations (none: unchanged, and
    the schema's own `required` reports the missing context.metrics)."""
    context = doc.get("context") if isinstance(doc, dict) else None
    declared = context.get("metrics") if isinstance(context, dict) else None
    scenarios = context.get("scenarios") if isinstance(context, dict) else None
    if not isinstance(declared, dict) or not isinstance(scenarios, dict):
        return schema
    schema = copy.deepcopy(schema)
    ranges = {}
    for key, d in declared.items():
        if not isinstance(d, dict):
            continue
        if d.get("merge") == "histogram":
            ranges[key] = {"$ref": "#/$defs/histogram"}
        else:
            ranges[key] = {"type": "number", "minimum": d.get("minimum", 0)}
            if isinstance(d.get("maximum"), (int, float)):
                ranges[key]["maximum"] = d["maximum"] + 1e-6 * max(1, abs(d["maximum"]))  # rounding
    ok_iteration = {"properties": {"status": {"const": "ok"}, "run_type": {"const": "iteration"}}}
    rules = schema["$defs"]["entry"]["allOf"]
    rules.append({"if": ok_iteration, "then": {"properties": ranges}})
    rules.append({"if": {"properties": {"status": {"const": "failed"}}},
                  "then": {"not": {"anyOf": [{"required": [k]} for k in sorted(declared)]}}})
    for name, info in scenarios.items():
        keys = info.get("metrics", []) if isinstance(info, dict) else []
        always = [k for k in keys if isinstance(declared.get(k), dict) and declared[k].get("always")]
        condition = copy.deepcopy(ok_iteration)
        condition["properties"]["scenario"] = {"const": name}
        rules.append({"if": condition, "then": {"required": always}})
    return schema


def validate(path, schema):
    """Returns an error message, or None when the file is valid."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        return f"cannot read: {e}"
    validator = jsonschema.Draft202012Validator(with_declarations(schema, doc))
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
