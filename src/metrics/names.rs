//! Every metric name, in one place: the statsd key (sent behind `metrics.session` + `.`) and
//! the Prometheus family and label that show the same number on the admin listener.

/// A counter's names.
pub(crate) struct Name {
    /// The statsd key, without the session prefix.
    pub(crate) statsd: &'static str,
    /// The Prometheus family (`_total` included for counters).
    pub(crate) family: &'static str,
    /// A label that tells this counter from others of its family, as `name="value"`.
    pub(crate) label: Option<(&'static str, &'static str)>,
    /// The `# HELP` text of the family.
    pub(crate) help: &'static str,
}

/// Indexes into [`COUNTERS`]: what the recorder counts per worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    Requests,
    Responses1xx,
    Responses2xx,
    Responses3xx,
    Responses4xx,
    Responses5xx,
    Retries,
    DeadMarks,
    LookupsCache,
    LookupsRedis,
    RedisErrors,
    RedisReconnects,
    BytesIn,
    BytesOut,
    LogDatagramsDropped,
    AcmeOrdersIssued,
    AcmeOrdersFailed,
    ProtocolHttp1,
    ProtocolHttp2,
    ProtocolHttp3,
}

impl Counter {
    /// The counter of requests in the protocol the access log names `version` (`1.1`, `2.0`,
    /// `3.0`).
    pub(crate) fn protocol(version: &str) -> Self {
        match version.as_bytes().first() {
            Some(b'3') => Self::ProtocolHttp3,
            Some(b'2') => Self::ProtocolHttp2,
            _ => Self::ProtocolHttp1,
        }
    }
}

/// How many counters there are.
pub(crate) const COUNTER_COUNT: usize = Counter::ProtocolHttp3 as usize + 1;

const RESPONSES: &str = "responses by status class, error pages included";
const LOOKUPS: &str = "route lookups, by where the answer came from";
const PROTOCOLS: &str = "requests read, by the client's protocol (pings and refusals included)";

/// The names of each [`Counter`], in its order.
pub(crate) const COUNTERS: [Name; COUNTER_COUNT] = [
    counter(
        "requests",
        "hipache_requests_total",
        None,
        "requests routed (pings excluded)",
    ),
    counter(
        "responses.1xx",
        RESPONSES_FAMILY,
        Some(("class", "1xx")),
        RESPONSES,
    ),
    counter(
        "responses.2xx",
        RESPONSES_FAMILY,
        Some(("class", "2xx")),
        RESPONSES,
    ),
    counter(
        "responses.3xx",
        RESPONSES_FAMILY,
        Some(("class", "3xx")),
        RESPONSES,
    ),
    counter(
        "responses.4xx",
        RESPONSES_FAMILY,
        Some(("class", "4xx")),
        RESPONSES,
    ),
    counter(
        "responses.5xx",
        RESPONSES_FAMILY,
        Some(("class", "5xx")),
        RESPONSES,
    ),
    counter(
        "retries",
        "hipache_retries_total",
        None,
        "attempts retried on another backend",
    ),
    counter(
        "dead_marks",
        "hipache_dead_marks_total",
        None,
        "backends found dead",
    ),
    counter(
        "lookups.cache",
        LOOKUPS_FAMILY,
        Some(("source", "cache")),
        LOOKUPS,
    ),
    counter(
        "lookups.redis",
        LOOKUPS_FAMILY,
        Some(("source", "redis")),
        LOOKUPS,
    ),
    counter(
        "redis.errors",
        "hipache_redis_errors_total",
        None,
        "failed redis lookups",
    ),
    counter(
        "redis.reconnects",
        "hipache_redis_reconnects_total",
        None,
        "redis outages ended",
    ),
    counter(
        "bytes.in",
        "hipache_received_bytes_total",
        None,
        "bytes read from clients",
    ),
    counter(
        "bytes.out",
        "hipache_sent_bytes_total",
        None,
        "bytes written to clients",
    ),
    counter(
        "log.udp_dropped",
        "hipache_log_udp_dropped_total",
        None,
        "access log datagrams dropped (socket full or unreachable)",
    ),
    counter(
        "acme.orders.issued",
        ACME_ORDERS_FAMILY,
        Some(("result", "issued")),
        ACME_ORDERS,
    ),
    counter(
        "acme.orders.failed",
        ACME_ORDERS_FAMILY,
        Some(("result", "failed")),
        ACME_ORDERS,
    ),
    counter(
        "protocol.http1",
        PROTOCOL_FAMILY,
        Some(("protocol", "http1")),
        PROTOCOLS,
    ),
    counter(
        "protocol.http2",
        PROTOCOL_FAMILY,
        Some(("protocol", "http2")),
        PROTOCOLS,
    ),
    counter(
        "protocol.http3",
        PROTOCOL_FAMILY,
        Some(("protocol", "http3")),
        PROTOCOLS,
    ),
];

const ACME_ORDERS_FAMILY: &str = "hipache_acme_orders_total";
const ACME_ORDERS: &str = "ACME orders this node ran, by outcome (a certificate issued, or failed)";

const PROTOCOL_FAMILY: &str = "hipache_protocol_requests_total";

const RESPONSES_FAMILY: &str = "hipache_responses_total";
const LOOKUPS_FAMILY: &str = "hipache_lookups_total";

const fn counter(
    statsd: &'static str,
    family: &'static str,
    label: Option<(&'static str, &'static str)>,
    help: &'static str,
) -> Name {
    Name {
        statsd,
        family,
        label,
        help,
    }
}

/// Gauge: open client connections, summed over workers.
pub(crate) const CONNECTIONS_OPEN: &str = "connections.open";
/// Prometheus family of [`CONNECTIONS_OPEN`].
pub(crate) const CONNECTIONS_OPEN_FAMILY: &str = "hipache_connections_open";
/// Gauge: open WebSocket (upgrade) tunnels.
pub(crate) const TUNNELS_OPEN: &str = "tunnels.open";
/// Prometheus family of [`TUNNELS_OPEN`].
pub(crate) const TUNNELS_OPEN_FAMILY: &str = "hipache_tunnels_open";
/// Timer: from a request's head to its answer's head (what the client waits for a first byte).
pub(crate) const LATENCY: &str = "latency";
/// Prometheus family of [`LATENCY`].
pub(crate) const LATENCY_FAMILY: &str = "hipache_latency_seconds";
/// Timer: from an attempt's start to the backend's answer head (its time to first byte).
pub(crate) const BACKEND_LATENCY: &str = "backend.latency";
/// Prometheus family of [`BACKEND_LATENCY`].
pub(crate) const BACKEND_LATENCY_FAMILY: &str = "hipache_backend_latency_seconds";
/// `frontend.<id>.requests`: requests per frontend (its identifier, dots made `_`).
pub(crate) const FRONTEND_REQUESTS: &str = "requests";
/// Prometheus family of the frontend request counter (label `frontend`).
pub(crate) const FRONTEND_REQUESTS_FAMILY: &str = "hipache_frontend_requests_total";
/// Prometheus family of the frontend answers by status class (labels `frontend`, `class`).
pub(crate) const FRONTEND_RESPONSES_FAMILY: &str = "hipache_frontend_responses_total";
/// `frontend.<id>.latency`: [`LATENCY`] per frontend.
pub(crate) const FRONTEND_LATENCY: &str = "latency";
/// Prometheus family of the frontend latency histogram (label `frontend`).
pub(crate) const FRONTEND_LATENCY_FAMILY: &str = "hipache_frontend_latency_seconds";
/// The statsd key prefix of per-frontend metrics.
pub(crate) const FRONTEND_PREFIX: &str = "frontend.";
/// Counter: metric lines the statsd queue or socket dropped (reported with the next flush).
pub(crate) const STATSD_DROPPED: &str = "statsd.dropped";
/// Gauge: workers whose snapshots are summed.
pub(crate) const WORKERS_FAMILY: &str = "hipache_workers";
/// Counter: workers of the serving generation that exited unasked and were replaced (label
/// `reason`, one of [`RESTART_REASONS`]).
pub(crate) const WORKER_RESTARTS_FAMILY: &str = "hipache_worker_restarts_total";
/// Why a worker was replaced: it died (a crash, restarted with backoff), it retired at its
/// memory limit, or it stopped cleanly without being asked to.
pub(crate) const RESTART_REASONS: [&str; 3] = ["crash", "retired", "stopped"];
/// Gauge: 1 while every Redis connection of every worker answers, 0 while one does not; absent
/// without Redis (the file driver) and before the first connection attempt ends.
pub(crate) const REDIS_UP_FAMILY: &str = "hipache_redis_up";
/// Gauge: backends in a frontend's list as last looked up (label `frontend`).
pub(crate) const FRONTEND_BACKENDS_FAMILY: &str = "hipache_frontend_backends";
/// Gauge: those of [`FRONTEND_BACKENDS_FAMILY`] flagged dead (label `frontend`).
pub(crate) const FRONTEND_BACKENDS_DEAD_FAMILY: &str = "hipache_frontend_backends_dead";
/// Status classes, as labels and statsd segments.
pub(crate) const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// The frontend label value (and statsd segment) that stands for every frontend past the cap.
pub(crate) const OTHER_FRONTENDS: &str = "other";
/// Gauge: when each certificate served expires, in Unix seconds (labels `name`, and `source`:
/// `redis` for a `tls:` key, `file` for each name of a certificate file).
pub(crate) const CERTIFICATE_EXPIRY_FAMILY: &str = "hipache_certificate_expiry_timestamp_seconds";
