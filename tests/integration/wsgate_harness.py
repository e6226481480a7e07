"""Reusable pieces for the wsgate integration tests (Python 3.11, standard library only),
split by what each part drives; this module re-exports all of them, so
`from wsgate_harness import ...` keeps working:

- wsgate_base: SCALE/T (timeouts x10 when $WSGATE_WRAPPER is set, e.g. valgrind), uniq(),
  free_port(), wait_until(), recv_before() (the one deadline-bounded receive).
- wsgate_proc: RedisServer, Gateway, run_wsgate, HTTP probes and /metrics parsing,
  GatewayTestCase (prints the processes' log tails when a test fails).
- wsgate_redis: RedisClient, a tiny blocking RESP client.
- wsgate_ws: WSClient, an RFC 6455 client written from scratch, and the upgrade helpers.
- wsgate_pub: fcall_publish, Publisher, parse_envelope: the backend side.

Every wait has a deadline, so no test can hang; every process is stopped by its own PID.
The deployment tests (tests/deploy) use WSClient too, so importing this module must stay
free of side effects: $WSGATE_BIN is read only when a Gateway is created.
"""

from wsgate_base import (  # noqa: F401
    _env_scale,
    SCALE,
    T,
    uniq,
    free_port,
    wait_until,
    recv_before,
    read_until_close,
)

from wsgate_redis import (  # noqa: F401
    RedisError,
    RedisClient,
)

from wsgate_ws import (  # noqa: F401
    WS_GUID,
    OP_CONT,
    OP_TEXT,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    upgrade_request,
    burst_upgrades,
    HandshakeError,
    ConnectionClosed,
    ConnectionLost,
    REFUSED,
    ProtocolError,
    WSClient,
    data_of,
    plain,
)

from wsgate_proc import (  # noqa: F401
    wsgate_bin,
    NO_RATE_LIMIT,
    _tail,
    _stop_process,
    RedisServer,
    http_get,
    http_status,
    DEV_ACCESS_ARGS,
    run_wsgate,
    AUTH_FLAG_PREFIXES,
    AUTH_ENV_PREFIXES,
    Gateway,
    _METRIC_LINE,
    parse_metrics,
    metric_meta,
    rss_bytes,
    GatewayTestCase,
)

from wsgate_pub import (  # noqa: F401
    fn_keys,
    fcall_publish,
    Publisher,
    _ENVELOPE,
    parse_envelope,
)

from wsgate_tls import (  # noqa: F401
    Pki,
    TlsRedisServer,
)
