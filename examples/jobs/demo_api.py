"""A small paginated JSON API for the YAML-job examples: ``/data?page=&page_size=`` → ``{items, has_next}``.

    .venv/bin/python examples/jobs/demo_api.py &          # http://127.0.0.1:8765 (--port to change)
    .venv/bin/etl-platform run --config examples/jobs/json_api_events.yaml

250 events (``id``, ``kind``, ``meta.at``, ``amount``), the shape seed 003's ``JSONAPIReader`` pages through. With
``EVENTS_API_TOKEN`` set, requests must carry ``Authorization: Bearer <token>`` (401 otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

EVENTS = [{"id": i, "kind": "click" if i % 2 else "view", "meta": {"at": f"2024-06-01T10:{i % 60:02d}:00Z"},
           "amount": i * 1.5} for i in range(1, 251)]


class DemoApi(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        token = os.environ.get("EVENTS_API_TOKEN")
        if token and self.headers.get("Authorization") != f"Bearer {token}":
            return self._send(401, {"error": "a bearer token is required"})
        if url.path != "/data":
            return self._send(404, {"error": f"no such endpoint {url.path}; try /data?page=1&page_size=100"})
        query = parse_qs(url.query)
        page, size = int(query.get("page", ["1"])[0]), int(query.get("page_size", ["100"])[0])
        return self._send(200, {"items": EVENTS[(page - 1) * size: page * size], "has_next": page * size < len(EVENTS)})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), DemoApi)
    print(f"demo API on http://127.0.0.1:{args.port}/data", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
