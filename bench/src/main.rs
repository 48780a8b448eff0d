//! `passgate-bench`: a load generator for Passgate.
//!
//! It starts a real system the way the integration tests do (the `passgate-api` and
//! `passgate-workers` binaries of `--bin-dir`, against the PostgreSQL and RabbitMQ of
//! `scripts/services.sh`, with an SMTP server inside the harness), then drives scenarios for a
//! bounded time and number of requests, on loopback only, and prints a table: requests/s,
//! latency percentiles, errors, peak RSS of the API and worker processes, and the CPU seconds
//! RabbitMQ and PostgreSQL used during each scenario.
//!
//! Adding a scenario is one function returning [`Measured`] and one line in `main`.
//!
//! ```text
//! scripts/bench.sh                 # release build, every scenario, 20 s each
//! scripts/bench.sh --seconds 3     # a smoke run (CI)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use passgate_tests::{Options, Stack};
use serde_json::json;
use tokio::sync::Mutex;

mod seed;

#[derive(Parser, Debug)]
#[command(name = "passgate-bench")]
struct Args {
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Most requests a scenario sends.
    #[arg(long, default_value_t = 200_000)]
    max_requests: usize,
    /// Concurrent clients of the accept scenario.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Sends per second offered in the end-to-end scenario.
    #[arg(long, default_value_t = 300)]
    rate: u64,
    /// Scenarios to run (accept, accept-alone, e2e, login).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "accept,accept-alone,e2e,login"
    )]
    scenarios: Vec<String>,
    /// Growth: seed 1 million users and 10 million past requests, challenges and deliveries
    /// before the scenarios run (sizes can be changed with --seed-users and --seed-requests).
    #[arg(long)]
    growth: bool,
    /// Users to seed (implies seeding; default with --growth: 1,000,000).
    #[arg(long)]
    seed_users: Option<i64>,
    /// Past requests (and as many challenges and deliveries) to seed (default with --growth:
    /// 10,000,000).
    #[arg(long)]
    seed_requests: Option<i64>,
}

impl Args {
    fn seed_sizes(&self) -> Option<seed::Sizes> {
        let wanted = self.growth || self.seed_users.is_some() || self.seed_requests.is_some();
        wanted.then(|| seed::Sizes {
            users: self.seed_users.unwrap_or(1_000_000),
            requests: self.seed_requests.unwrap_or(10_000_000),
        })
    }
}

/// Latency samples and counts of one scenario (or one step of it).
#[derive(Default)]
struct Measured {
    name: String,
    samples: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Measured {
    fn percentile(&self, p: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index.min(sorted.len() - 1)]
    }

    fn row(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let rate = self.samples.len() as f64 / self.elapsed.as_secs_f64().max(0.001);
        format!(
            "| {:<22} | {:>8} | {:>9.0} | {:>8.1} | {:>8.1} | {:>8.1} | {:>6} |",
            self.name,
            self.samples.len(),
            rate,
            ms(self.percentile(0.50)),
            ms(self.percentile(0.95)),
            ms(self.percentile(0.99)),
            self.errors
        )
    }
}

/// Peak and current resident memory of a process, in MiB (from /proc).
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
            .unwrap_or(0.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU seconds used so far by every process whose command line contains `needle`.
fn cpu_seconds(needle: &str) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains(needle) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime is 14th, stime 15th,
        // cutime 16th, cstime 17th.
        if let Some(rest) = stat.rsplit(')').next() {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let value = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            // utime + stime, plus cutime + cstime: the time of children that have ended
            // (PostgreSQL backends of closed connections), so the total never goes down.
            total += (value(11) + value(12) + value(13) + value(14)) / ticks;
        }
    }
    total
}

struct CpuProbe {
    rabbit: f64,
    postgres: f64,
    api: f64,
    workers: f64,
    bench: f64,
}

impl CpuProbe {
    fn now() -> Self {
        Self {
            rabbit: cpu_seconds("beam.smp"),
            postgres: cpu_seconds("postgres"),
            api: cpu_seconds("passgate-api"),
            workers: cpu_seconds("passgate-workers"),
            bench: cpu_seconds("passgate-bench"),
        }
    }

    fn since(&self, earlier: &CpuProbe) -> String {
        format!(
            "CPU s: api {:.1}, workers {:.1}, RabbitMQ {:.1}, PostgreSQL {:.1}, load generator {:.1}",
            self.api - earlier.api,
            self.workers - earlier.workers,
            self.rabbit - earlier.rabbit,
            self.postgres - earlier.postgres,
            self.bench - earlier.bench
        )
    }
}

fn send_body(i: usize, prefix: &str) -> serde_json::Value {
    json!({"channel": "email", "identifier_type": "email", "identifier": format!("{prefix}{i}@bench.test"), "create_new_user": true})
}

/// `otp/send` with `Prefer: respond-async`, distinct identifiers, many concurrent clients.
async fn accept(stack: &Arc<Stack>, token: &str, args: &Args) -> Measured {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (stack, token, next) = (stack.clone(), token.to_owned(), next.clone());
        let max = args.max_requests;
        tasks.push(tokio::spawn(async move {
            let (mut samples, mut errors) = (Vec::new(), 0);
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= max {
                    break;
                }
                let t = Instant::now();
                let r = stack
                    .post(
                        "/v1/auth/otp/send",
                        &token,
                        &send_body(i, "a"),
                        &[("Prefer", "respond-async")],
                    )
                    .await;
                if r.status == 202 {
                    samples.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (samples, errors)
        }));
    }
    let mut m = Measured {
        name: "accept (otp/send, 202)".into(),
        ..Default::default()
    };
    for task in tasks {
        if let Ok((samples, errors)) = task.await {
            m.samples.extend(samples);
            m.errors += errors;
        }
    }
    m.elapsed = started.elapsed();
    m
}

/// Email codes from `send` to the message arriving at the SMTP server, at an offered rate.
/// Also returns how many sends were accepted.
async fn end_to_end(stack: &Arc<Stack>, token: &str, args: &Args) -> (Measured, usize) {
    let mails_before = stack.smtp.count();
    let period = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let sent_at = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut ticker = tokio::time::interval(period);
    let started = Instant::now();
    let mut i = 0;
    let mut inflight = Vec::new();
    while Instant::now() < deadline && i < args.max_requests {
        ticker.tick().await;
        let (stack, token, sent_at, errors) = (
            stack.clone(),
            token.to_owned(),
            sent_at.clone(),
            errors.clone(),
        );
        let n = i;
        inflight.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = stack
                .post(
                    "/v1/auth/otp/send",
                    &token,
                    &send_body(n, "e"),
                    &[("Prefer", "respond-async")],
                )
                .await;
            if r.status == 202 {
                sent_at.lock().await.push((format!("e{n}@bench.test"), t));
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }));
        i += 1;
    }
    for t in inflight {
        let _ = t.await;
    }
    // Wait (bounded) for the mail of every accepted send; arrivals are read incrementally so
    // the load generator's own work stays small.
    let accepted = sent_at.lock().await.clone();
    let wanted: std::collections::HashSet<&str> =
        accepted.iter().map(|(to, _)| to.as_str()).collect();
    let mut arrived: std::collections::HashMap<String, Instant> = Default::default();
    let mut seen = mails_before;
    let wait_until = Instant::now() + Duration::from_secs(30);
    loop {
        let new = stack.smtp.arrivals_after(seen);
        seen += new.len();
        for (to, at) in new {
            for x in to {
                if wanted.contains(x.as_str()) {
                    arrived.entry(x).or_insert(at);
                }
            }
        }
        if arrived.len() == accepted.len() || Instant::now() > wait_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut m = Measured {
        name: "e2e (send → SMTP)".into(),
        errors: errors.load(Ordering::Relaxed),
        ..Default::default()
    };
    let mut last_arrival = started;
    for (to, t) in &accepted {
        match arrived.get(to) {
            Some(at) => {
                m.samples.push(at.saturating_duration_since(*t));
                last_arrival = last_arrival.max(*at);
            }
            None => m.errors += 1,
        }
    }
    m.elapsed = last_arrival.saturating_duration_since(started);
    (m, accepted.len())
}

/// A light login load: send (waiting mode), read the code, authenticate (waiting mode).
async fn login(stack: &Arc<Stack>, token: &str, args: &Args) -> (Measured, Measured) {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (stack, token, next, stop) =
            (stack.clone(), token.to_owned(), next.clone(), stop.clone());
        let max = args.max_requests;
        tasks.push(tokio::spawn(async move {
            let (mut send, mut auth, mut errors) = (Vec::new(), Vec::new(), 0);
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= max {
                    break;
                }
                let email = format!("l{i}@bench.test");
                let t = Instant::now();
                let r = stack
                    .post("/v1/auth/otp/send", &token, &send_body(i, "l"), &[])
                    .await;
                if r.status != 200 {
                    errors += 1;
                    continue;
                }
                send.push(t.elapsed());
                let Ok(code) = stack.smtp.code_for(&email, 1).await else {
                    errors += 1;
                    continue;
                };
                let t = Instant::now();
                let r = stack.authenticate(&token, &email, &code).await;
                if r.status == 200 {
                    auth.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (send, auth, errors)
        }));
    }
    let mut send = Measured {
        name: "login: send (wait)".into(),
        ..Default::default()
    };
    let mut auth = Measured {
        name: "login: authenticate".into(),
        ..Default::default()
    };
    for task in tasks {
        if let Ok((s, a, e)) = task.await {
            send.samples.extend(s);
            auth.samples.extend(a);
            send.errors += e;
        }
    }
    send.elapsed = started.elapsed();
    auth.elapsed = send.elapsed;
    (send, auth)
}

/// Waits (at most 5 minutes) until the SMTP server has received `expected` messages in all
/// (one per accepted send, since the scenarios' limits are raised); returns the delivery
/// throughput while draining: the whole pipeline, codegen → delivery → SMTP.
async fn drain(stack: &Arc<Stack>, expected: usize) -> Option<Measured> {
    let started = Instant::now();
    let before = stack.smtp.count();
    if before >= expected {
        return None;
    }
    let mut now = before;
    while now < expected && started.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = stack.smtp.count();
    }
    Some(Measured {
        name: format!("drain ({} left)", expected - before),
        samples: vec![Duration::ZERO; now - before],
        errors: expected.saturating_sub(now),
        elapsed: started.elapsed(),
    })
}

/// Sends a signal (`STOP`, `CONT`) to a process.
fn signal(pid: u32, name: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

async fn drop_database(db_url: &str) -> anyhow::Result<()> {
    let admin = std::env::var("PASSGATE_PG_ADMIN_URL")?;
    let name = db_url.rsplit('/').next().unwrap_or_default();
    anyhow::ensure!(
        name.starts_with("t_") && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "unexpected database name {name}"
    );
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = Options::default()
        // The real clock (the harness's test clock reads a file on every call).
        .set("PASSGATE_TEST_CLOCK_FILE", "")
        .set("PASSGATE_LOG", "warn")
        .set("PASSGATE_DATABASE_POOL_SIZE", "16")
        .set("PASSGATE_SENDS_PER_APP_PER_HOUR", "100000000")
        .set("PASSGATE_OTP_SENDS_PER_HOUR", "1000")
        // The production default (the test harness re-reads the key on every token).
        .set("PASSGATE_SIGNING_KEY_REFRESH_SECS", "30");
    let stack = Stack::start_with(options).await;
    let api_pid = stack.api.as_ref().and_then(|c| c.id()).unwrap_or(0);
    let workers_pid = stack.workers.as_ref().and_then(|c| c.id()).unwrap_or(0);
    let idle = (rss_mib(api_pid), rss_mib(workers_pid));
    let (app, token) = stack.app_with_token("Bench").await;
    if let Some(sizes) = args.seed_sizes() {
        seed::seed(&stack.db().await, &app.app_id, sizes).await?;
    }
    let stack = Arc::new(stack);
    // Resident memory of the API and the workers every 5 s, to see whether it grows.
    let rss_samples = Arc::new(std::sync::Mutex::new(Vec::<(f64, f64)>::new()));
    let sampler = {
        let samples = rss_samples.clone();
        tokio::spawn(async move {
            loop {
                let (api, workers) = (rss_mib(api_pid).1, rss_mib(workers_pid).1);
                if let Ok(mut s) = samples.lock() {
                    s.push((api, workers));
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    };
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    // Mails the SMTP server should have once everything accepted so far is delivered.
    let mut expected = 0;
    for scenario in &args.scenarios {
        let before = CpuProbe::now();
        match scenario.as_str() {
            "accept" => {
                let m = accept(&stack, &token, &args).await;
                expected += m.samples.len();
                rows.push(m);
            }
            // The API alone: the worker process is paused (SIGSTOP) while the clients run, so
            // the figure is the API's, PostgreSQL's and RabbitMQ's accept path without the
            // pipeline competing for the same cores; the backlog drains afterwards.
            "accept-alone" => {
                signal(workers_pid, "STOP");
                let mut m = accept(&stack, &token, &args).await;
                signal(workers_pid, "CONT");
                m.name = "accept, workers paused".into();
                expected += m.samples.len();
                rows.push(m);
            }
            "e2e" => {
                let (m, accepted) = end_to_end(&stack, &token, &args).await;
                expected += accepted;
                rows.push(m);
            }
            "login" => {
                let (send, auth) = login(&stack, &token, &args).await;
                expected += send.samples.len();
                rows.push(send);
                rows.push(auth);
            }
            other => anyhow::bail!("unknown scenario {other}"),
        }
        notes.push(format!("{scenario}: {}", CpuProbe::now().since(&before)));
        // Let the deliveries the scenario queued drain before the next one, and measure how
        // fast they drain (codes delivered per second).
        let before = CpuProbe::now();
        if let Some(drain) = drain(&stack, expected).await {
            notes.push(format!(
                "{scenario} drain ({:.0} s): {}",
                drain.elapsed.as_secs_f64(),
                CpuProbe::now().since(&before)
            ));
            rows.push(drain);
        }
    }
    let peak = (rss_mib(api_pid), rss_mib(workers_pid));
    eprintln!(
        "| scenario               | requests |   req/s   | p50 ms   | p95 ms   | p99 ms   | errors |"
    );
    eprintln!(
        "|------------------------|----------|-----------|----------|----------|----------|--------|"
    );
    for row in &rows {
        eprintln!("{}", row.row());
    }
    eprintln!();
    for note in notes {
        eprintln!("{note}");
    }
    eprintln!(
        "memory MiB: api idle {:.1}, peak {:.1}; workers idle {:.1}, peak {:.1}",
        idle.0.1, peak.0.0, idle.1.1, peak.1.0
    );
    sampler.abort();
    if let Ok(samples) = rss_samples.lock()
        && samples.len() >= 24
    {
        // Largest RSS in each minute of the run (12 samples a minute): steady memory levels off.
        let minutes: Vec<String> = samples
            .chunks(12)
            .map(|minute| {
                let (api, workers) = minute
                    .iter()
                    .fold((0.0_f64, 0.0_f64), |m, s| (m.0.max(s.0), m.1.max(s.1)));
                format!("{api:.1}/{workers:.1}")
            })
            .collect();
        eprintln!(
            "memory MiB per minute (max RSS api/workers): {}",
            minutes.join(", ")
        );
    }
    let total_errors: usize = rows.iter().map(|r| r.errors).sum();
    let total: usize = rows.iter().map(|r| r.samples.len()).sum();
    eprintln!("bench: {total} requests measured, {total_errors} errors");
    // Stop the processes and drop the run's database (a seeded one holds gigabytes).
    let db_url = stack.db_url.clone();
    drop(stack);
    if let Err(e) = drop_database(&db_url).await {
        eprintln!("bench: could not drop the database: {e}");
    }
    anyhow::ensure!(total > 0, "no request succeeded");
    Ok(())
}
