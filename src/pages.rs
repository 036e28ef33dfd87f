//! The HTML a person sees from the gateway itself: small, accessible, self-contained (no
//! external assets), always saying what happened and what to do next.

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page asking to confirm an action: a form POSTing `fields` to `action`.
pub(crate) fn confirm(
    title: &str,
    message: &str,
    action: &str,
    fields: &[(&str, &str)],
    button: &str,
) -> String {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                escape(k),
                escape(v)
            )
        })
        .collect();
    let form = format!(
        r#"<form method="post" action="{}">{inputs}<p><button class="btn" type="submit">{}</button></p></form>"#,
        escape(action),
        escape(button)
    );
    page(title, message, None, None).replace("</main>", &format!("{form}</main>"))
}

/// A page: `title` and `message` are plain text (escaped here); `detail` is shown as a
/// preformatted block when present; `action` is a (href, label) link.
pub(crate) fn page(
    title: &str,
    message: &str,
    detail: Option<&str>,
    action: Option<(&str, &str)>,
) -> String {
    let detail = detail
        .map(|d| format!("<pre>{}</pre>", escape(d)))
        .unwrap_or_default();
    let action = action
        .map(|(href, label)| {
            format!(
                r#"<p><a class="btn" href="{}">{}</a></p>"#,
                escape(href),
                escape(label)
            )
        })
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{t}</title>
<style>body{{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}}
main{{max-width:36rem;margin:10vh auto;padding:2rem;background:#fff;border:1px solid #d0d7de;border-radius:8px}}
h1{{font-size:1.4rem;margin-top:0}}pre{{white-space:pre-wrap;background:#f6f8fa;padding:.75rem;border-radius:6px;font-size:.85rem}}
.btn{{display:inline-block;border:0;font:inherit;cursor:pointer;padding:.5rem 1rem;background:#0969da;color:#fff;border-radius:6px;text-decoration:none}}
.btn:focus{{outline:3px solid #1b1f24}}</style></head>
<body><main role="main"><h1>{t}</h1><p>{m}</p>{detail}{action}</main></body></html>
"#,
        t = escape(title),
        m = escape(message),
    )
}

/// The address page of home-realm discovery: one email field, posted to `action` with the
/// return path. The same page for everyone: it never lists the configured domains.
pub(crate) fn address_form(
    action: &str,
    rd: &str,
    binding: Option<&str>,
    remember: bool,
    error: Option<&str>,
) -> String {
    let error = error
        .map(|e| format!(r#"<p role="alert"><strong>{}</strong></p>"#, escape(e)))
        .unwrap_or_default();
    let binding = binding
        .map(|b| format!(r#"<input type="hidden" name="hb" value="{}">"#, escape(b)))
        .unwrap_or_default();
    let remember = match remember {
        true => {
            r#"<p><label><input type="checkbox" name="remember" value="1"> Remember my organization on this browser</label></p>"#
        }
        false => "",
    };
    let form = format!(
        r#"{error}<form method="post" action="{}"><input type="hidden" name="rd" value="{}">{binding}<p><label for="email">Work email address</label><br><input id="email" name="email" type="email" autocomplete="username" required autofocus maxlength="254" style="width:100%;font:inherit;padding:.4rem"></p>{remember}<p><button class="btn" type="submit">Continue</button></p></form>"#,
        escape(action),
        escape(rd),
    );
    page(
        "Sign in",
        "Enter your work email address: you will be sent to your organization's sign-in page.",
        None,
        None,
    )
    .replace("</main>", &format!("{form}</main>"))
}
