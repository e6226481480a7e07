"""TLS to Redis for the tests (test_redis_tls, chaos_redis_tls): certificates minted with
`openssl` at test time, and a redis-server that also listens with TLS."""

import atexit
import os
import shutil
import subprocess
import tempfile

from wsgate_base import free_port
from wsgate_proc import RedisServer

CA_CNF = """
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
unique_subject = no
[ any ]
commonName = supplied
[ server ]
basicConstraints = CA:FALSE
subjectAltName = DNS:localhost,IP:127.0.0.1
extendedKeyUsage = serverAuth
[ client ]
basicConstraints = CA:FALSE
extendedKeyUsage = clientAuth
"""


class Pki:
    """TLS material minted with `openssl` at test time, in its own temp dir: two CAs (the
    right one, "ca", and a stranger, "other-ca") and, signed by the first, "server"
    (localhost, 127.0.0.1), "expired" (the same, valid only in 2020) and "client"."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wsgate-tls-")
        with open(self.path("ca.cnf"), "w") as f:
            f.write(CA_CNF)
        open(self.path("index.txt"), "w").close()
        with open(self.path("serial"), "w") as f:
            f.write("1000\n")
        for ca in ("ca", "other-ca"):
            self.openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                         "-nodes", "-keyout", ca + ".key", "-out", ca + ".crt", "-days", "2",
                         "-subj", "/CN=wsgate test " + ca)
        self.issue("server", "server", "-days", "2")
        self.issue("expired", "server", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")
        self.issue("client", "client", "-days", "2")

    def path(self, name):
        return os.path.join(self.dir, name)

    def openssl(self, *args):
        p = subprocess.run(["openssl"] + list(args), cwd=self.dir, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("openssl %s: %s" % (args[0], p.stderr))

    def issue(self, name, ext, *validity):
        self.openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        self.openssl("ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key",
                     "-in", name + ".csr", "-out", name + ".crt", "-extensions", ext, *validity)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class TlsRedisServer(RedisServer):
    """redis-server with a plain port (the test's own commands and backends) and a TLS
    port, tls_port, with pki's certificate `cert`; auth_clients "yes" asks for a client
    certificate. Restarts keep both ports."""

    def __init__(self, pki, cert="server", auth_clients="no", **kw):
        self.pki, self.cert, self.auth_clients = pki, cert, auth_clients
        self.tls_port = free_port()
        super().__init__(**kw)

    def _spawn(self):
        TLS_PORTS[self.port] = (self.tls_port, self.pki.path("ca.crt"))
        p = self.pki.path
        # ::1 too when the machine has it ("-": optional): "localhost" may resolve to it first.
        cmd = [self.binary, "--port", str(self.port), "--tls-port", str(self.tls_port), "--bind", "127.0.0.1", "-::1",
               "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", self.dir,
               "--tls-cert-file", p(self.cert + ".crt"), "--tls-key-file", p(self.cert + ".key"),
               "--tls-ca-cert-file", p("ca.crt"), "--tls-auth-clients", self.auth_clients]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)


# Plain port -> (TLS port, CA file) of every TLS Redis this process started: a Gateway
# given the plain port reaches it over TLS (wsgate_proc.redis_url_args).
TLS_PORTS = {}
_shared = []


def shared_pki():
    """One Pki for the whole process (WSGATE_TEST_REDIS_TLS=1 runs), removed at exit."""
    if not _shared:
        _shared.append(Pki())
        atexit.register(_shared[0].cleanup)
    return _shared[0]
