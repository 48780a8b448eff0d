//! Email one-time codes end to end, and their security properties.

use std::collections::HashMap;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use passgate_tests::{Options, Stack};
use serde_json::{Value, json};

/// Validates a JWT against the stack's JWKS and returns its claims.
async fn verify_jwt(stack: &Stack, token: &str, audience: &str) -> Value {
    let jwks: JwkSet = stack
        .http
        .get(format!("{}/oidc/jwks", stack.api_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    let kid = header.kid.expect("kid");
    let jwk = jwks.find(&kid).expect("signing key published in the JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[stack.api_url.as_str()]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("token verifies against the JWKS")
        .claims
}

#[tokio::test]
async fn email_code_login_end_to_end_with_jwt_verified_against_jwks() {
    let stack = Stack::start().await;
    let (app, token) = stack.app_with_token("Acme").await;
    let sent = stack.send_code(&token, "Alice@Example.com").await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    assert_eq!(sent.body["code_length"], 6);
    assert!(sent.body["expires_at"].is_string());

    let mail = stack
        .smtp
        .wait_for("alice@example.com", 1, std::time::Duration::from_secs(15))
        .await
        .unwrap();
    assert!(mail[0].data.contains("Acme"), "the email names the app");
    assert!(
        mail[0].data.contains("multipart/alternative"),
        "plain text + HTML"
    );
    let code = mail[0].code().unwrap();
    assert_eq!(code.len(), 6);

    let auth = stack.authenticate(&token, "alice@example.com", &code).await;
    assert_eq!(auth.status, 200, "{:?}", auth.body);
    for field in ["access_token", "id_token", "refresh_token", "session_id"] {
        assert!(
            auth.body[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}"
        );
    }
    assert_eq!(auth.body["token_type"], "Bearer");
    assert_eq!(auth.body["expires_in"], 900);

    let claims = verify_jwt(
        &stack,
        auth.body["access_token"].as_str().unwrap(),
        &app.client_id,
    )
    .await;
    assert_eq!(claims["amr"], json!(["email_otp"]));
    assert_eq!(claims["sid"], auth.body["session_id"]);
    let id_claims = verify_jwt(
        &stack,
        auth.body["id_token"].as_str().unwrap(),
        &app.client_id,
    )
    .await;
    assert_eq!(id_claims["email"], "alice@example.com");
    assert_eq!(id_claims["email_verified"], true);
    assert_eq!(id_claims["sub"], claims["sub"]);

    // The user was created (create_new_user) and is the token's subject.
    let db = stack.db().await;
    let row = db
        .query_one(
            "SELECT id::text FROM users WHERE email = 'alice@example.com'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(claims["sub"].as_str().unwrap(), row.get::<_, String>(0));

    // A forged signature does not verify.
    let access = auth.body["access_token"].as_str().unwrap();
    let forged = passgate_tests::forge(access);
    let jwks: jsonwebtoken::jwk::JwkSet = stack
        .http
        .get(format!("{}/.well-known/jwks.json", stack.api_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&[app.client_id.as_str()]);
    assert!(jsonwebtoken::decode::<Value>(&forged, &key, &v).is_err());
}

#[tokio::test]
async fn wrong_code_reused_code_and_secrets_at_rest() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    assert_eq!(stack.send_code(&token, "bob@example.com").await.status, 200);
    let code = stack.smtp.code_for("bob@example.com", 1).await.unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };

    let r = stack.authenticate(&token, "bob@example.com", wrong).await;
    assert_eq!(
        (r.status, r.error_code()),
        (400, "auth_invalid_credentials"),
        "{:?}",
        r.body
    );

    // The database holds no plaintext code, only a keyed hash and a sealed copy.
    let db = stack.db().await;
    let rows = db
        .query(
            "SELECT encode(code_hash, 'escape') FROM otp_challenges UNION ALL SELECT encode(sealed_payload, 'escape') FROM deliveries WHERE sealed_payload IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let v: Option<String> = row.get(0);
        assert!(
            !v.unwrap_or_default().contains(&code),
            "plaintext code at rest"
        );
    }
    let dump: String = db
        .query_one(
            "SELECT string_agg(t::text, '|') FROM (SELECT * FROM otp_challenges) t",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!dump.contains(&code));

    let ok = stack.authenticate(&token, "bob@example.com", &code).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    // Tokens in the stored result are sealed, never in clear.
    let sealed = db
        .query_one(
            "SELECT response IS NULL, response_sealed IS NOT NULL FROM auth_requests WHERE kind = 'otp.authenticate' AND status = 'succeeded'",
            &[],
        )
        .await
        .unwrap();
    assert!(sealed.get::<_, bool>(0) && sealed.get::<_, bool>(1));
    // The refresh token is stored only as a keyed hash.
    let refresh = ok.body["refresh_token"].as_str().unwrap();
    let hit: i64 = db
        .query_one("SELECT count(*) FROM refresh_tokens WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'", &[&refresh])
        .await
        .unwrap()
        .get(0);
    assert_eq!(hit, 0);

    // Single use: the same code fails the second time.
    let again = stack.authenticate(&token, "bob@example.com", &code).await;
    assert_eq!(
        (again.status, again.error_code()),
        (400, "auth_invalid_credentials")
    );
}

#[tokio::test]
async fn expired_code_is_refused_by_the_server_clock() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    let sent = stack
        .post(
            "/v1/auth/otp/send",
            &token,
            &json!({"channel": "email", "identifier_type": "email", "identifier": "carol@example.com", "create_new_user": true, "expires_in": 2}),
            &[],
        )
        .await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    let code = stack.smtp.code_for("carol@example.com", 1).await.unwrap();
    // Two minutes and a second later (the clock of every process moves, nobody sleeps).
    stack.set_clock_offset(121);
    let r = stack.authenticate(&token, "carol@example.com", &code).await;
    assert_eq!(
        (r.status, r.error_code()),
        (400, "auth_otp_passcode_expired"),
        "{:?}",
        r.body
    );
    // A wrong code gets the same answer: expiry does not reveal whether the code was right.
    let r = stack
        .authenticate(&token, "carol@example.com", "999999")
        .await;
    assert_eq!(r.error_code(), "auth_otp_passcode_expired");
}

#[tokio::test]
async fn fifty_concurrent_wrong_codes_let_through_at_most_the_limit() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    assert_eq!(
        stack.send_code(&token, "dave@example.com").await.status,
        200
    );
    let code = stack.smtp.code_for("dave@example.com", 1).await.unwrap();
    let wrong = if code == "123456" { "654321" } else { "123456" };
    let attempts = (0..50).map(|_| stack.authenticate(&token, "dave@example.com", wrong));
    let results = futures_util::future::join_all(attempts).await;
    let mut by_code: HashMap<String, usize> = HashMap::new();
    for r in &results {
        *by_code
            .entry(format!("{} {}", r.status, r.error_code()))
            .or_default() += 1;
    }
    assert_eq!(
        by_code.get("400 auth_invalid_credentials"),
        Some(&5),
        "{by_code:?}"
    );
    assert_eq!(by_code.get("403 auth_locked"), Some(&45), "{by_code:?}");
    let locked = results.iter().find(|r| r.status == 403).unwrap();
    assert!(locked.header("retry-after").is_some());
    // The right code no longer works: the code died at the limit and the subject is locked.
    let r = stack.authenticate(&token, "dave@example.com", &code).await;
    assert_eq!((r.status, r.error_code()), (403, "auth_locked"));
    // After the lockout, a new code works again (the victim is not locked out forever).
    stack.set_clock_offset(901);
    assert_eq!(
        stack.send_code(&token, "dave@example.com").await.status,
        200
    );
    let fresh = stack.smtp.code_for("dave@example.com", 2).await.unwrap();
    assert_eq!(
        stack
            .authenticate(&token, "dave@example.com", &fresh)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn resend_replaces_the_code_without_resetting_the_attempt_count() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    let email = "erin@example.com";
    assert_eq!(stack.send_code(&token, email).await.status, 200);
    let first = stack.smtp.code_for(email, 1).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            stack
                .authenticate(&token, email, "000000x")
                .await
                .error_code(),
            "auth_invalid_credentials"
        );
    }
    assert_eq!(stack.send_code(&token, email).await.status, 200);
    let second = stack.smtp.code_for(email, 2).await.unwrap();
    if first != second {
        // The old code is dead (third failure).
        assert_eq!(
            stack.authenticate(&token, email, &first).await.error_code(),
            "auth_invalid_credentials"
        );
    } else {
        assert_eq!(
            stack
                .authenticate(&token, email, "000000x")
                .await
                .error_code(),
            "auth_invalid_credentials"
        );
    }
    // Two more failures reach the limit of 5: the resend did not reset the count.
    for _ in 0..2 {
        assert_eq!(
            stack
                .authenticate(&token, email, "000000x")
                .await
                .error_code(),
            "auth_invalid_credentials"
        );
    }
    let r = stack.authenticate(&token, email, &second).await;
    assert_eq!((r.status, r.error_code()), (403, "auth_locked"));
}

#[tokio::test]
async fn resend_cooldown_answers_429_with_retry_after() {
    let stack =
        Stack::start_with(Options::default().set("PASSGATE_OTP_RESEND_COOLDOWN_SECS", "30")).await;
    let (_, token) = stack.app_with_token("Acme").await;
    assert_eq!(stack.send_code(&token, "fay@example.com").await.status, 200);
    let r = stack.send_code(&token, "fay@example.com").await;
    assert_eq!(
        (r.status, r.error_code()),
        (429, "too_many_requests"),
        "{:?}",
        r.body
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    stack.set_clock_offset(31);
    assert_eq!(stack.send_code(&token, "fay@example.com").await.status, 200);
}

#[tokio::test]
async fn unknown_users_get_the_same_answer_and_nothing_is_sent() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    let body =
        |email: &str| json!({"channel": "email", "identifier_type": "email", "identifier": email});
    // A known user (created through a first login).
    assert_eq!(
        stack.send_code(&token, "known@example.com").await.status,
        200
    );
    let code = stack.smtp.code_for("known@example.com", 1).await.unwrap();
    assert_eq!(
        stack
            .authenticate(&token, "known@example.com", &code)
            .await
            .status,
        200
    );

    let known = stack
        .post("/v1/auth/otp/send", &token, &body("known@example.com"), &[])
        .await;
    let unknown = stack
        .post(
            "/v1/auth/otp/send",
            &token,
            &body("nobody@example.com"),
            &[],
        )
        .await;
    assert_eq!(known.status, unknown.status);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&known.body), keys(&unknown.body));
    assert_eq!(known.body["message"], unknown.body["message"]);
    assert_eq!(known.body["code_length"], unknown.body["code_length"]);
    stack
        .smtp
        .wait_for("known@example.com", 2, std::time::Duration::from_secs(15))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        stack.smtp.mails_to("nobody@example.com").is_empty(),
        "nothing is sent to an unknown user"
    );
    // Authenticating an unknown user looks like a wrong code.
    let r = stack
        .authenticate(&token, "nobody@example.com", "123456")
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (400, "auth_invalid_credentials")
    );
}

#[tokio::test]
async fn session_id_adds_the_factor_to_the_same_session() {
    let stack = Stack::start().await;
    let (app, token) = stack.app_with_token("Acme").await;
    assert_eq!(stack.send_code(&token, "gus@example.com").await.status, 200);
    let code = stack.smtp.code_for("gus@example.com", 1).await.unwrap();
    let first = stack.authenticate(&token, "gus@example.com", &code).await;
    let sid = first.body["session_id"].as_str().unwrap().to_owned();
    assert_eq!(stack.send_code(&token, "gus@example.com").await.status, 200);
    let code = stack.smtp.code_for("gus@example.com", 2).await.unwrap();
    let second = stack
        .post(
            "/v1/auth/otp/authenticate",
            &token,
            &json!({"identifier_type": "email", "identifier": "gus@example.com", "passcode": code, "session_id": sid}),
            &[],
        )
        .await;
    assert_eq!(second.status, 200, "{:?}", second.body);
    assert_eq!(second.body["session_id"], first.body["session_id"]);
    let claims = verify_jwt(
        &stack,
        second.body["access_token"].as_str().unwrap(),
        &app.client_id,
    )
    .await;
    assert_eq!(
        claims["amr"],
        json!(["email_otp"]),
        "one factor used twice is still one factor"
    );
    // An unknown session is refused.
    assert_eq!(stack.send_code(&token, "gus@example.com").await.status, 200);
    let code = stack.smtp.code_for("gus@example.com", 3).await.unwrap();
    let r = stack
        .post(
            "/v1/auth/otp/authenticate",
            &token,
            &json!({"identifier_type": "email", "identifier": "gus@example.com", "passcode": code, "session_id": uuid::Uuid::now_v7()}),
            &[],
        )
        .await;
    assert_eq!((r.status, r.error_code()), (404, "session_not_found"));
}
