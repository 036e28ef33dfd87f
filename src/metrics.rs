//! Every Prometheus series the gateway exports, in one place, on its own registry.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Registry,
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
    /// When each listener certificate expires (Unix time), by its first name.
    pub tls_expiry: IntGaugeVec,
}

/// Latency buckets for request and upstream times (seconds).
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Latency buckets for identity provider fetches (seconds).
const FETCH_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Metrics {
    /// Every series, each named once and registered on the gateway's own registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        use prometheus::{
            register_histogram_vec_with_registry, register_int_counter_vec_with_registry,
            register_int_counter_with_registry, register_int_gauge_vec_with_registry,
            register_int_gauge_with_registry,
        };
        let r = Registry::new();
        let m = Self {
            requests: register_int_counter_vec_with_registry!(
                "authgate_requests_total",
                "Requests handled, by route and status code",
                &["route", "status"],
                r
            )?,
            sign_ins: register_int_counter_vec_with_registry!(
                "authgate_sign_ins_total",
                "Completed sign-in attempts, by provider and result",
                &["provider", "result"],
                r
            )?,
            upstream_duration: register_histogram_vec_with_registry!(
                HistogramOpts::new(
                    "authgate_upstream_duration_seconds",
                    "Time until the upstream's response header arrived, by route",
                )
                .buckets(REQUEST_BUCKETS.to_vec()),
                &["route"],
                r
            )?,
            session_rejections: register_int_counter_vec_with_registry!(
                "authgate_session_rejections_total",
                "Session cookies presented but not accepted, by reason",
                &["reason"],
                r
            )?,
            idp_fetches: register_int_counter_vec_with_registry!(
                "authgate_idp_fetches_total",
                "Identity provider discovery and key fetches, by provider, kind and result",
                &["provider", "kind", "result"],
                r
            )?,
            idp_ready: register_int_gauge_vec_with_registry!(
                "authgate_idp_ready",
                "1 when the provider's metadata and keys are loaded",
                &["provider"],
                r
            )?,
            build_info: register_int_gauge_vec_with_registry!(
                "authgate_build_info",
                "Build information; always 1",
                &["version"],
                r
            )?,
            sign_outs: register_int_counter_vec_with_registry!(
                "authgate_sign_outs_total",
                "Sign-outs, by provider",
                &["provider"],
                r
            )?,
            up: register_int_gauge_with_registry!("authgate_up", "1 while the gateway process is serving", r)?,
            request_duration: register_histogram_vec_with_registry!(
                HistogramOpts::new(
                    "authgate_request_duration_seconds",
                    "Time from request to the end of the response, by route",
                )
                .buckets(REQUEST_BUCKETS.to_vec()),
                &["route"],
                r
            )?,
            denials: register_int_counter_vec_with_registry!(
                "authgate_denials_total",
                "Requests refused, by reason (unauthenticated, no_route, policy denials, refused request forms, ...)",
                &["reason"],
                r
            )?,
            upstream_errors: register_int_counter_vec_with_registry!(
                "authgate_upstream_errors_total",
                "Requests the upstream failed, by route and reason (tls_certificate, tls_handshake, connect_refused, timeout, ...)",
                &["route", "reason"],
                r
            )?,
            idp_fetch_duration: register_histogram_vec_with_registry!(
                HistogramOpts::new(
                    "authgate_idp_fetch_duration_seconds",
                    "Identity provider discovery and key fetch latency, by provider and kind",
                )
                .buckets(FETCH_BUCKETS.to_vec()),
                &["provider", "kind"],
                r
            )?,
            sessions_stored: register_int_gauge_with_registry!(
                "authgate_sessions_stored",
                "Sessions held server-side by this replica (memory store; 0 with the cookie store)",
                r
            )?,
            config_reloads: register_int_counter_vec_with_registry!(
                "authgate_config_reloads_total",
                "Configuration reloads, by result",
                &["result"],
                r
            )?,
            session_store_up: register_int_gauge_with_registry!(
                "authgate_session_store_up",
                "1 while the session store answers (Redis); always 1 for the cookie and memory stores",
                r
            )?,
            session_store_errors: register_int_counter_with_registry!(
                "authgate_session_store_errors_total",
                "Session store commands that failed (Redis unavailable or too slow)",
                r
            )?,
            saml_cert_expiry: register_int_gauge_vec_with_registry!(
                "authgate_saml_idp_certificate_expiry_timestamp_seconds",
                "When the earliest trusted SAML IdP signing certificate expires (Unix time)",
                &["provider"],
                r
            )?,
            scim_requests: register_int_counter_vec_with_registry!(
                "authgate_scim_requests_total",
                "SCIM provisioning requests, by resource, operation and result",
                &["resource", "op", "result"],
                r
            )?,
            scim_users: register_int_gauge_with_registry!(
                "authgate_scim_users",
                "Users in the SCIM directory (counted after each change through this replica)",
                r
            )?,
            scim_groups: register_int_gauge_with_registry!(
                "authgate_scim_groups",
                "Groups in the SCIM directory (counted after each change through this replica)",
                r
            )?,
            scim_webhooks: register_int_counter_vec_with_registry!(
                "authgate_scim_webhook_calls_total",
                "Provisioning webhook calls, by event and result",
                &["event", "result"],
                r
            )?,
            tls_reloads: register_int_counter_vec_with_registry!(
                "authgate_tls_reloads_total",
                "Listener certificate files re-read after a change, by result (an error keeps the previous certificates)",
                &["result"],
                r
            )?,
            tls_expiry: register_int_gauge_vec_with_registry!(
                "authgate_tls_certificate_expiry_timestamp_seconds",
                "When each listener certificate expires (Unix time), by its first DNS name",
                &["name"],
                r
            )?,
            registry: r,
        };
        // Every label combination a dashboard or alert expects exists from the start.
        for result in ["success", "error"] {
            m.config_reloads.with_label_values(&[result]).inc_by(0);
            m.tls_reloads.with_label_values(&[result]).inc_by(0);
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
    }

    /// A request refused, for a bounded `reason`.
    pub fn deny(&self, reason: &str) {
        self.denials.with_label_values(&[reason]).inc();
    }

    /// A presented session cookie not accepted, for a bounded `reason`.
    pub fn session_rejected(&self, reason: &str) {
        self.session_rejections.with_label_values(&[reason]).inc();
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
