//! Where each refusal is fixed in the Entra admin center, for `authgate explain`. The checks
//! themselves stay where the gateway makes them; this only names the setting behind each.

use super::AadError;
use crate::idp::saml_verify::AssertionRejection;

/// The Entra setting to change for a refused SAML response (None: nothing in Entra to change).
pub(crate) fn saml_fix(r: &AssertionRejection) -> Option<String> {
    let app = "Entra admin center → Enterprise applications → this app → Single sign-on";
    Some(match r {
        AssertionRejection::TooLarge | AssertionRejection::Encoding | AssertionRejection::Malformed(_) => {
            "paste the SAMLResponse form value exactly as the browser posted it (base64)".into()
        }
        AssertionRejection::DocType => {
            "Entra never sends a DOCTYPE: this response was not made by Entra".into()
        }
        AssertionRejection::AssertionCount(_) => {
            "Entra sends exactly one assertion: this response was altered or not made by Entra"
                .into()
        }
        AssertionRejection::IdpStatus { .. } => {
            "Entra refused the sign-in itself: act on its message (often assignment: Users and groups)".into()
        }
        AssertionRejection::BadSignature => format!(
            "{app} → SAML Certificates: the active signing certificate must be one the gateway trusts (its metadata URL, metadata file or idp_cert_fingerprints); Signing option \"Sign SAML assertion\" or \"Sign SAML response and assertion\"; Signing algorithm SHA-256"
        ),
        AssertionRejection::Encrypted => format!("{app} → Token encryption: turn it off"),
        AssertionRejection::WrongIssuer { got, .. } => format!(
            "the response came from {got}: point the provider at that tenant's metadata (tenant / idp_metadata_url / idp_entity_id)"
        ),
        AssertionRejection::WrongAudience { expected, .. } => format!(
            "{app} → Basic SAML Configuration → Identifier (Entity ID): add exactly {expected} (trailing slash included) and make it the default"
        ),
        AssertionRejection::WrongDestination { expected, .. } | AssertionRejection::WrongRecipient { expected, .. } => format!(
            "{app} → Basic SAML Configuration → Reply URL (Assertion Consumer Service URL): exactly {expected} (public_url + the ACS path)"
        ),
        AssertionRejection::NotYetValid { .. } | AssertionRejection::Expired { .. } => {
            "nothing in Entra: check the gateway host's clock (NTP), or paste a response captured within the last minutes".into()
        }
        AssertionRejection::NoBearer => {
            "Entra always sends a bearer confirmation: this response was not made by Entra".into()
        }
        AssertionRejection::UnknownInResponseTo { .. } => {
            "nothing in Entra: a response answers the one browser that started its sign-in".into()
        }
        AssertionRejection::Unsolicited => format!(
            "started from My Apps (IdP-initiated): set allow_idp_initiated: true on the provider, or {app} → Basic SAML Configuration → Sign on URL = the app's URL so My Apps starts at the gateway"
        ),
        AssertionRejection::Replay(_) => return None,
        AssertionRejection::NoNameId => format!(
            "{app} → Attributes & Claims → Unique User Identifier (Name ID): give it a source attribute"
        ),
        AssertionRejection::NoUserKey(attr) => format!(
            "{app} → Attributes & Claims: add a claim named {attr} (the provider's user_attribute)"
        ),
    })
}

/// The Entra setting behind an error Entra sent to the redirect URI.
pub(crate) fn aad_fix(e: &AadError) -> &'static str {
    match e.reason() {
        "not_assigned" => "Enterprise applications → this app → Users and groups: assign the user (or a group they are directly in: nested groups do not count), or Properties → Assignment required? = No",
        "conditional_access" => "Protection → Conditional Access: the policy named in the sign-in log (Sign-in logs → the Correlation ID) blocked it",
        "consent_required" => "App registrations → this app → API permissions: Grant admin consent",
        "external_account" => "the account is not in this tenant: invite it as a guest (External Identities), or sign in with a work account of the tenant",
        "redirect_uri_mismatch" => "App registrations → this app → Authentication → Web → Redirect URIs: add public_url + /_authgate/callback/<provider name> exactly",
        "unknown_client" => "client_id is not an app of this tenant: App registrations → the Application (client) ID, and the tenant it lives in",
        "access_denied" => "the user or an admin declined: check Enterprise applications → this app → Properties and the sign-in log",
        _ => "look the code up in Monitoring → Sign-in logs by its Correlation ID",
    }
}
