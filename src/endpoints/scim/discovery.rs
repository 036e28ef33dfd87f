//! What the service provider says about itself (RFC 7643 §5–7, RFC 7644 §4):
//! `ServiceProviderConfig` (what of the protocol is supported), `ResourceTypes`, and
//! `Schemas` (which Entra reads when the provisioning configuration is saved).

use serde_json::{json, Value};

use crate::answer::Answer;
use crate::canonical::RESERVED_PREFIX;
use crate::scim::path::ENTERPRISE;
use crate::scim::resource::{
    answer, ScimError, GROUP_SCHEMA, LIST_SCHEMA, MAX_RESULTS, USER_SCHEMA,
};
use crate::scim::PATH;
use crate::state::Core;

pub(super) fn serve(core: &Core, segments: &[&str]) -> Result<Answer, ScimError> {
    let base = core.public(&format!("{RESERVED_PREFIX}{}", PATH));
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    match lower.as_slice() {
        ["serviceproviderconfig"] => Ok(answer(200, &service_provider_config(&base))),
        ["resourcetypes"] => Ok(answer(200, &list(resource_types(&base)))),
        ["resourcetypes", name] => resource_types(&base)
            .into_iter()
            .find(|r| {
                r["id"]
                    .as_str()
                    .is_some_and(|i| i.eq_ignore_ascii_case(name))
            })
            .map(|r| answer(200, &r))
            .ok_or_else(|| ScimError::new(404, None, format!("no resource type {name:?}"))),
        ["schemas"] => Ok(answer(200, &list(schemas(&base)))),
        ["schemas", _] => {
            // The URN as sent (segments keep their case).
            let urn = segments[1];
            schemas(&base)
                .into_iter()
                .find(|s| {
                    s["id"]
                        .as_str()
                        .is_some_and(|i| i.eq_ignore_ascii_case(urn))
                })
                .map(|s| answer(200, &s))
                .ok_or_else(|| ScimError::new(404, None, format!("no schema {urn:?}")))
        }
        _ => Err(ScimError::new(404, None, "no such SCIM endpoint")),
    }
}

fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Secret Token",
            "description": "The bearer token configured as scim.token (Entra: Provisioning → Admin Credentials → Secret Token)",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}

fn resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User", "name": "User", "endpoint": "/Users",
            "description": "User Account",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group", "name": "Group", "endpoint": "/Groups",
            "description": "Group",
            "schema": GROUP_SCHEMA,
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")},
        }),
    ]
}

/// One attribute's description (RFC 7643 §7).
fn a(
    name: &str,
    kind: &str,
    multi: bool,
    required: bool,
    case_exact: bool,
    uniqueness: &str,
) -> Value {
    json!({
        "name": name, "type": kind, "multiValued": multi, "required": required,
        "caseExact": case_exact, "mutability": "readWrite", "returned": "default",
        "uniqueness": uniqueness,
    })
}

fn complex(name: &str, multi: bool, subs: &[&str]) -> Value {
    let mut v = a(name, "complex", multi, false, false, "none");
    v["subAttributes"] = subs
        .iter()
        .map(|s| match *s {
            "primary" => a(s, "boolean", false, false, false, "none"),
            _ => a(s, "string", false, false, false, "none"),
        })
        .collect();
    v
}

fn schemas(base: &str) -> Vec<Value> {
    let meta =
        |id: &str| json!({"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")});
    let mut manager = a("manager", "complex", false, false, false, "none");
    manager["subAttributes"] = json!([a("value", "string", false, false, true, "none")]);
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": USER_SCHEMA, "name": "User", "description": "User Account",
            "attributes": [
                a("userName", "string", false, true, false, "server"),
                a("externalId", "string", false, false, false, "server"),
                a("active", "boolean", false, false, false, "none"),
                a("displayName", "string", false, false, false, "none"),
                a("nickName", "string", false, false, false, "none"),
                a("title", "string", false, false, false, "none"),
                a("preferredLanguage", "string", false, false, false, "none"),
                complex("name", false, &["formatted", "familyName", "givenName", "middleName"]),
                complex("emails", true, &["value", "type", "primary"]),
                complex("phoneNumbers", true, &["value", "type", "primary"]),
                complex("addresses", true, &["formatted", "streetAddress", "locality", "region", "postalCode", "country", "type", "primary"]),
            ],
            "meta": meta(USER_SCHEMA),
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": GROUP_SCHEMA, "name": "Group", "description": "Group",
            "attributes": [
                a("displayName", "string", false, true, false, "server"),
                a("externalId", "string", false, false, false, "server"),
                complex("members", true, &["value", "display"]),
            ],
            "meta": meta(GROUP_SCHEMA),
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": ENTERPRISE, "name": "EnterpriseUser", "description": "Enterprise User",
            "attributes": [
                a("employeeNumber", "string", false, false, false, "none"),
                a("department", "string", false, false, false, "none"),
                a("costCenter", "string", false, false, false, "none"),
                a("organization", "string", false, false, false, "none"),
                a("division", "string", false, false, false, "none"),
                manager,
            ],
            "meta": meta(ENTERPRISE),
        }),
    ]
}
