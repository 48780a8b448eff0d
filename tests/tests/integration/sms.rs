//! Text-message codes through a local server speaking Twilio's Messages API, and the abuse
//! limits.

use std::time::Duration;

use passgate_tests::{Options, Stack, twilio};
use serde_json::json;

fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn sms_code_login_through_twilio() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    let r = stack.send_sms_code(&token, "+1 415 555 0111").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let sms = stack
        .twilio
        .wait_for("+14155550111", 1, Duration::from_secs(15))
        .await
        .unwrap();
    let sms = &sms[0];
    assert_eq!(sms.from.as_deref(), Some(twilio::FROM));
    assert!(sms.body.contains("Acme"), "{}", sms.body);
    assert!(sms.body.chars().count() <= 160);
    assert!(
        sms.idempotency_token.is_some(),
        "Twilio's idempotency header is sent"
    );
    let code = sms.code().unwrap();
    assert_eq!(code.len(), 6);
    let r = stack
        .post(
            "/v1/auth/otp/authenticate",
            &token,
            &json!({"identifier_type": "phone_number", "identifier": "+14155550111", "passcode": code}),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = claims(r.body["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], json!(["sms_otp"]));
    assert_eq!(id["phone_number"], "+14155550111");
    assert_eq!(id["phone_number_verified"], true);
}

#[tokio::test]
async fn email_then_sms_in_one_session_is_mfa() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    let created = stack
        .post(
            "/v1/users",
            &token,
            &json!({"email": "vic@example.com", "phone_number": "+14155550122"}),
            &[],
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(stack.send_code(&token, "vic@example.com").await.status, 200);
    let code = stack.smtp.code_for("vic@example.com", 1).await.unwrap();
    let first = stack.authenticate(&token, "vic@example.com", &code).await;
    assert_eq!(first.status, 200);
    let sid = first.body["session_id"].clone();

    let r = stack
        .post(
            "/v1/auth/otp/send",
            &token,
            &json!({"channel": "sms", "identifier_type": "email", "identifier": "vic@example.com"}),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let code = stack.twilio.code_for("+14155550122", 1).await.unwrap();
    let second = stack
        .post(
            "/v1/auth/otp/authenticate",
            &token,
            &json!({"identifier_type": "email", "identifier": "vic@example.com", "passcode": code, "session_id": sid}),
            &[],
        )
        .await;
    assert_eq!(second.status, 200, "{:?}", second.body);
    assert_eq!(second.body["session_id"], sid);
    let access = claims(second.body["access_token"].as_str().unwrap());
    assert_eq!(access["amr"], json!(["email_otp", "sms_otp", "mfa"]));
}

#[tokio::test]
async fn phone_format_and_country_allow_list() {
    let stack = Stack::start().await;
    let app = stack
        .create_app_full("Acme", &[], r#"{"sms_allowed_countries": ["FR"]}"#)
        .await;
    let token = stack.token(&app).await;
    for bad in ["4155550111", "+1 555", "+1 555 000 0000", "phone"] {
        let r = stack.send_sms_code(&token, bad).await;
        assert_eq!(
            (r.status, r.error_code()),
            (400, "system_invalid_input"),
            "{bad}"
        );
        assert!(r.body["message"].as_str().unwrap().contains("identifier"));
    }
    let r = stack.send_sms_code(&token, "+14155550133").await;
    assert_eq!(
        (r.status, r.error_code()),
        (400, "phone_number_country_not_allowed"),
        "{:?}",
        r.body
    );
    assert_eq!(
        stack.send_sms_code(&token, "+33612345678").await.status,
        200
    );
    stack
        .twilio
        .wait_for("+33612345678", 1, Duration::from_secs(15))
        .await
        .unwrap();
    assert!(stack.twilio.messages_to("+14155550133").is_empty());
}

#[tokio::test]
async fn sms_pumping_limits_per_prefix_and_per_app() {
    let stack = Stack::start_with(
        Options::default()
            .set("PASSGATE_SMS_PER_PREFIX_PER_HOUR", "2")
            .set("PASSGATE_SENDS_PER_APP_PER_HOUR", "4"),
    )
    .await;
    let (_, token) = stack.app_with_token("Acme").await;
    // Same prefix (+14155), different numbers: the third is refused.
    assert_eq!(
        stack.send_sms_code(&token, "+14155550141").await.status,
        200
    );
    assert_eq!(
        stack.send_sms_code(&token, "+14155550142").await.status,
        200
    );
    let r = stack.send_sms_code(&token, "+14155550143").await;
    assert_eq!(
        (r.status, r.error_code()),
        (429, "too_many_requests"),
        "{:?}",
        r.body
    );
    assert!(
        r.header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| (1..=3600).contains(&s))
    );
    // Another prefix still works, until the app's hourly cap (4 sends).
    assert_eq!(
        stack.send_sms_code(&token, "+12125550141").await.status,
        200
    );
    assert_eq!(stack.send_code(&token, "wes@example.com").await.status, 200);
    let r = stack.send_code(&token, "xan@example.com").await;
    assert_eq!(
        (r.status, r.error_code()),
        (429, "too_many_requests"),
        "{:?}",
        r.body
    );
    // Another app is not affected.
    let (_, other) = stack.app_with_token("Other").await;
    assert_eq!(stack.send_code(&other, "xan@example.com").await.status, 200);
}

#[tokio::test]
async fn twilio_errors_are_classified() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    // 500 then 429: transient, retried, delivered once.
    stack.twilio.fail_next(&[500, 429]);
    assert_eq!(
        stack.send_sms_code(&token, "+14155550151").await.status,
        200
    );
    stack
        .twilio
        .wait_for("+14155550151", 1, Duration::from_secs(30))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stack.twilio.messages_to("+14155550151").len(), 1);
    // 400 (Twilio refuses the number): permanent, recorded, not retried.
    stack.twilio.fail_next(&[400]);
    assert_eq!(
        stack.send_sms_code(&token, "+14155550152").await.status,
        200
    );
    let db = stack.db().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let row = db
            .query_opt("SELECT status, error_class, sealed_payload IS NULL FROM deliveries WHERE destination = '+14155550152'", &[])
            .await
            .unwrap();
        if let Some(row) = row
            && row.get::<_, String>(0) == "failed"
        {
            assert_eq!(row.get::<_, String>(1), "permanent");
            assert!(row.get::<_, bool>(2), "the sealed code is erased");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery not failed in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stack.twilio.messages_to("+14155550152").is_empty());
    // Twilio's message names the number; what is stored names it masked.
    let row = db
        .query_one(
            "SELECT d.last_error, a.error FROM deliveries d JOIN delivery_attempts a \
             ON a.delivery_id = d.id WHERE d.destination = '+14155550152'",
            &[],
        )
        .await
        .unwrap();
    for stored in [row.get::<_, String>(0), row.get::<_, String>(1)] {
        assert!(stored.contains("21211"), "{stored}");
        assert!(stored.contains("+1415***52"), "{stored}");
        assert!(!stored.contains("4155550152"), "{stored}");
    }
    let attempts: i32 = db
        .query_one(
            "SELECT attempts FROM deliveries WHERE destination = '+14155550152'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 1);
}

#[tokio::test]
async fn link_sends_have_a_cooldown_too() {
    let stack =
        Stack::start_with(Options::default().set("PASSGATE_OTP_RESEND_COOLDOWN_SECS", "30")).await;
    let app = stack
        .create_app_with("Acme", &["https://app.example.com/cb"])
        .await;
    let token = stack.token(&app).await;
    let body = json!({"email": "yan@example.com", "redirect_uri": "https://app.example.com/cb"});
    assert_eq!(
        stack
            .post("/v1/auth/link/email/send", &token, &body, &[])
            .await
            .status,
        200
    );
    let r = stack
        .post("/v1/auth/link/email/send", &token, &body, &[])
        .await;
    assert_eq!((r.status, r.error_code()), (429, "too_many_requests"));
    assert!(r.header("retry-after").is_some());
}
