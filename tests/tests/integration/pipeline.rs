//! The command pipeline: waiting and polling, idempotency, caller authentication, input
//! errors, tenant isolation, poison messages and redelivered commands.

use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use passgate_tests::Stack;
use serde_json::json;

#[tokio::test]
async fn respond_async_gives_202_and_polling_returns_the_same_body() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    let body = json!({"channel": "email", "identifier_type": "email", "identifier": "hal@example.com", "create_new_user": true});
    let r = stack
        .post(
            "/v1/auth/otp/send",
            &token,
            &body,
            &[("Prefer", "respond-async")],
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["status"], "pending");
    let id = r.body["request_id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/requests/{id}").as_str())
    );
    let done = stack.poll_final(&token, &id).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["type"], "otp.send");
    assert_eq!(done["http_status"], 200);
    assert_eq!(done["result"]["code_length"], 6);
    assert!(done["completed_at"].is_string());

    let code = stack.smtp.code_for("hal@example.com", 1).await.unwrap();
    let auth =
        json!({"identifier_type": "email", "identifier": "hal@example.com", "passcode": code});
    let r = stack
        .post(
            "/v1/auth/otp/authenticate",
            &token,
            &auth,
            &[("Prefer", "respond-async")],
        )
        .await;
    assert_eq!(r.status, 202);
    let done = stack
        .poll_final(&token, r.body["request_id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "succeeded");
    assert!(
        done["result"]["access_token"].is_string(),
        "the poll returns the tokens the waiting call would have"
    );

    // A failed command: `error` is the error body.
    let bad =
        json!({"identifier_type": "email", "identifier": "hal@example.com", "passcode": "000000x"});
    let r = stack
        .post(
            "/v1/auth/otp/authenticate",
            &token,
            &bad,
            &[("Prefer", "respond-async")],
        )
        .await;
    let done = stack
        .poll_final(&token, r.body["request_id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["http_status"], 400);
    assert_eq!(done["error"]["error_code"], "auth_invalid_credentials");
}

#[tokio::test]
async fn idempotency_key_replays_and_refuses_another_body() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    let body = json!({"channel": "email", "identifier_type": "email", "identifier": "ida@example.com", "create_new_user": true});
    let key = [("Idempotency-Key", "send-ida-1")];
    let first = stack.post("/v1/auth/otp/send", &token, &body, &key).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let second = stack.post("/v1/auth/otp/send", &token, &body, &key).await;
    assert_eq!(second.status, 200);
    assert_eq!(first.body, second.body, "the same request answers the same");
    // Concurrent retries too.
    let many = futures_util::future::join_all(
        (0..10).map(|_| stack.post("/v1/auth/otp/send", &token, &body, &key)),
    )
    .await;
    assert!(many.iter().all(|r| r.status == 200 && r.body == first.body));
    stack
        .smtp
        .wait_for("ida@example.com", 1, Duration::from_secs(15))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        stack.smtp.mails_to("ida@example.com").len(),
        1,
        "nothing ran twice"
    );
    let db = stack.db().await;
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM auth_requests WHERE kind = 'otp.send'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);

    let other =
        json!({"channel": "email", "identifier_type": "email", "identifier": "other@example.com"});
    let r = stack.post("/v1/auth/otp/send", &token, &other, &key).await;
    assert_eq!((r.status, r.error_code()), (422, "idempotency_key_reused"));
}

#[tokio::test]
async fn caller_authentication_is_required_and_checked() {
    let stack = Stack::start().await;
    let (app, token) = stack.app_with_token("Acme").await;
    let body =
        json!({"channel": "email", "identifier_type": "email", "identifier": "x@example.com"});
    let none = passgate_tests::Resp::from(
        stack
            .http
            .post(format!("{}/v1/auth/otp/send", stack.api_url))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((none.status, none.error_code()), (401, "unauthorized"));
    let forged = passgate_tests::forge(&token);
    assert_ne!(forged, token);
    assert_eq!(
        stack
            .post("/v1/auth/otp/send", &forged, &body, &[])
            .await
            .status,
        401
    );
    assert_eq!(
        stack
            .post("/v1/auth/otp/send", "not-a-jwt", &body, &[])
            .await
            .status,
        401
    );
    // A token of another deployment (other key) is refused.
    let other = Stack::start().await;
    let (_, foreign) = other.app_with_token("Acme").await;
    assert_eq!(
        stack
            .post("/v1/auth/otp/send", &foreign, &body, &[])
            .await
            .error_code(),
        "unauthorized"
    );

    // Wrong secrets and unknown clients get the same answer.
    for (id, secret) in [
        (app.client_id.as_str(), "wrong"),
        ("pg_unknown", app.client_secret.as_str()),
    ] {
        let r = passgate_tests::Resp::from(
            stack
                .http
                .post(format!("{}/oidc/token", stack.api_url))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", id),
                    ("client_secret", secret),
                ])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((r.status, r.error_code()), (401, "invalid_client"));
    }
    let r = passgate_tests::Resp::from(
        stack
            .http
            .post(format!("{}/oidc/token", stack.api_url))
            .form(&[("grant_type", "password")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, r.error_code()), (400, "unsupported_grant_type"));
    // HTTP Basic client authentication works too.
    let r = stack
        .http
        .post(format!("{}/oidc/token", stack.api_url))
        .basic_auth(&app.client_id, Some(&app.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn bad_input_gets_documented_errors_naming_the_field() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    let cases = [
        (
            json!({"channel": 5, "identifier_type": "email", "identifier": "a@example.com"}),
            "channel",
        ),
        (
            json!({"channel": "fax", "identifier_type": "email", "identifier": "a@example.com"}),
            "channel",
        ),
        (
            json!({"channel": "email", "identifier": "a@example.com"}),
            "identifier_type",
        ),
        (
            json!({"channel": "email", "identifier_type": "email", "identifier": "not-an-email"}),
            "identifier",
        ),
        (
            json!({"channel": "email", "identifier_type": "email", "identifier": "a@example.com", "expires_in": 11}),
            "expires_in",
        ),
        (
            json!({"channel": "email", "identifier_type": "email", "identifier": "a@example.com", "expires_in": "soon"}),
            "expires_in",
        ),
        (
            json!({"channel": "email", "identifier_type": "email", "identifier": "a@example.com", "extra": 1}),
            "extra",
        ),
    ];
    for (body, field) in cases {
        let r = stack.post("/v1/auth/otp/send", &token, &body, &[]).await;
        assert_eq!(
            (r.status, r.error_code()),
            (400, "system_invalid_input"),
            "{body}: {:?}",
            r.body
        );
        assert!(
            r.body["message"].as_str().unwrap().contains(field),
            "{body} should name {field}: {:?}",
            r.body
        );
        assert_eq!(r.body["status"], 400);
    }
    // Malformed JSON.
    let raw = stack
        .http
        .post(format!("{}/v1/auth/otp/send", stack.api_url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"channel\": \"email\",")
        .send()
        .await
        .unwrap();
    let r = passgate_tests::Resp::from(raw).await;
    assert_eq!(
        (r.status, r.error_code()),
        (400, "system_invalid_input"),
        "{:?}",
        r.body
    );
    // Oversized body.
    let huge =
        json!({"channel": "email", "identifier_type": "email", "identifier": "x".repeat(100_000)});
    let r = stack.post("/v1/auth/otp/send", &token, &huge, &[]).await;
    assert_eq!(
        (r.status, r.error_code()),
        (413, "payload_too_large"),
        "{:?}",
        r.body
    );
    // Unknown route.
    assert_eq!(
        stack.get("/v1/nothing", &token).await.error_code(),
        "not_found"
    );
}

#[tokio::test]
async fn apps_cannot_see_or_use_each_others_requests_and_users() {
    let stack = Stack::start().await;
    let (_, a) = stack.app_with_token("A").await;
    let (_, b) = stack.app_with_token("B").await;
    let body = json!({"channel": "email", "identifier_type": "email", "identifier": "ivy@example.com", "create_new_user": true});
    let r = stack
        .post(
            "/v1/auth/otp/send",
            &a,
            &body,
            &[("Prefer", "respond-async")],
        )
        .await;
    let id = r.body["request_id"].as_str().unwrap().to_owned();
    stack.poll_final(&a, &id).await;
    let r = stack.get(&format!("/v1/requests/{id}"), &b).await;
    assert_eq!((r.status, r.error_code()), (404, "not_found"));
    assert_eq!(stack.get("/v1/requests/not-a-uuid", &a).await.status, 404);
    assert_eq!(
        stack
            .get(&format!("/v1/requests/{}", uuid::Uuid::now_v7()), &a)
            .await
            .status,
        404
    );
    // App A's code does not log in at app B.
    let code = stack.smtp.code_for("ivy@example.com", 1).await.unwrap();
    let r = stack.authenticate(&b, "ivy@example.com", &code).await;
    assert_eq!(r.error_code(), "auth_invalid_credentials");
    assert_eq!(
        stack
            .authenticate(&a, "ivy@example.com", &code)
            .await
            .status,
        200
    );
}

async fn publish_raw(stack: &Stack, routing_key: &str, body: &[u8], props: BasicProperties) {
    let conn = Connection::connect(&stack.amqp_url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel.confirm_select(Default::default()).await.unwrap();
    let confirm = channel
        .basic_publish(
            "passgate.commands".into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    let _ = conn.close(200, "bye".into()).await;
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_not_lost() {
    let stack = Stack::start().await;
    publish_raw(
        &stack,
        "otp.send",
        b"this is not json",
        BasicProperties::default().with_type("otp.send".into()),
    )
    .await;
    publish_raw(
        &stack,
        "otp.send",
        br#"{"type":"otp.send","version":99}"#,
        BasicProperties::default(),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let dead = stack
            .broker
            .queue_depth(&stack.vhost, "passgate.dead")
            .await;
        if dead == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dead-letter queue holds {dead}, expected 2"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The workers carry on.
    let (_, token) = stack.app_with_token("Acme").await;
    assert_eq!(stack.send_code(&token, "jo@example.com").await.status, 200);
}

#[tokio::test]
async fn producers_may_publish_directly_and_redelivered_commands_run_once() {
    let stack = Stack::start().await;
    let (app, token) = stack.app_with_token("Acme").await;
    let id = uuid::Uuid::now_v7();
    let envelope = json!({
        "id": id, "type": "otp.send", "version": 1, "app_id": app.app_id,
        "created_at": "2026-12-04T00:00:00Z",
        "payload": {"channel": "email", "identifier_type": "email", "identifier": "kim@example.com", "create_new_user": true}
    });
    let body = serde_json::to_vec(&envelope).unwrap();
    let props = || {
        BasicProperties::default()
            .with_type("otp.send".into())
            .with_message_id(id.to_string().into())
    };
    // The same command delivered three times (at-least-once delivery, or a producer retry).
    for _ in 0..3 {
        publish_raw(&stack, "otp.send", &body, props()).await;
    }
    let done = stack
        .poll_final_for(&token, &id.to_string(), Duration::from_secs(30))
        .await;
    assert_eq!(done["status"], "succeeded");
    stack
        .smtp
        .wait_for("kim@example.com", 1, Duration::from_secs(15))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        stack.smtp.mails_to("kim@example.com").len(),
        1,
        "one code, one email"
    );
    let db = stack.db().await;
    let deliveries: i64 = db
        .query_one("SELECT count(*) FROM deliveries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(deliveries, 1);
}

#[tokio::test]
async fn a_command_naming_another_apps_request_is_parked_and_changes_nothing() {
    let stack = Stack::start().await;
    let (_, a) = stack.app_with_token("A").await;
    let (b, _) = stack.app_with_token("B").await;
    let body = json!({"channel": "email", "identifier_type": "email", "identifier": "uma@example.com", "create_new_user": true});
    let r = stack
        .post(
            "/v1/auth/otp/send",
            &a,
            &body,
            &[("Prefer", "respond-async")],
        )
        .await;
    let id = r.body["request_id"].as_str().unwrap().to_owned();
    let before = stack.poll_final(&a, &id).await;
    // A producer publishes a command for app B that reuses app A's request id.
    let envelope = json!({
        "id": id, "type": "otp.send", "version": 1, "app_id": b.app_id,
        "created_at": "2026-12-04T00:00:00Z",
        "payload": {"channel": "email", "identifier_type": "email", "identifier": "vic@example.com", "create_new_user": true}
    });
    let props = BasicProperties::default()
        .with_type("otp.send".into())
        .with_message_id(id.clone().into());
    publish_raw(
        &stack,
        "otp.send",
        &serde_json::to_vec(&envelope).unwrap(),
        props,
    )
    .await;
    stack
        .broker
        .wait_depth(
            &stack.vhost,
            "passgate.dead",
            1,
            Duration::from_secs(15),
            "not parked",
        )
        .await;
    // App A's request keeps its answer, and nothing was sent for app B.
    let after = stack.get(&format!("/v1/requests/{id}"), &a).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body, before);
    let db = stack.db().await;
    let rows: i64 = db
        .query_one(
            "SELECT count(*) FROM auth_requests WHERE app_id = $1::text::uuid",
            &[&b.app_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "no request row for app B");
    assert!(stack.smtp.mails_to("vic@example.com").is_empty());
}

fn direct_send(app_id: &str, id: uuid::Uuid, email: &str, key: &str) -> (Vec<u8>, BasicProperties) {
    // A producer's timestamp from the past (a day or more old when the test runs): the key's
    // 24 h window counts from when the worker writes the row, not from this.
    let envelope = json!({
        "id": id, "type": "otp.send", "version": 1, "app_id": app_id,
        "created_at": "2026-12-04T00:00:00Z",
        "idempotency": {"key": key},
        "payload": {"channel": "email", "identifier_type": "email", "identifier": email, "create_new_user": true}
    });
    let props = BasicProperties::default()
        .with_type("otp.send".into())
        .with_message_id(id.to_string().into());
    (serde_json::to_vec(&envelope).unwrap(), props)
}

#[tokio::test]
async fn the_idempotency_key_travels_with_the_command() {
    let stack = Stack::start().await;
    let (app, token) = stack.app_with_token("Acme").await;
    // A command whose request row the worker has to write (published straight to the broker,
    // as when the API's publish confirm never came): the row gets the command's key.
    let id = uuid::Uuid::now_v7();
    let (body, props) = direct_send(&app.app_id, id, "lee@example.com", "k-direct");
    publish_raw(&stack, "otp.send", &body, props).await;
    let done = stack
        .poll_final_for(&token, &id.to_string(), Duration::from_secs(30))
        .await;
    assert_eq!(done["status"], "succeeded");
    // A retry over HTTP with that key finds it: it does not run a second command.
    let send = json!({"channel": "email", "identifier_type": "email", "identifier": "lee@example.com", "create_new_user": true});
    let r = stack
        .post(
            "/v1/auth/otp/send",
            &token,
            &send,
            &[("Idempotency-Key", "k-direct")],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (422, "idempotency_key_reused"),
        "the key is taken by the worker-written row (whose request hash a producer cannot give)"
    );
    // The other order: the caller's retry got its row first; the late copy is dropped.
    let send = json!({"channel": "email", "identifier_type": "email", "identifier": "max@example.com", "create_new_user": true});
    let r = stack
        .post(
            "/v1/auth/otp/send",
            &token,
            &send,
            &[("Idempotency-Key", "k-retry")],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let late = uuid::Uuid::now_v7();
    let (body, props) = direct_send(&app.app_id, late, "max@example.com", "k-retry");
    publish_raw(&stack, "otp.send", &body, props).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = stack
            .http
            .get(format!("{}/metrics", stack.workers_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics
            .lines()
            .any(|l| l.starts_with("passgate_jobs_superseded_total") && l.ends_with(" 1"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the late copy was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stack
            .get(&format!("/v1/requests/{late}"), &token)
            .await
            .status,
        404,
        "the late copy left no request behind"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stack.smtp.mails_to("lee@example.com").len(), 1);
    assert_eq!(stack.smtp.mails_to("max@example.com").len(), 1);
}
