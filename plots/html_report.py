"""report.html: one self-contained page, the figures embedded, the tables and the run's context."""
import base64
import html
import os

from plots import results
from plots.findings import findings
from plots.summary_numbers import table_rows


def html_table(title, headers, rows):
    return (f"<h2>{html.escape(title)} table</h2><table><tr>" +
            "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>" +
            "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows) +
            "</table>")


def write_html(doc, figures, out_dir, title):
    ctx = doc["context"]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px;margin-bottom:2em}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
             "img{max-width:100%;border:1px solid #eee;margin:1em 0}table.context td{text-align:left}"
             ".findings li{margin-bottom:.6em}.runs{color:#777;font-size:12px}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p>{html.escape(ctx.get('note', ''))}</p>"]
    found = findings(doc)
    if found:
        parts.append("<h2>findings</h2><ul class='findings'>")
        parts += [f"<li>{html.escape(f['text'])}<br><span class='runs'>{html.escape(', '.join(f['runs']))}</span></li>"
                  for f in found]
        parts.append("</ul><p class='runs'>± is one standard deviation over the kept repetitions (a ratio's "
                     "propagated from both runs); a slope's is its standard error.</p>")
    tables = table_rows(doc)
    # A profile's top functions go beside its flame graph; the other tables after the figures.
    beside = {"echo_profiles": [t for t in tables if t[0].startswith("profile: ")]}
    for name, png in figures:
        with open(png, "rb") as f:
            data = base64.b64encode(f.read()).decode("ascii")
        parts.append(f"<h2>{html.escape(name.replace('_', ' '))}</h2>"
                     f"<img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
        parts += [html_table(*t) for t in beside.get(name, [])]
    placed = [t for ts in beside.values() for t in ts]
    parts += [html_table(*t) for t in tables if t not in placed]
    parts.append("<h2>context</h2><table class='context'>")
    for key, value in sorted(ctx.items()):
        parts.append(f"<tr><td>{html.escape(key)}</td><td>{html.escape(str(value))}</td></tr>")
    parts.append("</table></body></html>")
    path = os.path.join(out_dir, "report.html")
    results.write_file(path, "\n".join(parts))
    return path
