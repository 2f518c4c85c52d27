"""A local HTTP server on 127.0.0.1 for tests of code that downloads (no network), and the
fixtures ``file_server`` and ``unmix_home`` built on it (registered in ``tests/conftest.py``)."""

from __future__ import annotations

import http.server
import io
import threading
import zipfile


class FileServer:
    """Serves ``self.files`` (name → bytes) on 127.0.0.1 and logs the paths asked for in
    ``self.requests``; ``/cut/<name>`` announces the full length but sends half, then closes
    (a broken connection)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                cut = self.path.startswith("/cut/")
                data = server.files.get(self.path.removeprefix("/cut/").lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if cut else data)
                if cut:
                    self.wfile.flush()
                    self.connection.close()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def make_zip(members: dict[str, bytes]) -> bytes:
    """A zip of ``members`` (name → content), built in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()
