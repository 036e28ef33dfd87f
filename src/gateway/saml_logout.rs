//! SAML single logout at `/_authgate/saml/<name>/slo`: the IdP's LogoutRequest, in the
//! HTTP-Redirect or HTTP-POST binding, believed only when the IdP signed it (see
//! `idp::saml_logout`); it ends the sessions it names, this browser's and, through the
//! session layer, any copy of their cookies. The answer is a LogoutResponse back to the IdP,
//! signed when the SP has a key. The IdP's LogoutResponse to our own logout shows the
//! signed-out page.

use super::*;
use crate::idp::saml::LogoutInput;

impl Gateway {
    pub(super) async fn saml_slo(
        &self,
        core: &Core,
        session: &mut Session,
        saml: &SamlProvider,
    ) -> Result<()> {
        let signed_out = core.public(&format!("{RESERVED_PREFIX}/signed_out"));
        let (input, relay) = if session.req_header().method == http::Method::POST {
            let Some(form) = read_form(session, saml_verify::MAX_RESPONSE_BYTES * 2).await? else {
                self.deny("logout_too_large");
                return page(
                    session,
                    413,
                    "Sign-out failed",
                    "The sign-out request is too large.",
                    None,
                )
                .await;
            };
            let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            match get("SAMLRequest") {
                Some(r) => (Some(LogoutInput::Post(r)), get("RelayState")),
                None => (None, None),
            }
        } else {
            let q = query_pairs(session.req_header());
            let has_request = q.iter().any(|(n, _)| n == "SAMLRequest");
            let relay = q
                .iter()
                .find(|(n, _)| n == "RelayState")
                .map(|(_, v)| v.clone());
            let raw = session.req_header().uri.query().unwrap_or("").to_string();
            (has_request.then_some(LogoutInput::Redirect(raw)), relay)
        };
        let Some(input) = input else {
            // The IdP's LogoutResponse to the logout this gateway started at sign-out, when
            // the session was already revoked: nothing to believe, only a page to show.
            return redirect(session, signed_out, &[core.sessions.clear_cookie()]).await;
        };
        let request = match saml.logout_request(input).await {
            Ok(r) => r,
            Err(why) => {
                self.deny(why.reason());
                log::warn!(
                    "SAML logout request for {} refused ({}): {why}",
                    saml.name,
                    why.reason()
                );
                let detail = format!("Reason: {}", why.reason());
                return page(
                    session,
                    400,
                    "Sign-out request refused",
                    "The identity provider's sign-out request could not be verified, so no session was ended.",
                    Some(&detail),
                )
                .await;
            }
        };
        let now = now_secs();
        // This browser's own session, if it is one of them, ends here and now...
        let names = |id: &Identity| {
            *id.provider == *saml.name
                && id.name_id.as_deref() == Some(request.name_id.as_str())
                && (request.session_indexes.is_empty()
                    || id
                        .session_index
                        .as_ref()
                        .is_some_and(|s| request.session_indexes.contains(s)))
        };
        let cookie = core.sessions.cfg.cookie_name.clone();
        let values: Vec<String> = cookie_values(session.req_header(), &cookie)
            .map(str::to_string)
            .collect();
        let mut ended_here = false;
        for v in values {
            if let Some(id) = core.sessions.revoke_if(&v, names).await {
                ended_here = true;
                self.metrics
                    .sign_outs
                    .with_label_values(&[&id.provider])
                    .inc();
            }
        }
        // ...and every copy of the named sessions' cookies stops working too.
        core.sessions
            .end_by_idp(&saml.name, &request.name_id, &request.session_indexes, now);
        crate::logging::audit(
            "sign_out",
            serde_json::json!({"provider": saml.name, "name_id": request.name_id,
                "session_indexes": request.session_indexes, "initiator": "idp",
                "request": request.id, "this_browser": ended_here}),
        );
        let relay = relay.filter(|r| {
            let idp = saml.idp_slo_url();
            let mut origins = vec![&core.cfg.public_url];
            origins.extend(idp.as_ref());
            let ok = return_to::relay_state_ok(r, &origins);
            if !ok {
                log::warn!(
                    "SAML logout request for {}: RelayState {:?} is neither opaque nor on the gateway's or the IdP's origin; not sent back",
                    saml.name,
                    r.chars().take(128).collect::<String>()
                );
            }
            ok
        });
        let location = saml
            .logout_response_url(&request.id, relay.as_deref())
            .map(|u| u.to_string())
            .unwrap_or(signed_out);
        let clear = if ended_here {
            vec![core.sessions.clear_cookie()]
        } else {
            Vec::new()
        };
        redirect(session, location, &clear).await
    }
}

/// A form POST body, at most `limit` bytes (`None` beyond), as name/value pairs (at most 16).
pub(super) async fn read_form(
    session: &mut Session,
    limit: usize,
) -> Result<Option<Vec<(String, String)>>> {
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            return Ok(None);
        }
    }
    Ok(Some(
        url::form_urlencoded::parse(&body)
            .take(16)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    ))
}
