//! Every Prometheus series the gateway exports, in one place, on its own registry.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Requests by route and HTTP status class of the response sent to the client.
    pub requests: IntCounterVec,
    /// Sign-ins by provider and result (`success` or a bounded failure reason).
    pub sign_ins: IntCounterVec,
    /// Time from sending to the upstream to its response header, by route.
    pub upstream_duration: HistogramVec,
    /// Presented session cookies that were not accepted, by reason.
    pub session_rejections: IntCounterVec,
    /// Identity provider metadata/JWKS fetches by provider, kind and result.
    pub idp_fetches: IntCounterVec,
    /// 1 when the provider's discovery document and keys are loaded.
    pub idp_ready: IntGaugeVec,
    pub build_info: IntGaugeVec,
    pub sign_outs: IntCounterVec,
    pub up: IntGauge,
    rechecks: IntCounterVec,
    idp_logouts: IntCounterVec,
    /// Whole-request time as seen by the gateway, by route.
    pub request_duration: HistogramVec,
    /// Requests refused for lack of authentication or trust, by bounded reason.
    pub denials: IntCounterVec,
    pub idp_fetch_duration: HistogramVec,
    /// Sessions held server-side (memory store).
    pub sessions_stored: IntGauge,
    pub config_reloads: IntCounterVec,
    /// 1 while the session store answers (always 1 for the in-process stores).
    pub session_store_up: IntGauge,
    /// Session store commands that failed (Redis unavailable, timed out), since start.
    pub session_store_errors: prometheus::IntCounter,
    /// Unix time at which the earliest trusted SAML IdP signing certificate expires.
    pub saml_cert_expiry: IntGaugeVec,
    /// SCIM requests by resource, operation and result (`ok` or the SCIM error type).
    pub scim_requests: IntCounterVec,
    /// Users and groups in the SCIM directory (as last counted after a change here).
    pub scim_users: IntGauge,
    pub scim_groups: IntGauge,
    /// Provisioning webhook calls by event and result.
    pub scim_webhooks: IntCounterVec,
    /// Proxying that failed at the upstream, by route and reason.
    pub upstream_errors: IntCounterVec,
    /// Listener certificate reloads from their files, by result.
    pub tls_reloads: IntCounterVec,
    pub assertions_signed: prometheus::IntCounter,
    pub assertion_key_reloads: IntCounterVec,
    pub home_realms: IntCounterVec,
    /// Step-up sign-ins (a route's `require:`), by provider and result.
    pub step_ups: IntCounterVec,
    pub handoffs: IntCounterVec,
    /// When each listener certificate expires (Unix time), by its first name.
    pub tls_expiry: IntGaugeVec,
}

/// Latency buckets for request and upstream times (seconds).
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Latency buckets for identity provider fetches (seconds).
const FETCH_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// One series as it is registered: name, help, labels (none for a plain counter or gauge)
/// and, for a histogram, its buckets.
struct Series {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
}

const REQUESTS: Series = Series {
    name: "authgate_requests_total",
    help: "Requests handled, by route and status code",
    labels: &["route", "status"],
    buckets: &[],
};
const SIGN_INS: Series = Series {
    name: "authgate_sign_ins_total",
    help: "Completed sign-in attempts, by provider and result",
    labels: &["provider", "result"],
    buckets: &[],
};
const UPSTREAM_DURATION: Series = Series {
    name: "authgate_upstream_duration_seconds",
    help: "Time until the upstream's response header arrived, by route",
    labels: &["route"],
    buckets: REQUEST_BUCKETS,
};
const SESSION_REJECTIONS: Series = Series {
    name: "authgate_session_rejections_total",
    help: "Session cookies presented but not accepted, by reason",
    labels: &["reason"],
    buckets: &[],
};
const IDP_FETCHES: Series = Series {
    name: "authgate_idp_fetches_total",
    help: "Identity provider discovery and key fetches, by provider, kind and result",
    labels: &["provider", "kind", "result"],
    buckets: &[],
};
const IDP_READY: Series = Series {
    name: "authgate_idp_ready",
    help: "1 when the provider's metadata and keys are loaded",
    labels: &["provider"],
    buckets: &[],
};
const BUILD_INFO: Series = Series {
    name: "authgate_build_info",
    help: "Build information; always 1",
    labels: &["version"],
    buckets: &[],
};
const SIGN_OUTS: Series = Series {
    name: "authgate_sign_outs_total",
    help: "Sign-outs, by provider",
    labels: &["provider"],
    buckets: &[],
};
const REQUEST_DURATION: Series = Series {
    name: "authgate_request_duration_seconds",
    help: "Time from request to the end of the response, by route",
    labels: &["route"],
    buckets: REQUEST_BUCKETS,
};
const DENIALS: Series = Series {
    name: "authgate_denials_total",
    help: "Requests refused, by reason (unauthenticated, no_route, policy denials, refused request forms, ...)",
    labels: &["reason"],
    buckets: &[],
};
const UPSTREAM_ERRORS: Series = Series {
    name: "authgate_upstream_errors_total",
    help: "Requests the upstream failed, by route and reason (tls_certificate, tls_handshake, connect_refused, timeout, ...)",
    labels: &["route", "reason"],
    buckets: &[],
};
const IDP_FETCH_DURATION: Series = Series {
    name: "authgate_idp_fetch_duration_seconds",
    help: "Identity provider discovery and key fetch latency, by provider and kind",
    labels: &["provider", "kind"],
    buckets: FETCH_BUCKETS,
};
const SESSIONS_STORED: Series = Series {
    name: "authgate_sessions_stored",
    help: "Sessions held server-side by this replica (memory store; 0 with the cookie store)",
    labels: &[],
    buckets: &[],
};
const CONFIG_RELOADS: Series = Series {
    name: "authgate_config_reloads_total",
    help: "Configuration reloads, by result",
    labels: &["result"],
    buckets: &[],
};
const SESSION_STORE_UP: Series = Series {
    name: "authgate_session_store_up",
    help: "1 while the session store answers (Redis); always 1 for the cookie and memory stores",
    labels: &[],
    buckets: &[],
};
const SESSION_STORE_ERRORS: Series = Series {
    name: "authgate_session_store_errors_total",
    help: "Session store commands that failed (Redis unavailable or too slow)",
    labels: &[],
    buckets: &[],
};
const SAML_CERT_EXPIRY: Series = Series {
    name: "authgate_saml_idp_certificate_expiry_timestamp_seconds",
    help: "When the earliest trusted SAML IdP signing certificate expires (Unix time)",
    labels: &["provider"],
    buckets: &[],
};
const SCIM_REQUESTS: Series = Series {
    name: "authgate_scim_requests_total",
    help: "SCIM provisioning requests, by resource, operation and result",
    labels: &["resource", "op", "result"],
    buckets: &[],
};
const SCIM_USERS: Series = Series {
    name: "authgate_scim_users",
    help: "Users in the SCIM directory (counted after each change through this replica)",
    labels: &[],
    buckets: &[],
};
const SCIM_GROUPS: Series = Series {
    name: "authgate_scim_groups",
    help: "Groups in the SCIM directory (counted after each change through this replica)",
    labels: &[],
    buckets: &[],
};
const SCIM_WEBHOOKS: Series = Series {
    name: "authgate_scim_webhook_calls_total",
    help: "Provisioning webhook calls, by event and result",
    labels: &["event", "result"],
    buckets: &[],
};
const TLS_RELOADS: Series = Series {
    name: "authgate_tls_reloads_total",
    help: "Listener certificate files re-read after a change, by result (an error keeps the previous certificates)",
    labels: &["result"],
    buckets: &[],
};
const TLS_EXPIRY: Series = Series {
    name: "authgate_tls_certificate_expiry_timestamp_seconds",
    help: "When each listener certificate expires (Unix time), by its first DNS name",
    labels: &["name"],
    buckets: &[],
};
const RECHECKS: Series = Series {
    name: "authgate_session_rechecks_total",
    help: "Session re-checks with the IdP, by provider and result (renewed, refused, unreachable, busy, expired)",
    labels: &["provider", "result"],
    buckets: &[],
};
const LOGOUT_CHANNELS: Series = Series {
    name: "authgate_idp_logouts_total",
    help: "Logouts an IdP asked for, by provider, channel (backchannel, frontchannel, saml) and result",
    labels: &["provider", "channel", "result"],
    buckets: &[],
};

const ASSERTIONS_SIGNED: Series = Series {
    name: "authgate_assertions_signed_total",
    help: "Signed identity assertions made (each is then used for half its lifetime)",
    labels: &[],
    buckets: &[],
};
const ASSERTION_KEY_RELOADS: Series = Series {
    name: "authgate_assertion_key_reloads_total",
    help:
        "Assertion key files re-read after a change, by result (an error keeps the previous keys)",
    labels: &["result"],
    buckets: &[],
};

const STEP_UPS: Series = Series {
    name: "authgate_step_ups_total",
    help: "Step-up sign-ins for a route's require:, by provider and result (started, success, or why it was refused)",
    labels: &["provider", "result"],
    buckets: &[],
};

const HOME_REALMS: Series = Series {
    name: "authgate_home_realm_total",
    help: "Sign-ins sent on by home-realm discovery, by provider and how it was picked (domain, default, remembered)",
    labels: &["provider", "by"],
    buckets: &[],
};

const HANDOFFS: Series = Series {
    name: "authgate_handoffs_total",
    help: "Sessions handed to another served host, by result (issued, redeemed, or why refused: host, code, expired, browser, replayed)",
    labels: &["result"],
    buckets: &[],
};

const UP: Series = Series {
    name: "authgate_up",
    help: "1 while the gateway process is serving",
    labels: &[],
    buckets: &[],
};

/// Registers `m` on `r` and hands it back.
fn registered<M: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    m: M,
) -> Result<M, prometheus::Error> {
    r.register(Box::new(m.clone()))?;
    Ok(m)
}

fn counters(r: &Registry, s: &Series) -> Result<IntCounterVec, prometheus::Error> {
    registered(r, IntCounterVec::new(Opts::new(s.name, s.help), s.labels)?)
}

fn gauges(r: &Registry, s: &Series) -> Result<IntGaugeVec, prometheus::Error> {
    registered(r, IntGaugeVec::new(Opts::new(s.name, s.help), s.labels)?)
}

fn histograms(r: &Registry, s: &Series) -> Result<HistogramVec, prometheus::Error> {
    let opts = HistogramOpts::new(s.name, s.help).buckets(s.buckets.to_vec());
    registered(r, HistogramVec::new(opts, s.labels)?)
}

fn counter(r: &Registry, s: &Series) -> Result<prometheus::IntCounter, prometheus::Error> {
    registered(r, prometheus::IntCounter::new(s.name, s.help)?)
}

fn gauge(r: &Registry, s: &Series) -> Result<IntGauge, prometheus::Error> {
    registered(r, IntGauge::new(s.name, s.help)?)
}

impl Metrics {
    /// Every series (the table above), registered on the gateway's own registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        let m = Self {
            requests: counters(&r, &REQUESTS)?,
            sign_ins: counters(&r, &SIGN_INS)?,
            upstream_duration: histograms(&r, &UPSTREAM_DURATION)?,
            session_rejections: counters(&r, &SESSION_REJECTIONS)?,
            idp_fetches: counters(&r, &IDP_FETCHES)?,
            idp_ready: gauges(&r, &IDP_READY)?,
            build_info: gauges(&r, &BUILD_INFO)?,
            sign_outs: counters(&r, &SIGN_OUTS)?,
            request_duration: histograms(&r, &REQUEST_DURATION)?,
            denials: counters(&r, &DENIALS)?,
            upstream_errors: counters(&r, &UPSTREAM_ERRORS)?,
            idp_fetch_duration: histograms(&r, &IDP_FETCH_DURATION)?,
            sessions_stored: gauge(&r, &SESSIONS_STORED)?,
            config_reloads: counters(&r, &CONFIG_RELOADS)?,
            session_store_up: gauge(&r, &SESSION_STORE_UP)?,
            session_store_errors: counter(&r, &SESSION_STORE_ERRORS)?,
            saml_cert_expiry: gauges(&r, &SAML_CERT_EXPIRY)?,
            scim_requests: counters(&r, &SCIM_REQUESTS)?,
            scim_users: gauge(&r, &SCIM_USERS)?,
            scim_groups: gauge(&r, &SCIM_GROUPS)?,
            scim_webhooks: counters(&r, &SCIM_WEBHOOKS)?,
            tls_reloads: counters(&r, &TLS_RELOADS)?,
            tls_expiry: gauges(&r, &TLS_EXPIRY)?,
            rechecks: counters(&r, &RECHECKS)?,
            idp_logouts: counters(&r, &LOGOUT_CHANNELS)?,
            assertions_signed: counter(&r, &ASSERTIONS_SIGNED)?,
            assertion_key_reloads: counters(&r, &ASSERTION_KEY_RELOADS)?,
            home_realms: counters(&r, &HOME_REALMS)?,
            step_ups: counters(&r, &STEP_UPS)?,
            handoffs: counters(&r, &HANDOFFS)?,
            up: gauge(&r, &UP)?,
            registry: r,
        };
        // Every label combination a dashboard or alert expects exists from the start.
        for result in ["success", "error"] {
            m.config_reloads.with_label_values(&[result]).inc_by(0);
            m.tls_reloads.with_label_values(&[result]).inc_by(0);
            m.assertion_key_reloads
                .with_label_values(&[result])
                .inc_by(0);
        }
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m.up.set(1);
        Ok(m)
    }

    /// A sign-in with `provider` ended with `result` (`success` or a bounded reason).
    pub fn count_sign_in(&self, provider: &str, result: &str) {
        self.sign_ins.with_label_values(&[provider, result]).inc();
        if result != "success" {
            let fields = serde_json::json!({ "provider": provider, "reason": result });
            crate::logging::audit("sign_in_failed", fields);
        }
    }

    /// A step-up with `provider` came to `result`.
    pub fn step_up(&self, provider: &str, result: &str) {
        self.step_ups.with_label_values(&[provider, result]).inc();
    }

    /// A sign-in sent on by home-realm discovery.
    pub fn home_realm(&self, provider: &str, by: &str) {
        self.home_realms.with_label_values(&[provider, by]).inc();
    }

    /// A handoff issued, redeemed or refused.
    pub fn handoff(&self, result: &str) {
        self.handoffs.with_label_values(&[result]).inc();
    }

    /// A request refused, for a bounded `reason`.
    /// A request refused or denied, for a bounded `reason`; also an audit event.
    pub fn deny(&self, reason: &str) {
        self.denials.with_label_values(&[reason]).inc();
        // Not the routine "no session yet" that every first visit meets.
        if reason != "unauthenticated" {
            crate::logging::audit("denied", serde_json::json!({ "reason": reason }));
        }
    }

    /// A presented session cookie not accepted, for a bounded `reason`.
    pub fn session_rejected(&self, reason: &str) {
        self.session_rejections.with_label_values(&[reason]).inc();
    }

    /// A session re-check with `provider` came to `result`.
    pub fn recheck(&self, provider: &str, result: &str) {
        self.rechecks.with_label_values(&[provider, result]).inc();
    }

    /// An IdP-initiated logout through `channel` came to `result` (`ended` or a refusal).
    pub fn idp_logout(&self, provider: &str, channel: &str, result: &str) {
        self.idp_logouts
            .with_label_values(&[provider, channel, result])
            .inc();
    }

    pub fn signed_out(&self, provider: &str) {
        self.sign_outs.with_label_values(&[provider]).inc();
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("metrics encoding failed: {e}");
        }
        out
    }
}
/// Common codes by value, the rest by class: bounded label values.
pub fn status_label(status: u16) -> &'static str {
    const KNOWN: [(u16, &str); 13] = [
        (200, "200"),
        (204, "204"),
        (301, "301"),
        (302, "302"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
    ];
    if let Some((_, label)) = KNOWN.iter().find(|(code, _)| *code == status) {
        return label;
    }
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "none",
    }
}

/// Status labels by slot: the known codes, then the classes (see `status_label`).
const STATUS_SLOTS: usize = 20;

fn status_slot(status: u16) -> usize {
    const KNOWN: [u16; 13] = [
        200, 204, 301, 302, 304, 400, 401, 403, 404, 500, 502, 503, 504,
    ];
    match KNOWN.iter().position(|c| *c == status) {
        Some(i) => i,
        None => match status / 100 {
            1..=5 => 12 + usize::from(status / 100),
            _ => 18,
        },
    }
}

/// One route's series, resolved on first use and then held, so a proxied request does no
/// label lookups (hashing, a lock) to be counted.
#[derive(Default)]
pub struct RouteSeries(std::sync::OnceLock<RouteHandles>);

struct RouteHandles {
    request_duration: prometheus::Histogram,
    upstream_duration: prometheus::Histogram,
    requests: [std::sync::OnceLock<prometheus::IntCounter>; STATUS_SLOTS],
}

impl RouteSeries {
    fn handles(&self, m: &Metrics, route: &str) -> &RouteHandles {
        self.0.get_or_init(|| RouteHandles {
            request_duration: m.request_duration.with_label_values(&[route]),
            upstream_duration: m.upstream_duration.with_label_values(&[route]),
            requests: Default::default(),
        })
    }

    /// A request on this route ended with `status`, `secs` after it began.
    pub fn finished(&self, m: &Metrics, route: &str, status: u16, secs: Option<f64>) {
        let h = self.handles(m, route);
        h.requests[status_slot(status)]
            .get_or_init(|| m.requests.with_label_values(&[route, status_label(status)]))
            .inc();
        if let Some(s) = secs {
            h.request_duration.observe(s);
        }
    }

    /// The upstream's response header arrived `secs` after the request was sent to it.
    pub fn upstream(&self, m: &Metrics, route: &str, secs: f64) {
        self.handles(m, route).upstream_duration.observe(secs);
    }
}

/// A copy starts unresolved (it resolves to the same series on first use).
impl Clone for RouteSeries {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for RouteSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteSeries")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_slots_match_status_labels() {
        // Two statuses share a slot exactly when they share a label.
        let codes: Vec<u16> = (0..700).collect();
        for a in &codes {
            assert!(status_slot(*a) < STATUS_SLOTS);
            for b in [
                200u16, 204, 301, 302, 304, 400, 401, 403, 404, 429, 500, 502, 503, 504, 101, 0,
            ] {
                assert_eq!(
                    status_slot(*a) == status_slot(b),
                    status_label(*a) == status_label(b),
                    "{a} and {b}"
                );
            }
        }
    }
}
