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

/// The email for `template` in the app's `locale`: `settings.templates.<template>.<locale>`
/// may give `subject`, `text` and `html` with the placeholders `{secret}` (the code or the
/// link), `{app}` and `{minutes}`; a custom `text` must contain `{secret}`. What is not given
/// comes from the built-in English email. Values put into the HTML are escaped.
pub fn render_localized(
    template: &str,
    app_name: &str,
    settings: &Value,
    locale: &str,
    secret: &str,
    minutes: i64,
) -> Option<Rendered> {
    let mut rendered = render(template, app_name, settings, secret, minutes)?;
    let custom = &settings["templates"][template][locale];
    let fill = |t: &str, html: bool| {
        let (secret, app) = if html {
            (escape(secret), escape(app_name))
        } else {
            (secret.to_owned(), app_name.to_owned())
        };
        t.replace("{secret}", &secret)
            .replace("{app}", &app)
            .replace("{minutes}", &minutes.to_string())
    };
    if let Some(subject) = custom["subject"].as_str() {
        rendered.subject = fill(subject, false);
    }
    if let Some(text) = custom["text"].as_str().filter(|t| t.contains("{secret}")) {
        rendered.text = fill(text, false);
        rendered.html = match custom["html"].as_str().filter(|h| h.contains("{secret}")) {
            Some(html) => fill(html, true),
            None => format!(
                "<!doctype html><html><body><pre>{}</pre></body></html>",
                escape(&rendered.text)
            ),
        };
    }
    Some(rendered)
}

/// GSM 03.38 basic character set (what fits 160 characters in one SMS segment).
fn is_gsm7(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || " @$\n\r_!\"#%&'()*+,-./:;<=>?".contains(c)
        || "£¥èéùìòÇØøÅåΔΦΓΛΩΠΨΣΘΞÆæßÉ¡ÄÖÑÜ§¿äöñüà".contains(c)
}

/// Whether a text is one GSM-7 segment.
pub fn fits_one_sms(text: &str) -> bool {
    text.chars().count() <= 160 && text.chars().all(is_gsm7)
}

/// The text message for `template`: the app's `settings.templates.sms_<template>.<locale>`
/// (placeholders `{code}`, `{app}`, `{minutes}`) when it fits one GSM-7 segment, else the
/// built-in English text (trimming the app name if needed).
pub fn render_sms(
    template: &str,
    app_name: &str,
    settings: &Value,
    locale: &str,
    secret: &str,
    minutes: i64,
) -> Option<String> {
    if template != "otp" {
        return None;
    }
    let custom = settings["templates"]["sms_otp"][locale]
        .as_str()
        .or_else(|| settings["templates"]["sms_otp"]["en"].as_str())
        .map(|t| {
            t.replace("{code}", secret)
                .replace("{app}", app_name)
                .replace("{minutes}", &minutes.to_string())
        });
    if let Some(text) = custom.filter(|t| fits_one_sms(t) && t.contains(secret)) {
        return Some(text);
    }
    let name: String = app_name.chars().filter(|c| is_gsm7(*c)).take(60).collect();
    Some(format!(
        "{secret} is your {name} code. It expires in {minutes} min. Do not share it."
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sms_fits_one_gsm7_segment_and_falls_back() {
        use super::*;
        let text = render_sms("otp", "Acme", &Value::Null, "en", "123456", 5).unwrap_or_default();
        assert!(
            fits_one_sms(&text) && text.contains("123456") && text.contains("Acme"),
            "{text}"
        );
        let long = "x".repeat(300);
        let text = render_sms("otp", &long, &Value::Null, "en", "123456", 5).unwrap_or_default();
        assert!(fits_one_sms(&text), "{}", text.len());
        let settings =
            serde_json::json!({"templates": {"sms_otp": {"fr": "{code} est votre code {app}"}}});
        assert_eq!(
            render_sms("otp", "Acme", &settings, "fr", "123456", 5).as_deref(),
            Some("123456 est votre code Acme")
        );
        // A template without the code, or with non-GSM characters, is not used.
        let bad = serde_json::json!({"templates": {"sms_otp": {"en": "Your code 😀 {code}"}}});
        assert!(
            render_sms("otp", "Acme", &bad, "en", "123456", 5)
                .unwrap_or_default()
                .starts_with("123456 is your")
        );
    }

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
    fn apps_can_localise_emails() {
        let settings = serde_json::json!({"templates": {"otp": {"fr": {
            "subject": "Votre code {app}",
            "text": "Votre code {app} : {secret} ({minutes} min)",
            "html": "<p>Code <b>{secret}</b> pour {app}</p>"
        }}}});
        let r = render_localized("otp", "A&B", &settings, "fr", "123456", 5);
        let r = r.unwrap_or(Rendered {
            subject: String::new(),
            text: String::new(),
            html: String::new(),
        });
        assert_eq!(r.subject, "Votre code A&B");
        assert_eq!(r.text, "Votre code A&B : 123456 (5 min)");
        assert_eq!(r.html, "<p>Code <b>123456</b> pour A&amp;B</p>");
        // Another locale, or a text without the secret, falls back to the built-in email.
        let en = render_localized("otp", "A", &settings, "de", "123456", 5)
            .map(|r| r.text)
            .unwrap_or_default();
        assert!(en.starts_with("Your A sign-in code is 123456"));
        let bad = serde_json::json!({"templates": {"otp": {"en": {"text": "no code here"}}}});
        let r = render_localized("otp", "A", &bad, "en", "123456", 5)
            .map(|r| r.text)
            .unwrap_or_default();
        assert!(r.contains("123456"));
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
