//! Faults: the broker going away under the API, and graceful shutdown of the workers.

use std::time::{Duration, Instant};

use passgate_tests::{Broker, Options, Stack};
use serde_json::json;

/// Services of this test's own (started with `scripts/services.sh` in a directory of its own,
/// on free ports), so stopping them does not disturb the other tests.
struct PrivateServices {
    env: Vec<(String, String)>,
}

impl PrivateServices {
    fn port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    async fn start() -> (Self, Broker) {
        Self::start_with("start-rabbitmq", &[]).await
    }

    /// PostgreSQL, RabbitMQ and an SMTP sink of the test's own; also returns the PostgreSQL
    /// admin URL.
    async fn start_all() -> (Self, Broker, String) {
        let pg = Self::port();
        let smtp = Self::port();
        let extra = [
            ("PASSGATE_PG_PORT", pg.to_string()),
            ("PASSGATE_SMTP_PORT", smtp.to_string()),
        ];
        let (this, broker) = Self::start_with("up", &extra).await;
        (
            this,
            broker,
            format!("postgres://postgres@127.0.0.1:{pg}/postgres"),
        )
    }

    async fn start_with(action: &str, extra: &[(&str, String)]) -> (Self, Broker) {
        let dir =
            std::env::temp_dir().join(format!("passgate-rabbit-{}", uuid::Uuid::new_v4().simple()));
        let (amqp, mgmt, dist, epmd) = (Self::port(), Self::port(), Self::port(), Self::port());
        let this = Self {
            env: vec![
                ("PASSGATE_SERVICES_DIR".into(), dir.display().to_string()),
                ("PASSGATE_AMQP_PORT".into(), amqp.to_string()),
                ("PASSGATE_RABBIT_MGMT_PORT".into(), mgmt.to_string()),
                ("PASSGATE_RABBIT_DIST_PORT".into(), dist.to_string()),
                ("PASSGATE_EPMD_PORT".into(), epmd.to_string()),
            ],
        };
        let mut this = this;
        this.env
            .extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        this.run(action).await;
        let broker = Broker {
            amqp_base: format!("amqp://guest:guest@127.0.0.1:{amqp}"),
            mgmt: format!("http://guest:guest@127.0.0.1:{mgmt}"),
        };
        (this, broker)
    }

    async fn run(&self, action: &str) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/services.sh");
        let out = tokio::process::Command::new("bash")
            .arg(script)
            .arg(action)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "services.sh {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivateServices {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/services.sh");
        let _ = std::process::Command::new("bash")
            .arg(script)
            .arg("down")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output();
        if let Some((_, dir)) = self.env.iter().find(|(k, _)| k == "PASSGATE_SERVICES_DIR") {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[tokio::test]
async fn broker_outage_gives_fast_503_then_recovers_and_loses_nothing() {
    let (rabbit, broker) = PrivateServices::start().await;
    let stack = Stack::start_with(Options {
        broker,
        ..Options::default()
    })
    .await;
    let (_, token) = stack.app_with_token("Acme").await;
    let body = |i: usize| json!({"channel": "email", "identifier_type": "email", "identifier": format!("user{i}@example.com"), "create_new_user": true});

    // Accepted before the outage.
    let mut accepted = Vec::new();
    for i in 0..5 {
        let r = stack
            .post(
                "/v1/auth/otp/send",
                &token,
                &body(i),
                &[("Prefer", "respond-async")],
            )
            .await;
        assert_eq!(r.status, 202);
        accepted.push(r.body["request_id"].as_str().unwrap().to_owned());
    }

    rabbit.run("stop-rabbitmq").await;
    let started = Instant::now();
    let r = stack
        .post("/v1/auth/otp/send", &token, &body(100), &[])
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (503, "service_unavailable"),
        "{:?}",
        r.body
    );
    assert!(r.header("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "503 must come quickly, took {:?}",
        started.elapsed()
    );
    let ready = stack
        .http
        .get(format!("{}/readyz", stack.api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "readiness reflects the outage");

    rabbit.run("start-rabbitmq").await;
    // The API reconnects by itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut after = None;
    while Instant::now() < deadline {
        let r = stack
            .post(
                "/v1/auth/otp/send",
                &token,
                &body(200),
                &[("Prefer", "respond-async")],
            )
            .await;
        if r.status == 202 {
            after = Some(r.body["request_id"].as_str().unwrap().to_owned());
            break;
        }
        assert_eq!(r.status, 503, "{:?}", r.body);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    accepted.push(after.expect("the API recovered within 60 s"));

    // Everything accepted before and after the outage reached its end, and every code arrived.
    for id in &accepted {
        let done = stack.poll_final(&token, id).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    for i in (0..5).chain([200]) {
        stack
            .smtp
            .wait_for(&format!("user{i}@example.com"), 1, Duration::from_secs(60))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn workers_stop_gracefully_on_sigterm() {
    let mut stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    assert_eq!(stack.send_code(&token, "liv@example.com").await.status, 200);
    stack
        .smtp
        .wait_for("liv@example.com", 1, Duration::from_secs(15))
        .await
        .unwrap();
    let mut workers = stack.workers.take().unwrap();
    let pid = workers.id().unwrap();
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(25), workers.wait())
        .await
        .expect("stopped within the grace period")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    // Commands sent meanwhile wait in the queue (202 after the bounded wait) and run when a
    // worker is back.
    let r = stack.post("/v1/auth/otp/send", &token, &json!({"channel": "email", "identifier_type": "email", "identifier": "liv@example.com", "create_new_user": true}), &[("Prefer", "respond-async")]).await;
    assert_eq!(r.status, 202);
    let id = r.body["request_id"].as_str().unwrap().to_owned();
    stack.workers = Some(stack.spawn("passgate-workers", &[]));
    assert_eq!(stack.poll_final(&token, &id).await["status"], "succeeded");
    stack
        .smtp
        .wait_for("liv@example.com", 2, Duration::from_secs(30))
        .await
        .unwrap();
}

/// What the load generator got accepted.
#[derive(Default)]
struct Accepted {
    /// (request id, destination) of accepted sends.
    sends: Vec<(String, String)>,
    /// request ids of accepted authentications.
    authentications: Vec<String>,
    refused_503: usize,
}

fn phone(i: usize) -> String {
    let areas = ["212", "415", "646", "718", "917"];
    format!(
        "+1{}5550{:03}",
        areas[i % areas.len()],
        100 + (i / areas.len()) % 100
    )
}

/// A steady load of sends (email and SMS) and authentications through the real system while
/// every dependency fails in turn: a worker killed with SIGKILL mid-message, RabbitMQ stopped
/// and started, PostgreSQL restarted, the SMTP server refusing with 4xx for a while and with
/// 5xx for one recipient, the Twilio server answering 500 and 429. Afterwards: every accepted
/// request reached a final state, every delivery was sent exactly once or recorded as failed,
/// and no queue holds anything but the expected parked messages.
#[tokio::test]
async fn fault_suite_under_load_loses_nothing_and_sends_nothing_twice() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tokio::sync::Mutex;

    let (services, broker, pg_admin) = PrivateServices::start_all().await;
    let options = Options {
        broker,
        pg_admin: Some(pg_admin),
        ..Options::default()
    }
    .set("PASSGATE_SMS_PER_PREFIX_PER_HOUR", "100000")
    .set("PASSGATE_SENDS_PER_APP_PER_HOUR", "100000")
    .set("PASSGATE_DELIVERY_RETRY_DELAYS", "0.5,1,2,4")
    .set("PASSGATE_DELIVERY_MAX_ATTEMPTS", "10")
    .set("PASSGATE_WAIT_TIMEOUT_MS", "3000");
    let mut stack = Stack::start_with(options).await;
    // A second worker process with every role: killing one leaves the other working.
    let second_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let second_bind = format!("127.0.0.1:{second_port}");
    let mut second = stack.spawn_with(
        "passgate-workers",
        &[],
        &[("PASSGATE_WORKERS_BIND", &second_bind)],
    );
    stack.wait_ready(&format!("http://{second_bind}")).await;
    let (_, token) = stack.app_with_token("Load").await;
    let mut first = stack.workers.take().expect("the stack's worker process");
    let stack = Arc::new(stack);
    let accepted = Arc::new(Mutex::new(Accepted::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicUsize::new(0));
    stack
        .smtp
        .reject("rejected@example.com", "550 5.1.1 no such user");

    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stack, accepted, stop, counter, token) = (
            stack.clone(),
            accepted.clone(),
            stop.clone(),
            counter.clone(),
            token.clone(),
        );
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let (body, destination) = if i == 0 {
                    (json!({"channel": "email", "identifier_type": "email", "identifier": "rejected@example.com", "create_new_user": true}), "rejected@example.com".to_owned())
                } else if i % 3 == 2 {
                    let p = phone(i);
                    (json!({"channel": "sms", "identifier_type": "phone_number", "identifier": p, "create_new_user": true}), p)
                } else {
                    let e = format!("load{i}@example.com");
                    (json!({"channel": "email", "identifier_type": "email", "identifier": e, "create_new_user": true}), e)
                };
                let r = stack.post("/v1/auth/otp/send", &token, &body, &[("Prefer", "respond-async")]).await;
                match r.status {
                    202 => accepted.lock().await.sends.push((r.body["request_id"].as_str().unwrap_or_default().to_owned(), destination)),
                    503 => accepted.lock().await.refused_503 += 1,
                    other => panic!("unexpected answer {other}: {:?}", r.body),
                }
                // Authenticate with a code that has arrived, now and then.
                if i % 4 == 1 {
                    let mails = stack.smtp.all();
                    if let Some(mail) = mails.last()
                        && let (Some(code), Some(to)) = (mail.code(), mail.to.first())
                    {
                        let auth = json!({"identifier_type": "email", "identifier": to, "passcode": code});
                        let r = stack.post("/v1/auth/otp/authenticate", &token, &auth, &[("Prefer", "respond-async")]).await;
                        if r.status == 202 {
                            accepted.lock().await.authentications.push(r.body["request_id"].as_str().unwrap_or_default().to_owned());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    let phase = |name: &str| {
        eprintln!(
            "[fault suite] {name} (accepted so far: {})",
            counter.load(Ordering::Relaxed)
        )
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    phase("SIGKILL a worker mid-message");
    let pid = first.id().unwrap().to_string();
    assert!(
        tokio::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let _ = first.wait().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarted = stack.spawn("passgate-workers", &[]);

    tokio::time::sleep(Duration::from_secs(2)).await;
    phase("SMTP refuses with 4xx");
    stack.smtp.refuse_all("451 4.3.0 try again later");
    tokio::time::sleep(Duration::from_secs(4)).await;
    stack.smtp.accept_all();
    phase("Twilio answers 500 and 429");
    stack.twilio.fail_next(&[500, 429, 500, 429]);

    tokio::time::sleep(Duration::from_secs(2)).await;
    phase("RabbitMQ stopped");
    services.run("stop-rabbitmq").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    services.run("start-rabbitmq").await;
    phase("RabbitMQ started");

    tokio::time::sleep(Duration::from_secs(5)).await;
    phase("PostgreSQL restarted");
    services.run("restart-postgres").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    phase("load stopped");

    // Every accepted request reaches a final state.
    let accepted = accepted.lock().await;
    let mut succeeded = 0;
    for (id, _) in &accepted.sends {
        let done = stack
            .poll_final_for(&token, id, Duration::from_secs(120))
            .await;
        assert!(
            done["status"] == "succeeded" || done["status"] == "failed",
            "{done}"
        );
        if done["status"] == "succeeded" {
            succeeded += 1;
        }
    }
    for id in &accepted.authentications {
        let done = stack
            .poll_final_for(&token, id, Duration::from_secs(120))
            .await;
        assert!(
            done["status"] == "succeeded" || done["status"] == "failed",
            "{done}"
        );
    }

    // Every delivery ends sent or recorded as failed; nothing is sent twice.
    let db = stack.db().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let open: i64 = db
            .query_one(
                "SELECT count(*) FROM deliveries WHERE status IN ('queued', 'sending')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if open == 0 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let rows = db
                .query(
                    "SELECT channel || ' ' || status || ' ' || coalesce(error_class, '-') || \
                     ' attempts=' || attempts || ' ' || left(coalesce(last_error, '-'), 60), count(*) \
                     FROM deliveries \
                     WHERE status IN ('queued', 'sending') GROUP BY 1 ORDER BY 2 DESC LIMIT 20",
                    &[],
                )
                .await
                .unwrap();
            let breakdown: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            let mut depths = Vec::new();
            for queue in [
                "passgate.delivery.email",
                "passgate.delivery.delay.0",
                "passgate.delivery.delay.1",
                "passgate.delivery.delay.2",
                "passgate.delivery.delay.3",
                "passgate.delivery.lease-wait",
                "passgate.dead",
            ] {
                depths.push((queue, stack.broker.queue_depth(&stack.vhost, queue).await));
            }
            panic!("{open} deliveries still open: {breakdown:?}; queues: {depths:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Email addresses are unique per send, so a mailbox holds exactly the messages of its
    // delivery; text messages are counted by delivery id (the provider idempotency key).
    let rows = db
        .query(
            "SELECT id::text, destination, channel, status, error_class FROM deliveries",
            &[],
        )
        .await
        .unwrap();
    let (mut sent, mut failed, mut unknown, mut exhausted) = (0, 0, 0, 0);
    for row in &rows {
        let (id, to, channel, status, class): (String, String, String, String, Option<String>) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        let received = if channel == "sms" {
            stack.twilio.messages_with_key(&id)
        } else {
            stack.smtp.mails_to(&to).len()
        };
        match (status.as_str(), class.as_deref()) {
            ("sent", _) => {
                sent += 1;
                assert_eq!(
                    received, 1,
                    "delivery {id} to {to} was sent {received} times"
                );
            }
            ("failed", Some("outcome_unknown")) => {
                unknown += 1;
                assert!(received <= 1, "delivery {id} to {to} received {received}");
            }
            ("failed", Some("transient_exhausted")) => {
                exhausted += 1;
                assert_eq!(received, 0, "delivery {id} to {to}");
            }
            ("failed" | "expired", _) => {
                failed += 1;
                assert_eq!(received, 0, "delivery {id} to {to}");
            }
            other => panic!("unexpected delivery state {other:?}"),
        }
    }
    assert_eq!(
        db.query_one(
            "SELECT status, error_class FROM deliveries WHERE destination = 'rejected@example.com'",
            &[]
        )
        .await
        .map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1)))
        .ok(),
        Some(("failed".to_owned(), Some("permanent".to_owned()))),
        "the 5xx recipient failed at once"
    );

    // Nothing waits in a work or delay queue; the parking lot holds only exhausted deliveries.
    let vhost = stack.vhost.clone();
    let expected = [
        ("passgate.codegen", 0),
        ("passgate.verify", 0),
        ("passgate.delivery.email", 0),
        ("passgate.delivery.sms", 0),
        ("passgate.delivery.delay.0", 0),
        ("passgate.delivery.delay.1", 0),
        ("passgate.delivery.delay.2", 0),
        ("passgate.delivery.delay.3", 0),
        ("passgate.delivery.lease-wait", 0),
        ("passgate.dead", exhausted),
    ];
    // (a copy waiting out a dead worker's 60 s delivery lease may still be in the lease-wait
    // queue)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut depths = Vec::new();
        for (queue, _) in expected {
            depths.push(stack.broker.queue_depth(&vhost, queue).await);
        }
        if depths.iter().zip(expected).all(|(d, (_, e))| *d == e) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queues: {:?}",
            expected
                .iter()
                .map(|(q, _)| q)
                .zip(depths)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "[fault suite] sends accepted {}, succeeded {succeeded}, refused with 503 {}, authentications accepted {}; \
         deliveries: sent {sent}, failed {failed}, outcome unknown {unknown}, exhausted and parked {exhausted}",
        accepted.sends.len(),
        accepted.refused_503,
        accepted.authentications.len(),
    );
    assert!(sent > 20, "the load ran ({sent} sent)");
    drop(restarted);
    let _ = second.kill().await;
}
