"""The ``/docs`` page: the OpenAPI schema as one plain HTML page, with nothing loaded from the network.

FastAPI's own Swagger UI and ReDoc pages fetch their JavaScript and CSS from a CDN and stay blank on a
machine without internet access, as screening machines often are.
"""

from __future__ import annotations

import html
import json
from typing import Any

STYLE = "body{font-family:sans-serif;max-width:60em;margin:2em auto}code,pre{background:#f4f4f4}"


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    rows = "".join(
        f"<li><code>{html.escape(code)}</code> {html.escape(resp.get('description', ''))}</li>"
        for code, resp in op.get("responses", {}).items()
    )
    text = html.escape(op.get("description") or op.get("summary") or "")
    return f"<h2><code>{method.upper()} {html.escape(path)}</code></h2><p>{text}</p><ul>{rows}</ul>"


def api_docs_html(schema: dict[str, Any]) -> str:
    """A self-contained page: each endpoint with its answers, then the full schema as JSON."""
    info = schema.get("info", {})
    paths = schema.get("paths", {})
    ops = "".join(_operation(path, method, op) for path, methods in paths.items() for method, op in methods.items())
    title = html.escape(f"{info.get('title', 'API')} {info.get('version', '')}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title} API</title><style>{STYLE}</style></head>"
        f"<body><h1>{title} API</h1><p>{html.escape(info.get('description', ''))}</p>"
        f"<p>Machine-readable schema: <a href='/openapi.json'>/openapi.json</a>.</p>{ops}"
        f"<h2>Schema</h2><pre>{html.escape(json.dumps(schema, indent=2))}</pre></body></html>"
    )
