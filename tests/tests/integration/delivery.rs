//! Deliveries that survive provider faults: retries with backoff, permanent failures,
//! exhaustion into the parking lot and back, failover between providers.

use std::time::Duration;

use passgate_tests::{Options, SmtpSink, Stack, twilio};
use tokio_postgres::Client;

async fn delivery_row(db: &Client, destination: &str) -> Option<(String, Option<String>, i32)> {
    db.query_opt(
        "SELECT status, error_class, attempts FROM deliveries WHERE destination = $1",
        &[&destination],
    )
    .await
    .unwrap()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
}

async fn wait_status(
    db: &Client,
    destination: &str,
    status: &str,
) -> (String, Option<String>, i32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(row) = delivery_row(db, destination).await
            && row.0 == status
        {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery to {destination} never became {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn smtp_4xx_is_retried_with_backoff_and_delivered_once() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    stack.smtp.refuse_all("451 4.3.0 try again later");
    assert_eq!(stack.send_code(&token, "ana@example.com").await.status, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while stack.smtp.refused() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no retries seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.smtp.accept_all();
    stack
        .smtp
        .wait_for("ana@example.com", 1, Duration::from_secs(20))
        .await
        .unwrap();
    let db = stack.db().await;
    let (status, _, attempts) = wait_status(&db, "ana@example.com", "sent").await;
    assert_eq!(status, "sent");
    assert!(attempts >= 3, "{attempts}");
    let outcomes: Vec<String> = db
        .query(
            "SELECT outcome FROM delivery_attempts ORDER BY attempt",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
        .collect();
    assert_eq!(outcomes.last().map(String::as_str), Some("sent"));
    assert!(
        outcomes[..outcomes.len() - 1]
            .iter()
            .all(|o| o == "transient"),
        "{outcomes:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stack.smtp.mails_to("ana@example.com").len(),
        1,
        "delivered exactly once"
    );
    let code = stack.smtp.code_for("ana@example.com", 1).await.unwrap();
    assert_eq!(
        stack
            .authenticate(&token, "ana@example.com", &code)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn smtp_5xx_for_one_recipient_fails_at_once() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    stack
        .smtp
        .reject("gone@example.com", "550 5.1.1 no such user");
    assert_eq!(
        stack.send_code(&token, "gone@example.com").await.status,
        200
    );
    assert_eq!(
        stack.send_code(&token, "here@example.com").await.status,
        200
    );
    let db = stack.db().await;
    let (_, class, attempts) = wait_status(&db, "gone@example.com", "failed").await;
    assert_eq!(class.as_deref(), Some("permanent"));
    assert_eq!(attempts, 1, "a permanent failure is not retried");
    stack
        .smtp
        .wait_for("here@example.com", 1, Duration::from_secs(15))
        .await
        .unwrap();
}

#[tokio::test]
async fn expired_secrets_of_failed_deliveries_are_erased() {
    let stack = Stack::start_with(
        Options::default()
            .set("PASSGATE_DELIVERY_MAX_ATTEMPTS", "2")
            .set("PASSGATE_HOUSEKEEPING_SECS", "1"),
    )
    .await;
    let (_, token) = stack.app_with_token("Acme").await;
    stack.smtp.refuse_all("421 4.7.0 too busy");
    assert_eq!(stack.send_code(&token, "old@example.com").await.status, 200);
    let db = stack.db().await;
    let (_, class, _) = wait_status(&db, "old@example.com", "failed").await;
    assert_eq!(class.as_deref(), Some("transient_exhausted"));
    let sealed = "SELECT sealed_payload IS NOT NULL FROM deliveries WHERE destination = $1";
    let kept: bool = db
        .query_one(sealed, &[&"old@example.com"])
        .await
        .unwrap()
        .get(0);
    assert!(kept, "kept for a requeue while the code is valid");
    // An hour later the code has expired: housekeeping erases the sealed secret.
    stack.set_clock_offset(3600);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let kept: bool = db
            .query_one(sealed, &[&"old@example.com"])
            .await
            .unwrap()
            .get(0);
        if !kept {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the expired secret is still stored"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn exhausted_deliveries_are_parked_and_can_be_requeued() {
    let stack =
        Stack::start_with(Options::default().set("PASSGATE_DELIVERY_MAX_ATTEMPTS", "3")).await;
    let (_, token) = stack.app_with_token("Acme").await;
    stack.smtp.refuse_all("421 4.7.0 too busy");
    assert_eq!(stack.send_code(&token, "bea@example.com").await.status, 200);
    let db = stack.db().await;
    let (_, class, attempts) = wait_status(&db, "bea@example.com", "failed").await;
    assert_eq!(class.as_deref(), Some("transient_exhausted"));
    assert_eq!(attempts, 3);
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
    let listed = stack.cli(&["dead", "list"]).await;
    assert!(
        listed.contains("delivery.email") && listed.contains("out of attempts"),
        "{listed}"
    );
    assert_eq!(
        stack
            .broker
            .queue_depth(&stack.vhost, "passgate.dead")
            .await,
        1,
        "listing keeps it parked"
    );

    stack.smtp.accept_all();
    let out = stack.cli(&["dead", "requeue"]).await;
    assert!(out.contains("1 requeued"), "{out}");
    stack
        .smtp
        .wait_for("bea@example.com", 1, Duration::from_secs(15))
        .await
        .unwrap();
    let code = stack.smtp.code_for("bea@example.com", 1).await.unwrap();
    // The requeued run is attempt 4: attempt numbers never repeat, so the guards that look at
    // the previous attempt see the right one.
    let (_, _, attempts) = wait_status(&db, "bea@example.com", "sent").await;
    assert_eq!(attempts, 4);
    let outcomes: Vec<(i32, String)> = db
        .query(
            "SELECT attempt, outcome FROM delivery_attempts ORDER BY attempt",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (1, "transient".to_owned()),
            (2, "transient".to_owned()),
            (3, "transient".to_owned()),
            (4, "sent".to_owned())
        ]
    );
    assert_eq!(
        stack
            .authenticate(&token, "bea@example.com", &code)
            .await
            .status,
        200
    );
    // (the management API's counts lag by a few seconds)
    stack
        .broker
        .wait_depth(
            &stack.vhost,
            "passgate.dead",
            0,
            Duration::from_secs(20),
            "still parked after the requeue",
        )
        .await;
}

#[tokio::test]
async fn email_fails_over_to_the_fallback_relay_and_back() {
    let fallback = SmtpSink::start().await.unwrap();
    let stack = Stack::start_with(
        Options::default()
            .set(
                "PASSGATE_SMTP_FALLBACK_URLS",
                &format!("smtp://127.0.0.1:{}", fallback.port),
            )
            .set("PASSGATE_BREAKER_THRESHOLD", "2")
            .set("PASSGATE_BREAKER_COOLDOWN_SECS", "2"),
    )
    .await;
    let (_, token) = stack.app_with_token("Acme").await;
    stack.smtp.refuse_all("451 4.3.0 primary down");
    for i in 0..4 {
        let to = format!("f{i}@example.com");
        assert_eq!(stack.send_code(&token, &to).await.status, 200);
        fallback
            .wait_for(&to, 1, Duration::from_secs(15))
            .await
            .unwrap();
    }
    // The primary's circuit opened after 2 failures: later messages skipped it.
    assert_eq!(
        stack.smtp.refused(),
        2,
        "an open circuit sends nothing to the primary"
    );
    // The primary recovers; after the cooldown a trial goes to it and traffic returns.
    stack.smtp.accept_all();
    stack.set_clock_offset(3);
    assert_eq!(
        stack.send_code(&token, "back@example.com").await.status,
        200
    );
    stack
        .smtp
        .wait_for("back@example.com", 1, Duration::from_secs(15))
        .await
        .unwrap();
    assert!(fallback.mails_to("back@example.com").is_empty());
    let db = stack.db().await;
    // The sink has the mail before the worker commits its outcome: wait for the row.
    wait_status(&db, "back@example.com", "sent").await;
    let providers: Vec<String> = db
        .query(
            "SELECT provider FROM deliveries WHERE status = 'sent' ORDER BY created_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(providers, ["smtp-2", "smtp-2", "smtp-2", "smtp-2", "smtp"]);
}

#[tokio::test]
async fn sms_fails_over_from_twilio_to_the_webhook_provider() {
    let stack = Stack::start_with(
        Options::default().set("PASSGATE_SMS_WEBHOOK_SECRET", twilio::WEBHOOK_SECRET),
    )
    .await;
    // The webhook URL is only known once the stack's fake is up: restart the workers with it.
    let mut stack = stack;
    let url = stack.twilio.webhook_url();
    drop(stack.workers.take());
    stack.set_env("PASSGATE_SMS_WEBHOOK_URL", &url);
    stack.workers = Some(stack.spawn("passgate-workers", &[]));
    stack.wait_ready(&stack.workers_url.clone()).await;
    let (_, token) = stack.app_with_token("Acme").await;
    stack.twilio.fail_next(&[503]);
    assert_eq!(
        stack.send_sms_code(&token, "+14155550161").await.status,
        200
    );
    let sms = stack
        .twilio
        .wait_for("+14155550161", 1, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(
        sms[0].messaging_service_sid.as_deref(),
        Some("webhook"),
        "sent by the webhook provider"
    );
    let code = sms[0].code().unwrap();
    let r = stack
        .post(
            "/v1/auth/otp/authenticate",
            &token,
            &serde_json::json!({"identifier_type": "phone_number", "identifier": "+14155550161", "passcode": code}),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    // Twilio refusing our credentials (401) is Twilio's fault, not the message's: the webhook
    // takes it.
    stack.twilio.fail_next(&[401]);
    assert_eq!(
        stack.send_sms_code(&token, "+14155550162").await.status,
        200
    );
    let sms = stack
        .twilio
        .wait_for("+14155550162", 1, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(sms[0].messaging_service_sid.as_deref(), Some("webhook"));
}
