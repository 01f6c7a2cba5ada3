"""rtvmm's control API over its unix socket, for the Python integration tests."""
import json
import http.client
import socket


class UnixConn(http.client.HTTPConnection):
    """An HTTP/1.1 connection to a unix socket (20 s timeout)."""

    def __init__(self, path):
        super().__init__("localhost", timeout=20)
        self.path_ = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(20)
        self.sock.connect(self.path_)


def call(sock, method, path, body=None):
    """One request on the API socket `sock` with the JSON document `body` (None: no body):
    (status, headers as a dict, body bytes)."""
    c = UnixConn(sock)
    if body is None:
        c.request(method, path)
    else:
        c.request(method, path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, dict(r.getheaders()), body
