//! Message templates. Every email is multipart: plain text and HTML. Built-in English texts;
//! an app may override the subject per template in its settings
//! (`{"templates": {"otp": {"subject": "…"}, "magic_link": {"subject": "…"}}}`).

use serde_json::Value;

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn subject_override(settings: &Value, template: &str) -> Option<String> {
    settings["templates"][template]["subject"]
        .as_str()
        .map(str::to_owned)
}

/// Renders `template` with its secret (a code or a link) for the app.
pub fn render(
    template: &str,
    app_name: &str,
    settings: &Value,
    secret: &str,
    minutes: i64,
) -> Option<Rendered> {
    let app = escape(app_name);
    match template {
        "otp" => Some(Rendered {
            subject: subject_override(settings, template)
                .unwrap_or_else(|| format!("Your {app_name} sign-in code")),
            text: format!(
                "Your {app_name} sign-in code is {secret}\n\nIt expires in {minutes} minutes. If you did not ask for it, ignore this email.\n"
            ),
            html: format!(
                "<!doctype html><html><body><p>Your {app} sign-in code is</p><p style=\"font-size:24px;letter-spacing:4px\"><strong>{code}</strong></p><p>It expires in {minutes} minutes. If you did not ask for it, ignore this email.</p></body></html>",
                code = escape(secret)
            ),
        }),
        "magic_link" => Some(Rendered {
            subject: subject_override(settings, template)
                .unwrap_or_else(|| format!("Sign in to {app_name}")),
            text: format!(
                "Sign in to {app_name} with this link:\n\n{secret}\n\nIt works once and expires in {minutes} minutes. If you did not ask for it, ignore this email.\n"
            ),
            html: format!(
                "<!doctype html><html><body><p><a href=\"{link}\">Sign in to {app}</a></p><p>Or paste this link into your browser:<br>{link}</p><p>It works once and expires in {minutes} minutes. If you did not ask for it, ignore this email.</p></body></html>",
                link = escape(secret)
            ),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_parts_and_escapes_html() {
        let r = render(
            "magic_link",
            "A<b>",
            &Value::Null,
            "https://x.test/cb?code=1&state=2",
            15,
        );
        let r = r.unwrap_or(Rendered {
            subject: String::new(),
            text: String::new(),
            html: String::new(),
        });
        assert!(r.text.contains("https://x.test/cb?code=1&state=2"));
        assert!(r.html.contains("https://x.test/cb?code=1&amp;state=2"));
        assert!(r.html.contains("A&lt;b&gt;"));
        assert!(render("nope", "A", &Value::Null, "", 1).is_none());
    }

    #[test]
    fn apps_can_override_the_subject() {
        let settings = serde_json::json!({"templates": {"otp": {"subject": "Code"}}});
        assert_eq!(
            render("otp", "A", &settings, "123456", 5)
                .map(|r| r.subject)
                .as_deref(),
            Some("Code")
        );
    }
}
