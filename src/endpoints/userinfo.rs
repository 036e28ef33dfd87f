//! `/_authgate/userinfo`: the session's identity as JSON, for single-page apps that want to
//! show who is signed in without a header-reading backend. Same-origin only (a cross-site
//! page cannot read it, and is refused before that), `no-store`, and 401 JSON without a
//! session. It answers what the upstream's identity headers say, never a token.

use crate::answer::Answer;
use crate::authenticate::{session_of, Unusable};
use crate::exchange::Downstream;
use crate::state::Core;

pub(crate) async fn userinfo(core: &Core, down: &mut dyn Downstream) -> Answer {
    let req = down.req();
    if !matches!(req.method, http::Method::GET | http::Method::HEAD) {
        return Answer::json_error(405, "method", "userinfo answers GET");
    }
    let h = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
    let public = core.cfg.public_url.origin().ascii_serialization();
    let cross_site = h("sec-fetch-site")
        .is_some_and(|s| !s.eq_ignore_ascii_case("same-origin") && !s.eq_ignore_ascii_case("none"))
        || h("origin").is_some_and(|o| o != public);
    if cross_site {
        core.metrics.deny("userinfo_cross_site");
        return Answer::json_error(
            403,
            "cross_site",
            "userinfo answers same-origin requests only",
        );
    }
    let found = match session_of(core, down).await {
        Ok(Some(found)) => found,
        Ok(None) | Err(Unusable::Expired) | Err(Unusable::Reauthenticate(_)) => {
            return Answer::json_error(401, "unauthenticated", "no valid session; sign in first")
        }
        Err(Unusable::StoreDown) => return Answer::store_unavailable(false),
    };
    let id = &found.identity;
    let list = |l: &crate::identity::List| l.iter().map(|v| v.into_owned()).collect::<Vec<_>>();
    let mut answer = Answer::json(
        200,
        serde_json::json!({
            "user": id.user,
            "email": id.email,
            "name": id.name,
            "tenant": id.tenant.as_deref(),
            "provider": &*id.provider,
            "groups": list(&core.headers.groups_seen(id)),
            "roles": list(&id.roles),
            "expires_at": found.held.exp,
        }),
    );
    if let Some(v) = found.refreshed {
        answer = answer.cookie(core.cookies.set_session(&v, down.req()));
    }
    answer
}
