//! Sessions: refresh rotation and reuse detection, session tokens, logout, factors.

use std::time::Duration;

use passgate_tests::Stack;
use serde_json::{Value, json};

async fn login(stack: &Stack, token: &str, email: &str, nth: usize) -> Value {
    assert_eq!(stack.send_code(token, email).await.status, 200);
    let code = stack.smtp.code_for(email, nth).await.unwrap();
    let r = stack.authenticate(token, email, &code).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    let tokens = login(&stack, &token, "quin@example.com", 1).await;
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();

    let r = stack
        .post(
            "/v1/auth/token/refresh",
            &token,
            &json!({"refresh_token": first}),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["session_id"], tokens["session_id"]);
    let second = r.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);

    // The rotated token presented again: refused, and the whole session is revoked.
    let reuse = stack
        .post(
            "/v1/auth/token/refresh",
            &token,
            &json!({"refresh_token": first}),
            &[],
        )
        .await;
    assert_eq!(
        (reuse.status, reuse.error_code()),
        (401, "auth_invalid_credentials")
    );
    let after = stack
        .post(
            "/v1/auth/token/refresh",
            &token,
            &json!({"refresh_token": second}),
            &[],
        )
        .await;
    assert_eq!(
        (after.status, after.error_code()),
        (401, "auth_invalid_credentials"),
        "the newest token died with the session"
    );
    let session = stack
        .post(
            "/v1/auth/session/authenticate",
            &token,
            &json!({"session_id": tokens["session_id"]}),
            &[],
        )
        .await;
    assert_eq!(
        (session.status, session.error_code()),
        (404, "session_not_found")
    );
}

#[tokio::test]
async fn session_tokens_logout_and_tenant_isolation() {
    let stack = Stack::start().await;
    let (_, a) = stack.app_with_token("A").await;
    let (_, b) = stack.app_with_token("B").await;
    let tokens = login(&stack, &a, "rae@example.com", 1).await;
    let sid = tokens["session_id"].clone();

    let fresh = stack
        .post(
            "/v1/auth/session/authenticate",
            &a,
            &json!({"session_id": sid}),
            &[],
        )
        .await;
    assert_eq!(fresh.status, 200, "{:?}", fresh.body);
    assert_eq!(fresh.body["session_id"], sid);

    // App B can neither refresh nor use nor end app A's session.
    let r = stack
        .post(
            "/v1/auth/token/refresh",
            &b,
            &json!({"refresh_token": tokens["refresh_token"]}),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (401, "auth_invalid_credentials")
    );
    assert_eq!(
        stack
            .post(
                "/v1/auth/session/authenticate",
                &b,
                &json!({"session_id": sid}),
                &[]
            )
            .await
            .status,
        404
    );
    assert_eq!(
        stack
            .post(
                "/v1/auth/session/logout",
                &b,
                &json!({"session_id": sid}),
                &[]
            )
            .await
            .status,
        404
    );
    // A's refresh still works (B's failed attempt did not count as reuse).
    let r = stack
        .post(
            "/v1/auth/token/refresh",
            &a,
            &json!({"refresh_token": tokens["refresh_token"]}),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let out = stack
        .post(
            "/v1/auth/session/logout",
            &a,
            &json!({"session_id": sid}),
            &[],
        )
        .await;
    assert_eq!(out.status, 204, "{:?}", out.body);
    let r = stack
        .post(
            "/v1/auth/token/refresh",
            &a,
            &json!({"refresh_token": r.body["refresh_token"]}),
            &[],
        )
        .await;
    assert_eq!(r.status, 401, "logout ends the refresh tokens");
    assert_eq!(
        stack
            .post(
                "/v1/auth/session/authenticate",
                &a,
                &json!({"session_id": sid}),
                &[]
            )
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_code_with_an_unknown_session_is_not_burned() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    assert_eq!(stack.send_code(&token, "sam@example.com").await.status, 200);
    let code = stack.smtp.code_for("sam@example.com", 1).await.unwrap();
    let body = json!({"identifier_type": "email", "identifier": "sam@example.com", "passcode": code, "session_id": uuid::Uuid::now_v7()});
    let r = stack
        .post("/v1/auth/otp/authenticate", &token, &body, &[])
        .await;
    assert_eq!((r.status, r.error_code()), (404, "session_not_found"));
    // The same code still works without the bad session.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        stack
            .authenticate(&token, "sam@example.com", &code)
            .await
            .status,
        200
    );
}
