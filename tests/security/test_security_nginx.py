"""Behind a real nginx with upstream keep-alive (issue 15, finding 4): a body-less POST to a path
other than /api/publish left lws reading a body, and the next request nginx sent on that
upstream connection, another client's publish, got a 502 after 10 s. Debian's nginx
(deploy/install-deps.sh), loopback only, on free ports.

Run alone: WSGATE_BIN=build-test/gateway/wsgate python3 -m unittest -v test_security_nginx
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from wsgate_harness import NO_RATE_LIMIT, GatewayTestCase, T, free_port, uniq, wait_until  # noqa: E402

KEY = "sec-nginx-key-5e6f7a8b9c0d1e2f"

CONF = """
worker_processes 1;
daemon off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log info;
%(user)s
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
    upstream wsgate {
        server 127.0.0.1:%(upstream)d;
        keepalive 4;
    }
    server {
        listen 127.0.0.1:%(port)d;
        location / {
            proxy_pass http://wsgate;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 10s;
        }
    }
}
"""


def nginx_binary():
    for p in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if p and os.path.exists(p):
            return p
    raise AssertionError("nginx is not installed (deploy/install-deps.sh installs Debian's nginx)")


class NginxKeepAliveTest(GatewayTestCase):
    def start_nginx(self, upstream):
        d = tempfile.mkdtemp(prefix="wsgate-nginx-")
        self.addCleanup(shutil.rmtree, d, True)
        port = free_port()
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(CONF % {"dir": d, "port": port, "upstream": upstream,
                            "user": "user root;" if os.geteuid() == 0 else ""})
        proc = subprocess.Popen([nginx_binary(), "-p", d, "-c", conf], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

        def stop():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.addCleanup(stop)

        def up():
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/healthz")
                return c.getresponse().status == 200
            except OSError:
                return False
        wait_until(up, T(10), what="nginx answering")
        return port

    def request(self, port, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=T(15))
        try:
            t0 = time.monotonic()
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, data, time.monotonic() - t0
        finally:
            c.close()

    def bodyless(self, port, method, path):
        """method path with neither Content-Length nor Transfer-Encoding (http.client would add
        "Content-Length: 0"). Returns (status, seconds)."""
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", port), timeout=T(15))
        try:
            s.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (method.encode(), path.encode()))
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        finally:
            s.close()
        return int(buf.split(b" ", 2)[1]), time.monotonic() - t0

    def test_body_less_post_does_not_poison_the_upstream_connection(self):
        d = tempfile.mkdtemp(prefix="wsgate-nginx-keys-")
        self.addCleanup(shutil.rmtree, d, True)
        keys = os.path.join(d, "keys")
        with open(keys, "w") as f:
            f.write(KEY + "\n")
        redis = self.start_redis()
        gw = self.start_gateway(redis.port, NO_RATE_LIMIT + ["--api-key-file", keys])
        port = self.start_nginx(gw.port)
        ch = uniq("demo-nginx")
        ws = self.client(gw.port)
        self.assertEqual(ws.subscribe(ch).get("type"), "ack")
        pub = json.dumps({"channel": ch, "data": 1})
        auth = {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"}
        for i, path in enumerate(["/healthz", "/metrics", "/", "/nope", "/readyz"]):
            for method in ["POST", "PUT", "PATCH"]:
                with self.subTest(method=method, path=path):
                    first, took_first = self.bodyless(port, method, path)
                    status, data, took = self.request(port, "POST", "/api/publish", pub, auth)
                    self.assertEqual(status, 200, data)
                    self.assertLess(took, T(2), "the publish after it waited %.1f s" % took)
                    self.assertEqual(ws.recv_message(timeout=T(2))["data"], 1)
                    self.assertIn(first, (404, 405))
                    self.assertLess(took_first, T(2))
