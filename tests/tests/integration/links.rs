//! Email magic links end to end.

use std::time::Duration;

use passgate_tests::Stack;
use serde_json::json;

const CALLBACK: &str = "https://app.example.com/auth/callback";

fn send_body(email: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut body = json!({"email": email, "redirect_uri": CALLBACK, "create_new_user": true});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

#[tokio::test]
async fn magic_link_round_trip_with_state_single_use_and_allow_list() {
    let stack = Stack::start().await;
    let app = stack.create_app_with("Acme", &[CALLBACK]).await;
    let token = stack.token(&app).await;

    // Not on the allow-list: refused, nothing sent. Exact match only (no prefix tricks).
    for uri in [
        "https://evil.example.com/cb",
        "https://app.example.com/auth/callback/x",
        "https://app.example.com/auth/callback?x=1",
    ] {
        let r = stack
            .post(
                "/v1/auth/link/email/send",
                &token,
                &json!({"email": "nia@example.com", "redirect_uri": uri}),
                &[],
            )
            .await;
        assert_eq!(
            (r.status, r.error_code()),
            (400, "redirect_uri_not_allowed"),
            "{uri}: {:?}",
            r.body
        );
    }

    let state = "xyz 123&/=?";
    let r = stack
        .post(
            "/v1/auth/link/email/send",
            &token,
            &send_body("nia@example.com", json!({"state": state})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["expires_at"].is_string());
    let mail = stack
        .smtp
        .wait_for("nia@example.com", 1, Duration::from_secs(15))
        .await
        .unwrap();
    let mail = &mail[0];
    assert!(
        mail.data.contains("multipart/alternative") && mail.data.contains("text/html"),
        "plain + HTML"
    );
    let link = mail.link().unwrap();
    assert!(link.starts_with(&format!("{CALLBACK}?code=")), "{link}");
    assert_eq!(
        mail.link_param("state").as_deref(),
        Some(state),
        "state comes back untouched"
    );
    let code = mail.link_param("code").unwrap();
    assert!(code.len() >= 40, "a long random code");

    // Fetching the link (a mail scanner) goes to the caller's site, not to Passgate: the code
    // stays usable until the backend authenticates it.
    let auth = stack
        .post(
            "/v1/auth/link/email/authenticate",
            &token,
            &json!({"code": code}),
            &[],
        )
        .await;
    assert_eq!(auth.status, 200, "{:?}", auth.body);
    assert!(auth.body["access_token"].is_string());

    // Single use.
    let again = stack
        .post(
            "/v1/auth/link/email/authenticate",
            &token,
            &json!({"code": code}),
            &[],
        )
        .await;
    assert_eq!(
        (again.status, again.error_code()),
        (400, "invalid_magic_link_code")
    );
    let unknown = stack
        .post(
            "/v1/auth/link/email/authenticate",
            &token,
            &json!({"code": "nope"}),
            &[],
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (400, "invalid_magic_link_code")
    );
}

#[tokio::test]
async fn expired_and_replaced_links_do_not_work_and_concurrent_use_wins_once() {
    let stack = Stack::start().await;
    let app = stack.create_app_with("Acme", &[CALLBACK]).await;
    let token = stack.token(&app).await;
    let r = stack
        .post(
            "/v1/auth/link/email/send",
            &token,
            &send_body("oli@example.com", json!({"email_expiration": 5})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    let first = stack
        .smtp
        .wait_for("oli@example.com", 1, Duration::from_secs(15))
        .await
        .unwrap()[0]
        .link_param("code")
        .unwrap();
    // A second link replaces the first.
    assert_eq!(
        stack
            .post(
                "/v1/auth/link/email/send",
                &token,
                &send_body("oli@example.com", json!({})),
                &[]
            )
            .await
            .status,
        200
    );
    let second = stack
        .smtp
        .wait_for("oli@example.com", 2, Duration::from_secs(15))
        .await
        .unwrap()[1]
        .link_param("code")
        .unwrap();
    let r = stack
        .post(
            "/v1/auth/link/email/authenticate",
            &token,
            &json!({"code": first}),
            &[],
        )
        .await;
    assert_eq!(r.error_code(), "invalid_magic_link_code");

    // 20 concurrent uses of one link: exactly one logs in.
    let body = json!({"code": second});
    let tries = (0..20).map(|_| stack.post("/v1/auth/link/email/authenticate", &token, &body, &[]));
    let results = futures_util::future::join_all(tries).await;
    assert_eq!(results.iter().filter(|r| r.status == 200).count(), 1);
    assert!(
        results
            .iter()
            .filter(|r| r.status != 200)
            .all(|r| r.error_code() == "invalid_magic_link_code")
    );

    // Expiry by the server clock.
    assert_eq!(
        stack
            .post(
                "/v1/auth/link/email/send",
                &token,
                &send_body("oli@example.com", json!({"email_expiration": 5})),
                &[]
            )
            .await
            .status,
        200
    );
    let third = stack
        .smtp
        .wait_for("oli@example.com", 3, Duration::from_secs(15))
        .await
        .unwrap()[2]
        .link_param("code")
        .unwrap();
    stack.set_clock_offset(5 * 60 + 1);
    let r = stack
        .post(
            "/v1/auth/link/email/authenticate",
            &token,
            &json!({"code": third}),
            &[],
        )
        .await;
    assert_eq!((r.status, r.error_code()), (400, "invalid_magic_link_code"));
}

#[tokio::test]
async fn link_input_errors_and_other_apps_codes() {
    let stack = Stack::start().await;
    let a = stack.create_app_with("A", &[CALLBACK]).await;
    let b = stack.create_app_with("B", &[CALLBACK]).await;
    let (ta, tb) = (stack.token(&a).await, stack.token(&b).await);
    for (body, field) in [
        (json!({"redirect_uri": CALLBACK}), "email"),
        (
            json!({"email": "x@example.com", "redirect_uri": "not a url"}),
            "redirect_uri",
        ),
        (
            json!({"email": "x@example.com", "redirect_uri": CALLBACK, "email_expiration": 61}),
            "email_expiration",
        ),
        (json!({"email": "x@example.com"}), "redirect_uri"),
    ] {
        let r = stack
            .post("/v1/auth/link/email/send", &ta, &body, &[])
            .await;
        assert_eq!(
            (r.status, r.error_code()),
            (400, "system_invalid_input"),
            "{body}"
        );
        assert!(
            r.body["message"].as_str().unwrap().contains(field),
            "{body}: {:?}",
            r.body
        );
    }
    assert_eq!(
        stack
            .post(
                "/v1/auth/link/email/send",
                &ta,
                &send_body("pat@example.com", json!({})),
                &[]
            )
            .await
            .status,
        200
    );
    let code = stack
        .smtp
        .wait_for("pat@example.com", 1, Duration::from_secs(15))
        .await
        .unwrap()[0]
        .link_param("code")
        .unwrap();
    let r = stack
        .post(
            "/v1/auth/link/email/authenticate",
            &tb,
            &json!({"code": code}),
            &[],
        )
        .await;
    assert_eq!(
        r.error_code(),
        "invalid_magic_link_code",
        "app B cannot use app A's link"
    );
    assert_eq!(
        stack
            .post(
                "/v1/auth/link/email/authenticate",
                &ta,
                &json!({"code": code}),
                &[]
            )
            .await
            .status,
        200
    );
}
