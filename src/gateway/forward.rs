//! The forward-auth endpoint (`/_authgate/auth`): the ingress controller's question, read in
//! the configured dialect, answered by the same authentication step as a proxied request.

use super::*;

impl Gateway {
    /// Forward-auth (ingress-nginx `auth-url`, Traefik ForwardAuth): decide on the original
    /// request an ingress controller describes, read in the configured dialect and canonically.
    /// 2xx with the identity headers when allowed; 401 otherwise (or, for Traefik browsers, a
    /// redirect to sign in); the policy's 403.
    pub(super) async fn forward_auth(&self, core: &Core, session: &mut Session) -> Result<()> {
        let fa = &core.cfg.forward_auth;
        if !fa.enabled {
            return page(
                session,
                404,
                "Not found",
                "Forward-auth is not enabled on this gateway.",
                None,
            )
            .await;
        }
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if !peer.is_some_and(|ip| fa.trusted_proxies.iter().any(|c| c.contains(ip))) {
            self.deny("untrusted_proxy");
            log::warn!("forward-auth refused: {peer:?} is not in forward_auth.trusted_proxies");
            return json_error(
                session,
                403,
                "untrusted_proxy",
                "this address may not use forward-auth",
            )
            .await;
        }
        // ingress-nginx turns any auth answer but 2xx/401/403 into a 500: refuse with 403.
        let refused = match fa.dialect {
            Dialect::Nginx => 403,
            Dialect::Traefik => 400,
        };
        let original = match crate::forward_auth::original(
            session.req_header(),
            fa.dialect,
            core.routes.exceptions,
        ) {
            Ok(o) => o,
            Err(why) => {
                self.deny(why.label());
                log::warn!("forward-auth refused ({}): {why}", why.label());
                return json_error(session, refused, why.label(), &why.to_string()).await;
            }
        };
        let route = match core.routes.route(&original.canonical) {
            Ok(r) => r.clone(),
            Err(NoRoute::Unknown) => {
                self.deny("no_route");
                return json_error(
                    session,
                    403,
                    "no_route",
                    "no route for the original request",
                )
                .await;
            }
            Err(NoRoute::Refused(r)) => {
                self.deny(r.label());
                log::warn!(
                    "forward-auth refused ({}): {} is not allowed on its route",
                    r.label(),
                    original.canonical.path
                );
                return json_error(
                    session,
                    refused,
                    r.label(),
                    "the original request path is not acceptable",
                )
                .await;
            }
        };
        let (identity, refreshed) = match self.authenticate(core, session, &route).await? {
            Auth::Answered => return Ok(()),
            Auth::Public => return respond(session, 200, "text/plain", Vec::new(), &[]).await,
            Auth::Allowed {
                identity,
                refreshed,
            } => (identity, refreshed),
            Auth::NoSession => {
                // Traefik passes the answer to the browser as is: send navigations to sign in.
                // ingress-nginx accepts only 2xx/401/403 from auth-url and redirects itself.
                let req = session.req_header();
                if fa.dialect == Dialect::Traefik && wants_html(req) {
                    let return_to = return_to::sanitize(&original.url, &core.cfg.public_url);
                    let pending = core.count_login_cookies(req);
                    return self
                        .start_sign_in(
                            core,
                            session,
                            route.provider,
                            return_to,
                            pending,
                            Vec::new(),
                        )
                        .await;
                }
                self.deny("unauthenticated");
                return json_error(
                    session,
                    401,
                    "unauthenticated",
                    "no valid session; sign in first",
                )
                .await;
            }
        };
        let mut headers: Vec<(&str, String)> = Vec::new();
        let mut names: Vec<(String, String)> = Vec::new();
        core.headers.each(&identity, |name, value| {
            if let Ok(v) = value.to_str() {
                names.push((name.as_str().to_string(), v.to_string()));
            }
        });
        headers.extend(names.iter().map(|(k, v)| (k.as_str(), v.clone())));
        if let Some(v) = refreshed {
            headers.push(("set-cookie", core.sessions.set_cookie(&v)));
        }
        respond(session, 200, "text/plain", Vec::new(), &headers).await
    }
}
