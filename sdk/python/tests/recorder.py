"""A real local HTTP server that records what the collector sends and answers as scripted."""

import http.server
import json
import threading


class Recorder:
    def __init__(self):
        self.requests = []  # (path, headers, body bytes)
        self.script = []  # answers to give in order: ("status", code, headers) | ("close",)
        self.fallback = ("status", 202, {})
        self.port = 0
        self._server = None
        self._lock = threading.Lock()

    @property
    def base_url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with recorder._lock:
                    answer = recorder.script.pop(0) if recorder.script else recorder.fallback
                    if answer[0] == "close":
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    recorder.requests.append((self.path, self.headers, body))
                status, headers = answer[1], answer[2]
                payload = json.dumps({"accepted": 1, "ids": [], "correlationid": "x", "sampled": True}
                                     if status == 202 else {"error": {"code": "Scripted", "message": "scripted %d" % status}}).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def lines(self, suffix=""):
        with self._lock:
            bodies = [body for path, _, body in self.requests if path.endswith(suffix)]
        return [json.loads(line) for body in bodies for line in body.decode("utf-8").splitlines() if line.strip()]
