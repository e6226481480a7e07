"""A real Redis Cluster over TLS (rediss+cluster://) for the integration tests, on
wsgate_cluster's RedisCluster: TlsClusterNode / TlsRedisCluster serve clients, the cluster
bus and replication on TLS with certificates from a wsgate_tls.Pki, optionally client
certificates, requirepass/masterauth and an ACL user; the harness keeps a plain port per node
for its own commands.
"""

from wsgate_cluster import ClusterNode, RedisCluster, free_cluster_port

class TlsClusterNode(ClusterNode):
    """A cluster node that serves clients on a plain port (the test's own commands) and on
    tls_port, with TLS on its cluster bus (tls_port + 10000) and its replication link too
    (tls-cluster, tls-replication). pki is a wsgate_tls.Pki: the node presents "server",
    and "client" on its own outgoing bus and replication connections (a server certificate
    is not valid for clientAuth, which tls-auth-clients checks). auth_clients "yes" asks
    every TLS client for a certificate. password is requirepass and masterauth; acl_user,
    (name, password), adds an ACL user allowed everything."""

    def __init__(self, pki, node_timeout_ms=1000, auth_clients="yes", password=None, acl_user=None):
        self.tls_port = free_cluster_port()
        p = pki.path
        args = ["--tls-port", str(self.tls_port), "--tls-cluster", "yes", "--tls-replication", "yes",
                "--tls-cert-file", p("server.crt"), "--tls-key-file", p("server.key"),
                "--tls-client-cert-file", p("client.crt"), "--tls-client-key-file", p("client.key"),
                "--tls-ca-cert-file", p("ca.crt"), "--tls-auth-clients", auth_clients]
        if password:
            args += ["--requirepass", password, "--masterauth", password]
        if acl_user:
            # One word per argument: redis-server joins them into the config line.
            args += ["--user", acl_user[0], "on", ">" + acl_user[1], "~*", "&*", "+@all"]
        super().__init__(node_timeout_ms, extra_args=args, password=password)

    @property
    def tls_addr(self):
        return "127.0.0.1:%d" % self.tls_port


class TlsRedisCluster(RedisCluster):
    """RedisCluster of TlsClusterNodes, created over TLS (redis-cli --tls with the CA and
    the client certificate, -a password). The harness keeps talking to every node on its
    plain port, where CLUSTER SLOTS names the plain ports; over TLS it names the TLS ones."""

    def __init__(self, pki, masters=3, replicas=1, node_timeout_ms=1000, auth_clients="yes",
                 password=None, acl_user=None, start=True):
        self.pki, self.auth_clients = pki, auth_clients
        self.password, self.acl_user = password, acl_user
        super().__init__(masters, replicas, node_timeout_ms, start=start)

    def new_node(self):
        return TlsClusterNode(self.pki, self.node_timeout_ms, self.auth_clients, self.password,
                              self.acl_user)

    def cli_tls_args(self):
        p = self.pki.path
        args = ["--tls", "--cacert", p("ca.crt"), "--cert", p("client.crt"), "--key", p("client.key")]
        if self.password:
            args += ["-a", self.password, "--no-auth-warning"]
        return args

    def create_command(self):
        cmd = [self.cli] + self.cli_tls_args() + ["--cluster", "create"] + [n.tls_addr for n in self.nodes]
        return cmd + ["--cluster-replicas", str(self.n_replicas), "--cluster-yes"]
