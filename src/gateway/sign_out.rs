//! Sign-out: a confirmation page (GET) and a POST bound to the session by a sealed token.

use super::*;

impl Gateway {
    /// Sign-out is a POST carrying a token bound to the session, from the page a GET shows:
    /// a cross-site link or image cannot sign anyone out.
    pub(super) async fn sign_out(&self, core: &Core, session: &mut Session) -> Result<()> {
        let signed_out = core.public(&format!("{RESERVED_PREFIX}/signed_out"));
        let token_name = format!("{}_sign_out", core.sessions.cfg.base_name());
        let name = core.sessions.cfg.cookie_name.clone();
        let presented: Vec<String> = cookie_values(session.req_header(), &name)
            .map(session_digest)
            .collect();
        if session.req_header().method != http::Method::POST {
            if self.session_of(core, session.req_header()).await.is_none() {
                return redirect(session, signed_out, &[core.sessions.clear_cookie()]).await;
            }
            let token = presented
                .first()
                .and_then(|d| core.sessions.sealer().seal(&token_name, &(d, now_secs())))
                .unwrap_or_default();
            let html = pages::confirm(
                "Sign out?",
                "This ends your session with this gateway and, where the identity provider supports it, with the provider too.",
                &format!("{RESERVED_PREFIX}/sign_out"),
                &[("token", &token)],
                "Sign out",
            );
            return respond(
                session,
                200,
                "text/html; charset=utf-8",
                html.into_bytes(),
                &[],
            )
            .await;
        }
        let req = session.req_header();
        let cross_site = req
            .headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site" || v.as_bytes() == b"same-site");
        let mut body = Vec::new();
        while let Some(chunk) = session.read_request_body().await? {
            body.extend_from_slice(&chunk);
            if body.len() > 4096 {
                break;
            }
        }
        let token = url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let now = now_secs();
        let valid = !cross_site
            && body.len() <= 4096
            && core
                .sessions
                .sealer()
                .open::<(String, u64)>(&token_name, &token)
                .is_some_and(|(d, t)| {
                    now.saturating_sub(t) < LOGIN_TTL.as_secs() && presented.contains(&d)
                });
        if !valid {
            self.deny("sign_out_unconfirmed");
            log::warn!("sign-out refused: no valid confirmation token (cross-site request, expired page, or another session's token)");
            return page_with(
                session,
                403,
                "Sign-out not confirmed",
                "This sign-out did not come from the gateway's confirmation page, or the page is too old. Your session is unchanged.",
                None,
                Some((&format!("{RESERVED_PREFIX}/sign_out"), "Sign out")),
                &[],
            )
            .await;
        }
        let who = self.revoke_presented(core, session).await;
        let location = match &who {
            Some(id) => {
                crate::logging::audit(
                    "sign_out",
                    serde_json::json!({"provider": id.provider, "user": id.user, "tenant": id.tenant}),
                );
                core.providers
                    .iter()
                    .find(|p| p.name() == &*id.provider)
                    .and_then(|p| match p.as_ref() {
                        Provider::Oidc(o) => o.end_session_url(&signed_out),
                        Provider::Saml(s) => s.logout_url(id),
                    })
                    .map(|u| u.to_string())
                    .unwrap_or(signed_out)
            }
            None => signed_out,
        };
        let mut headers = vec![("location", location)];
        for c in [
            core.sessions.clear_cookie(),
            core.sessions
                .cookie(&core.loop_cookie, "", "/", Some(Duration::ZERO)),
        ] {
            headers.push(("set-cookie", c));
        }
        respond(session, 303, "text/plain", Vec::new(), &headers).await
    }
}

/// What a sign-out token is bound to: a digest of the session cookie it was issued for.
fn session_digest(cookie_value: &str) -> String {
    let d = openssl::sha::sha256(cookie_value.as_bytes());
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}
