//! A real SMTP server for tests (RFC 5321 subset: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
//! QUIT) that keeps every message in memory. The workers talk to it over TCP exactly as they
//! would to a relay.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// When the message was accepted (end-to-end latency in benchmarks).
    pub received_at: std::time::Instant,
}

impl Mail {
    /// The first `https://…` or `http://…` link in the plain-text part.
    pub fn link(&self) -> Option<String> {
        let text = self.decoded();
        let start = text.find("http")?;
        let link: String = text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"')
            .collect();
        Some(link)
    }

    /// The message with quoted-printable soft breaks and escapes undone.
    pub fn decoded(&self) -> String {
        let joined = self.data.replace("=\r\n", "").replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A query parameter of the first link.
    pub fn link_param(&self, name: &str) -> Option<String> {
        let link = self.link()?;
        let (_, query) = link.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| decode(v))
        })
    }

    /// The first run of `len` digits after "code is ".
    pub fn code(&self) -> Option<String> {
        let at = self.data.find("code is ")? + "code is ".len();
        let digits: String = self.data[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        (!digits.is_empty()).then_some(digits)
    }
}

#[derive(Clone, Default)]
pub struct SmtpSink {
    mails: Arc<Mutex<Inbox>>,
    arrived: Arc<Notify>,
    faults: Arc<Mutex<Faults>>,
    pub port: u16,
}

/// Every message, and where each recipient's are (a waiter reads only its own, so a sink
/// holding many messages stays cheap to wait on).
#[derive(Default)]
struct Inbox {
    mails: Vec<Mail>,
    by_recipient: std::collections::HashMap<String, Vec<usize>>,
}

/// Injected failures.
#[derive(Default)]
struct Faults {
    /// Answer every MAIL FROM with this reply (e.g. "451 4.3.0 try later") while set.
    refuse_all: Option<String>,
    /// Answer RCPT TO for these addresses with this reply (e.g. "550 5.1.1 no such user").
    reject: Vec<(String, String)>,
    /// Messages accepted per address, counting retries (for exactly-once checks).
    refused_count: usize,
}

impl SmtpSink {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let sink = Self {
            port,
            ..Default::default()
        };
        let server = sink.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    let _ = server.session(socket).await;
                });
            }
        });
        Ok(sink)
    }

    async fn session(&self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 passgate-test-sink ESMTP\r\n").await?;
        let (mut from, mut to) = (String::new(), Vec::new());
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") {
                b"250-passgate-test-sink\r\n250 8BITMIME\r\n"
            } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
                b"250 ok\r\n"
            } else if upper.starts_with("RSET") {
                from.clear();
                to.clear();
                b"250 ok\r\n"
            } else if upper.starts_with("MAIL FROM:") {
                let refuse = self.faults.lock().ok().and_then(|mut f| {
                    let r = f.refuse_all.clone();
                    if r.is_some() {
                        f.refused_count += 1;
                    }
                    r
                });
                if let Some(reply) = refuse {
                    write.write_all(format!("{reply}\r\n").as_bytes()).await?;
                    continue;
                }
                from = address(&line);
                b"250 ok\r\n"
            } else if upper.starts_with("RCPT TO:") {
                let rcpt = address(&line);
                let reject = self.faults.lock().ok().and_then(|f| {
                    f.reject
                        .iter()
                        .find(|(a, _)| *a == rcpt)
                        .map(|(_, r)| r.clone())
                });
                if let Some(reply) = reject {
                    write.write_all(format!("{reply}\r\n").as_bytes()).await?;
                    continue;
                }
                to.push(rcpt);
                b"250 ok\r\n"
            } else if upper.starts_with("DATA") {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                if let Ok(mut inbox) = self.mails.lock() {
                    let at = inbox.mails.len();
                    for rcpt in &to {
                        inbox.by_recipient.entry(rcpt.clone()).or_default().push(at);
                    }
                    inbox.mails.push(Mail {
                        from: std::mem::take(&mut from),
                        to: std::mem::take(&mut to),
                        data,
                        received_at: std::time::Instant::now(),
                    });
                }
                self.arrived.notify_waiters();
                b"250 ok: queued\r\n"
            } else if upper.starts_with("QUIT") {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                b"502 command not implemented\r\n"
            };
            write.write_all(reply).await?;
        }
    }

    /// Refuse every message with `reply` (e.g. `"451 4.3.0 try again later"`) until
    /// [`SmtpSink::accept_all`].
    pub fn refuse_all(&self, reply: &str) {
        if let Ok(mut f) = self.faults.lock() {
            f.refuse_all = Some(reply.to_owned());
        }
    }

    pub fn accept_all(&self) {
        if let Ok(mut f) = self.faults.lock() {
            f.refuse_all = None;
        }
    }

    /// Messages refused by [`SmtpSink::refuse_all`] so far.
    pub fn refused(&self) -> usize {
        self.faults.lock().map(|f| f.refused_count).unwrap_or(0)
    }

    /// Reject one recipient for good with `reply` (e.g. `"550 5.1.1 no such user"`).
    pub fn reject(&self, recipient: &str, reply: &str) {
        if let Ok(mut f) = self.faults.lock() {
            f.reject.push((recipient.to_owned(), reply.to_owned()));
        }
    }

    /// Every message received so far.
    pub fn all(&self) -> Vec<Mail> {
        self.mails
            .lock()
            .map(|m| m.mails.clone())
            .unwrap_or_default()
    }

    /// How many messages have been received so far.
    pub fn count(&self) -> usize {
        self.mails.lock().map(|m| m.mails.len()).unwrap_or(0)
    }

    /// Recipients and arrival times of the messages received after the first `skip`.
    pub fn arrivals_after(&self, skip: usize) -> Vec<(Vec<String>, std::time::Instant)> {
        self.mails
            .lock()
            .map(|m| {
                m.mails
                    .iter()
                    .skip(skip)
                    .map(|mail| (mail.to.clone(), mail.received_at))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every message received so far for `to`.
    pub fn mails_to(&self, to: &str) -> Vec<Mail> {
        self.mails
            .lock()
            .map(|m| {
                m.by_recipient
                    .get(to)
                    .map(|at| at.iter().map(|&i| m.mails[i].clone()).collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// Waits until `count` messages for `to` have arrived, and returns them.
    pub async fn wait_for(
        &self,
        to: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Mail>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let mails = self.mails_to(to);
            if mails.len() >= count {
                return Ok(mails);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                anyhow::bail!(
                    "{} of {count} mails for {to} arrived within {timeout:?}",
                    mails.len()
                );
            }
        }
    }

    /// The code in the latest message for `to`, waiting for the `nth` (1-based) message.
    pub async fn code_for(&self, to: &str, nth: usize) -> anyhow::Result<String> {
        let mails = self.wait_for(to, nth, Duration::from_secs(15)).await?;
        mails
            .get(nth - 1)
            .and_then(Mail::code)
            .ok_or_else(|| anyhow::anyhow!("no code in mail {nth} for {to}"))
    }
}

fn address(line: &str) -> String {
    let start = line.find('<').map(|i| i + 1).unwrap_or(0);
    let end = line[start..]
        .find('>')
        .map(|i| start + i)
        .unwrap_or(line.len());
    line[start..end].trim().to_owned()
}

/// Percent- and plus-decoding of a query value.
pub fn decode_component(v: &str) -> String {
    decode(v)
}

fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
