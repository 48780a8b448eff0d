//! Abuse limits and their opt-outs, and signing-key rotation.

use passgate_tests::{Options, Stack};
use serde_json::{Value, json};

#[tokio::test]
async fn hourly_cap_per_identifier_and_per_client_ip() {
    let stack = Stack::start_with(
        Options::default()
            .set("PASSGATE_OTP_SENDS_PER_HOUR", "2")
            .set("PASSGATE_SENDS_PER_IP_PER_HOUR", "3"),
    )
    .await;
    let (app, token) = stack.app_with_token("Acme").await;
    assert_eq!(stack.send_code(&token, "zed@example.com").await.status, 200);
    assert_eq!(stack.send_code(&token, "zed@example.com").await.status, 200);
    let r = stack.send_code(&token, "zed@example.com").await;
    assert_eq!((r.status, r.error_code()), (429, "too_many_requests"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry));
    // An hour later the identifier may receive codes again.
    stack.set_clock_offset(3601);
    // (the caller token expired meanwhile: take a new one)
    let token = stack.token(&app).await;
    let r = stack
        .post("/v1/auth/otp/send", &token, &json!({"channel": "email", "identifier_type": "email", "identifier": "zed@example.com", "create_new_user": true}), &[])
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // Per end-user IP, as named by the calling backend (IPv6 counted per /64).
    let send = |email: &'static str, ip: &'static str| {
        let body = json!({"channel": "email", "identifier_type": "email", "identifier": email, "create_new_user": true});
        let stack = &stack;
        let token = token.clone();
        async move {
            stack
                .post(
                    "/v1/auth/otp/send",
                    &token,
                    &body,
                    &[("Passgate-Client-IP", ip)],
                )
                .await
        }
    };
    assert_eq!(send("a1@example.com", "2001:db8:1:2::1").await.status, 200);
    assert_eq!(send("a2@example.com", "2001:db8:1:2::2").await.status, 200);
    assert_eq!(
        send("a3@example.com", "2001:db8:1:2:ffff::9").await.status,
        200
    );
    let r = send("a4@example.com", "2001:db8:1:2::4").await;
    assert_eq!(
        (r.status, r.error_code()),
        (429, "too_many_requests"),
        "same /64"
    );
    assert_eq!(
        send("a5@example.com", "203.0.113.9").await.status,
        200,
        "another address"
    );
    let r = send("a6@example.com", "not-an-ip").await;
    assert_eq!((r.status, r.error_code()), (400, "system_invalid_input"));
}

#[tokio::test]
async fn apps_may_opt_into_revealing_unknown_users() {
    let stack = Stack::start().await;
    let app = stack
        .create_app_full("Open", &[], r#"{"reveal_unknown_users": true}"#)
        .await;
    let token = stack.token(&app).await;
    let body =
        json!({"channel": "email", "identifier_type": "email", "identifier": "nobody@example.com"});
    let r = stack.post("/v1/auth/otp/send", &token, &body, &[]).await;
    assert_eq!((r.status, r.error_code()), (404, "user_not_found"));
    // With create_new_user the code goes out as usual.
    assert_eq!(
        stack.send_code(&token, "nobody@example.com").await.status,
        200
    );
}

#[tokio::test]
async fn a_disabled_app_gets_no_token_and_its_old_tokens_run_no_command() {
    let stack = Stack::start_with(Options::default().set("PASSGATE_APP_CACHE_MS", "300")).await;
    let (app, token) = stack.app_with_token("Acme").await;
    // The workers read (and cache) the app while it is active.
    assert_eq!(stack.send_code(&token, "di@example.com").await.status, 200);
    stack
        .smtp
        .wait_for("di@example.com", 1, std::time::Duration::from_secs(15))
        .await
        .unwrap();
    stack
        .db()
        .await
        .execute(
            "UPDATE apps SET disabled_at = now() WHERE id = $1::text::uuid",
            &[&app.app_id],
        )
        .await
        .unwrap();
    let r = stack.token_response(&app).await;
    assert_eq!(r.status().as_u16(), 401, "no new token for a disabled app");
    // Once the workers' cached copy is older than PASSGATE_APP_CACHE_MS, commands with the
    // old token are refused.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let r = stack.send_code(&token, "di@example.com").await;
    assert_eq!(
        (r.status, r.error_code()),
        (403, "app_disabled"),
        "{:?}",
        r.body
    );
    let r = stack.authenticate(&token, "di@example.com", "000000").await;
    assert_eq!(
        (r.status, r.error_code()),
        (403, "app_disabled"),
        "{:?}",
        r.body
    );
    assert_eq!(stack.smtp.mails_to("di@example.com").len(), 1);
    // The routes the API answers itself refuse the old token too: users and polling.
    for path in [
        "/v1/users?email=di@example.com".to_owned(),
        format!("/v1/requests/{}", uuid::Uuid::now_v7()),
    ] {
        let r = stack.get(&path, &token).await;
        assert_eq!(
            (r.status, r.error_code()),
            (403, "app_disabled"),
            "{path}: {:?}",
            r.body
        );
    }
    let user = json!({"email": "new@example.com"});
    let r = stack.post("/v1/users", &token, &user, &[]).await;
    assert_eq!((r.status, r.error_code()), (403, "app_disabled"));
}

fn kid(jwt: &str) -> String {
    jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap()
}

async fn jwks_kids(stack: &Stack) -> Vec<String> {
    let v: Value = stack
        .http
        .get(format!("{}/oidc/jwks", stack.api_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn signing_key_rotation_keeps_the_old_key_published_until_its_tokens_expire() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    // A verify worker publishes a key before the first login.
    let before = jwks_kids(&stack).await;
    assert_eq!(before.len(), 1);
    assert_eq!(stack.send_code(&token, "kai@example.com").await.status, 200);
    let code = stack.smtp.code_for("kai@example.com", 1).await.unwrap();
    let first = stack.authenticate(&token, "kai@example.com", &code).await;
    let old = kid(first.body["access_token"].as_str().unwrap());
    assert_eq!(old, before[0]);

    stack.cli(&["keys", "rotate"]).await;
    let after = jwks_kids(&stack).await;
    assert_eq!(after.len(), 2, "old and new key both published");
    assert!(after.contains(&old));
    assert_eq!(stack.send_code(&token, "kai@example.com").await.status, 200);
    let code = stack.smtp.code_for("kai@example.com", 2).await.unwrap();
    let second = stack.authenticate(&token, "kai@example.com", &code).await;
    let new = kid(second.body["access_token"].as_str().unwrap());
    assert_ne!(new, old, "tokens are signed with the new key");

    // Once the old key's tokens have expired (15 min + 1 min), it leaves the JWKS.
    stack.set_clock_offset(17 * 60);
    assert_eq!(jwks_kids(&stack).await, vec![new]);
}
