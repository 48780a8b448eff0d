//! Test harness: each [`Stack`] is a real Passgate — the `passgate-api` and `passgate-workers`
//! binaries on free ports — against the real PostgreSQL and RabbitMQ started by
//! `scripts/services.sh`, with its own database (cloned from a migrated template) and its own
//! RabbitMQ virtual host, and a real SMTP server ([`smtp::SmtpSink`]). Tests run in parallel
//! without seeing each other.
//!
//! Needs the environment of `scripts/services.sh` (`PASSGATE_PG_ADMIN_URL`, `PASSGATE_AMQP_URL`,
//! `PASSGATE_RABBIT_MGMT_URL`) and the binaries built (`scripts/test.sh` does both).

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness"
)]

pub mod smtp;
pub mod twilio;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

pub use smtp::SmtpSink;
pub use twilio::FakeTwilio;

const TEMPLATE_DB: &str = "passgate_test_template";

/// The JWT with one character of its signature changed (in the middle: the last character of
/// base64url can carry unused bits, so changing it may not change the signature).
pub fn forge(jwt: &str) -> String {
    let mut chars: Vec<char> = jwt.chars().collect();
    let start = jwt.rfind('.').map(|i| i + 1).unwrap_or(0);
    let i = start + (chars.len() - start) / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// reqwest is built with rustls and no default crypto provider (as the workers): install ring
/// once before any client is built.
pub fn ensure_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests with scripts/test.sh"))
}

/// Where the built binaries are (`target/debug`), next to this test executable's `deps/`.
pub fn bin(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("PASSGATE_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn random_key() -> String {
    let bytes: Vec<u8> = (0..32).map(|_| rand_byte()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn rand_byte() -> u8 {
    uuid::Uuid::new_v4().as_bytes()[7]
}

async fn pg_admin() -> tokio_postgres::Client {
    let (client, conn) =
        tokio_postgres::connect(&env("PASSGATE_PG_ADMIN_URL"), tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL is not reachable");
    tokio::spawn(conn);
    client
}

fn db_url(name: &str) -> String {
    let admin = env("PASSGATE_PG_ADMIN_URL");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap();
    format!("{base}/{name}")
}

/// A fresh, migrated database on another PostgreSQL (fault tests); returns its URL.
async fn create_private_database(admin_url: &str) -> String {
    let admin = pg(admin_url).await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = format!(
        "{}/{name}",
        admin_url.rsplit_once('/').map(|(b, _)| b).unwrap()
    );
    let out = Command::new(bin("passgate"))
        .arg("migrate")
        .env("PASSGATE_DATABASE_URL", &url)
        .output()
        .await
        .expect("run passgate migrate");
    assert!(
        out.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    url
}

/// Connects to one database.
pub async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

static TEMPLATE: OnceCell<()> = OnceCell::const_new();

/// A fresh, migrated database.
async fn create_database() -> String {
    TEMPLATE
        .get_or_init(|| async {
            let admin = pg_admin().await;
            admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)"
                ))
                .await
                .unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {TEMPLATE_DB}"))
                .await
                .unwrap();
            let out = Command::new(bin("passgate"))
                .arg("migrate")
                .env("PASSGATE_DATABASE_URL", db_url(TEMPLATE_DB))
                .output()
                .await
                .expect("run passgate migrate");
            assert!(
                out.status.success(),
                "migrate failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        })
        .await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    // CREATE DATABASE … TEMPLATE needs the template to be idle; retry briefly on contention.
    let admin = pg_admin().await;
    for attempt in 0..50 {
        match admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}"))
            .await
        {
            Ok(()) => return name,
            Err(e) if attempt < 49 => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("create database: {e}"),
        }
    }
    unreachable!()
}

/// A RabbitMQ broker to run against: the shared one, or a private one (fault tests).
#[derive(Clone, Debug)]
pub struct Broker {
    pub amqp_base: String,
    pub mgmt: String,
}

impl Broker {
    pub fn shared() -> Self {
        let amqp = env("PASSGATE_AMQP_URL");
        let base = amqp.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
        Self {
            amqp_base: base,
            mgmt: env("PASSGATE_RABBIT_MGMT_URL"),
        }
    }

    fn mgmt_parts(&self) -> (String, String, String) {
        // http://user:pass@host:port
        let rest = self.mgmt.strip_prefix("http://").unwrap();
        let (creds, host) = rest.split_once('@').unwrap();
        let (user, pass) = creds.split_once(':').unwrap();
        (format!("http://{host}"), user.to_owned(), pass.to_owned())
    }

    /// Creates a virtual host (and grants the user everything on it).
    pub async fn create_vhost(&self, vhost: &str) -> String {
        ensure_tls();
        let (base, user, pass) = self.mgmt_parts();
        let http = reqwest::Client::new();
        for (url, body) in [
            (format!("{base}/api/vhosts/{vhost}"), serde_json::json!({})),
            (
                format!("{base}/api/permissions/{vhost}/{user}"),
                serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"}),
            ),
        ] {
            // A broker that has just started may refuse its API for a moment: retry briefly.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let status = match http
                    .put(&url)
                    .basic_auth(&user, Some(&pass))
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) => Some(r.status()),
                    Err(_) => None,
                };
                if status.is_some_and(|s| s.is_success()) {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "PUT {url}: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        format!("{}/{vhost}", self.amqp_base)
    }

    /// Waits until `queue` holds exactly `depth` messages; fails the test with `what` after
    /// `timeout`.
    pub async fn wait_depth(
        &self,
        vhost: &str,
        queue: &str,
        depth: i64,
        timeout: Duration,
        what: &str,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.queue_depth(vhost, queue).await != depth {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A queue's message count (ready + unacked) from the management API.
    pub async fn queue_depth(&self, vhost: &str, queue: &str) -> i64 {
        ensure_tls();
        let (base, user, pass) = self.mgmt_parts();
        let v: Value = reqwest::Client::new()
            .get(format!("{base}/api/queues/{vhost}/{queue}"))
            .basic_auth(&user, Some(&pass))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["messages"].as_i64().unwrap_or(-1)
    }
}

/// Options for a stack.
#[derive(Clone, Debug)]
pub struct Options {
    pub env: HashMap<String, String>,
    pub broker: Broker,
    /// A PostgreSQL of the test's own (its admin URL), instead of the shared one.
    pub pg_admin: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        let mut env = HashMap::new();
        // Tests resend freely unless they test the cooldown.
        env.insert(
            "PASSGATE_OTP_RESEND_COOLDOWN_SECS".to_owned(),
            "0".to_owned(),
        );
        env.insert("PASSGATE_OTP_SENDS_PER_HOUR".to_owned(), "1000".to_owned());
        // Fast delivery retries (the ladder's shape is unit-tested).
        env.insert(
            "PASSGATE_DELIVERY_RETRY_DELAYS".to_owned(),
            "0.2,0.4,0.8".to_owned(),
        );
        // Workers see a rotated signing key at once.
        env.insert(
            "PASSGATE_SIGNING_KEY_REFRESH_SECS".to_owned(),
            "0".to_owned(),
        );
        Self {
            env,
            broker: Broker::shared(),
            pg_admin: None,
        }
    }
}

impl Options {
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// An app's credentials.
#[derive(Clone, Debug)]
pub struct AppCreds {
    pub app_id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// One running Passgate.
pub struct Stack {
    pub api_url: String,
    pub workers_url: String,
    pub db_url: String,
    pub vhost: String,
    pub amqp_url: String,
    pub smtp: SmtpSink,
    pub twilio: FakeTwilio,
    pub clock_file: PathBuf,
    pub http: reqwest::Client,
    pub broker: Broker,
    env: HashMap<String, String>,
    pub api: Option<Child>,
    pub workers: Option<Child>,
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        ensure_tls();
        let database = async {
            match &options.pg_admin {
                Some(admin) => create_private_database(admin).await,
                None => db_url(&create_database().await),
            }
        };
        let (db_url, smtp, twilio) = tokio::join!(database, SmtpSink::start(), FakeTwilio::start());
        let (smtp, twilio) = (smtp.unwrap(), twilio.unwrap());
        let vhost = format!("v_{}", uuid::Uuid::new_v4().simple());
        let amqp_url = options.broker.create_vhost(&vhost).await;
        let api_port = free_port();
        let workers_port = free_port();
        let clock_file =
            std::env::temp_dir().join(format!("passgate-clock-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&clock_file, "0").unwrap();
        let mut env: HashMap<String, String> = [
            ("PASSGATE_DATABASE_URL", db_url.clone()),
            ("PASSGATE_DATABASE_POOL_SIZE", "4".to_owned()),
            ("PASSGATE_AMQP_URL", amqp_url.clone()),
            ("PASSGATE_API_BIND", format!("127.0.0.1:{api_port}")),
            ("PASSGATE_WORKERS_BIND", format!("127.0.0.1:{workers_port}")),
            ("PASSGATE_ISSUER", format!("http://127.0.0.1:{api_port}")),
            ("PASSGATE_CLIENT_KEY", random_key()),
            ("PASSGATE_TRANSPORT_KEY", random_key()),
            ("PASSGATE_DATA_KEY", random_key()),
            (
                "PASSGATE_SMTP_URL",
                format!("smtp://127.0.0.1:{}", smtp.port),
            ),
            ("PASSGATE_TEST_CLOCK_FILE", clock_file.display().to_string()),
            ("PASSGATE_TWILIO_BASE_URL", twilio.base_url()),
            (
                "PASSGATE_TWILIO_ACCOUNT_SID",
                twilio::ACCOUNT_SID.to_owned(),
            ),
            ("PASSGATE_TWILIO_AUTH_TOKEN", twilio::AUTH_TOKEN.to_owned()),
            ("PASSGATE_TWILIO_FROM", twilio::FROM.to_owned()),
            (
                "PASSGATE_LOG",
                "warn,passgate_api=info,passgate_workers=info".to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(options.env);
        let mut stack = Self {
            api_url: format!("http://127.0.0.1:{api_port}"),
            workers_url: format!("http://127.0.0.1:{workers_port}"),
            db_url,
            vhost,
            amqp_url,
            smtp,
            twilio,
            clock_file,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            broker: options.broker,
            env,
            api: None,
            workers: None,
        };
        stack.api = Some(stack.spawn("passgate-api", &[]));
        stack.workers = Some(stack.spawn("passgate-workers", &[]));
        stack.wait_ready(&stack.api_url.clone()).await;
        stack.wait_ready(&stack.workers_url.clone()).await;
        stack
    }

    /// Starts one of the binaries with this stack's environment.
    pub fn spawn(&self, name: &str, args: &[&str]) -> Child {
        self.spawn_with(name, args, &[])
    }

    /// Starts one of the binaries with this stack's environment plus `extra`.
    pub fn spawn_with(&self, name: &str, args: &[&str], extra: &[(&str, &str)]) -> Child {
        let mut cmd = Command::new(bin(name));
        cmd.args(args)
            .envs(&self.env)
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if std::env::var_os("PASSGATE_TEST_QUIET").is_some() {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        cmd.spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e} (build the binaries first)"))
    }

    pub async fn wait_ready(&self, base: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(format!("{base}/readyz")).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{base} not ready within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates an app with the admin CLI.
    pub async fn create_app(&self, name: &str) -> AppCreds {
        self.create_app_with(name, &[]).await
    }

    /// Creates an app with an allow-list of redirect URIs.
    pub async fn create_app_with(&self, name: &str, redirect_uris: &[&str]) -> AppCreds {
        self.create_app_full(name, redirect_uris, "{}").await
    }

    /// Creates an app with redirect URIs and policy settings (JSON).
    pub async fn create_app_full(
        &self,
        name: &str,
        redirect_uris: &[&str],
        settings: &str,
    ) -> AppCreds {
        let mut args = vec![
            "app",
            "create",
            "--name",
            name,
            "--json",
            "--settings",
            settings,
        ];
        for uri in redirect_uris {
            args.extend(["--redirect-uri", uri]);
        }
        let v: Value = serde_json::from_str(&self.cli(&args).await).unwrap();
        AppCreds {
            app_id: v["app_id"].as_str().unwrap().to_owned(),
            client_id: v["client_id"].as_str().unwrap().to_owned(),
            client_secret: v["client_secret"].as_str().unwrap().to_owned(),
        }
    }

    /// Polls a request until it is final, for up to `timeout`.
    pub async fn poll_final_for(&self, token: &str, request_id: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let r = self.get(&format!("/v1/requests/{request_id}"), token).await;
            if r.status == 200 && r.body["status"] != "pending" {
                return r.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "request {request_id} not final after {timeout:?}: {} {:?}",
                r.status,
                r.body
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Changes one variable for processes started from now on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.insert(key.to_owned(), value.to_owned());
    }

    /// Runs the admin CLI with this stack's environment; returns stdout.
    pub async fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(bin("passgate"))
            .args(args)
            .envs(&self.env)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "passgate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The answer of `/oidc/token` to the app's client credentials.
    pub async fn token_response(&self, app: &AppCreds) -> reqwest::Response {
        self.http
            .post(format!("{}/oidc/token", self.api_url))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", app.client_id.as_str()),
                ("client_secret", app.client_secret.as_str()),
            ])
            .send()
            .await
            .unwrap()
    }

    /// A caller access token for the app.
    pub async fn token(&self, app: &AppCreds) -> String {
        let r = self.token_response(app).await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// A new app and a token for it.
    pub async fn app_with_token(&self, name: &str) -> (AppCreds, String) {
        let app = self.create_app(name).await;
        let token = self.token(&app).await;
        (app, token)
    }

    /// POSTs JSON with a bearer token and optional extra headers.
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .http
            .post(format!("{}{path}", self.api_url))
            .bearer_auth(token)
            .json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Resp::from(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        Resp::from(
            self.http
                .get(format!("{}{path}", self.api_url))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Sends an email code and returns the API's answer.
    pub async fn send_code(&self, token: &str, email: &str) -> Resp {
        self.post(
            "/v1/auth/otp/send",
            token,
            &serde_json::json!({"channel": "email", "identifier_type": "email", "identifier": email, "create_new_user": true}),
            &[],
        )
        .await
    }

    /// Sends a text-message code to a phone number (creating the user if new).
    pub async fn send_sms_code(&self, token: &str, phone: &str) -> Resp {
        self.post(
            "/v1/auth/otp/send",
            token,
            &serde_json::json!({"channel": "sms", "identifier_type": "phone_number", "identifier": phone, "create_new_user": true}),
            &[],
        )
        .await
    }

    pub async fn authenticate(&self, token: &str, email: &str, passcode: &str) -> Resp {
        self.post(
            "/v1/auth/otp/authenticate",
            token,
            &serde_json::json!({"identifier_type": "email", "identifier": email, "passcode": passcode}),
            &[],
        )
        .await
    }

    /// Moves this stack's clock (all its processes) by `secs` from real time.
    pub fn set_clock_offset(&self, secs: i64) {
        std::fs::write(&self.clock_file, secs.to_string()).unwrap();
    }

    /// Polls a request until it is final.
    pub async fn poll_final(&self, token: &str, request_id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.get(&format!("/v1/requests/{request_id}"), token).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            if r.body["status"] != "pending" {
                return r.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "request {request_id} still pending after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs SQL against this stack's database.
    pub async fn db(&self) -> tokio_postgres::Client {
        pg(&self.db_url).await
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.clock_file);
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Self {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn error_code(&self) -> &str {
        self.body["error_code"].as_str().unwrap_or("")
    }
}
