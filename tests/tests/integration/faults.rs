//! Faults: the broker going away under the API, and graceful shutdown of the workers.

use std::time::{Duration, Instant};

use passgate_tests::{Broker, Options, Stack};
use serde_json::json;

/// A RabbitMQ of this test's own (started with `scripts/services.sh`), so stopping it does
/// not disturb the other tests.
struct PrivateRabbit {
    env: Vec<(String, String)>,
}

impl PrivateRabbit {
    fn port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    async fn start() -> (Self, Broker) {
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
        this.run("start-rabbitmq").await;
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

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/services.sh");
        let _ = std::process::Command::new("bash")
            .arg(script)
            .arg("stop-rabbitmq")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output();
        if let Some((_, dir)) = self.env.iter().find(|(k, _)| k == "PASSGATE_SERVICES_DIR") {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[tokio::test]
async fn broker_outage_gives_fast_503_then_recovers_and_loses_nothing() {
    let (rabbit, broker) = PrivateRabbit::start().await;
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
