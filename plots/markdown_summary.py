"""summary.md: the run's tables in Markdown, for a CI job summary."""
import os

from plots import results
from plots.findings import findings
from plots.summary_numbers import table_rows


def write_summary(doc, out_dir):
    ctx = doc["context"]
    lines = [f"## Concurrency harness: {ctx.get('profile', '?')} profile, {ctx.get('date', '')}", "",
             f"{ctx.get('machine', {}).get('cpu_model', '?')}, {ctx.get('num_cpus', '?')} cores; "
             f"commit `{ctx.get('git_commit', '?')}`. {ctx.get('note', '')}", ""]
    found = findings(doc)
    if found:
        lines += ["### Findings", ""] + [f"- {f['text']}" for f in found]
        lines += ["", "± is one standard deviation over the kept repetitions (a ratio's propagated from both runs).", ""]
    for scenario, headers, rows in table_rows(doc):
        lines += [f"### {scenario}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
        lines.append("")
    path = os.path.join(out_dir, "summary.md")
    results.write_file(path, "\n".join(lines))
    return path
