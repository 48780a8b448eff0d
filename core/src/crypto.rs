//! Secrets: keys that never print, keyed hashes, constant-time comparison, AEAD sealing and
//! random codes and tokens.
//!
//! - Keyed hashes (HMAC-SHA-256) store codes, link tokens, refresh tokens and client secrets:
//!   a database dump alone does not let anyone test a guess.
//! - Sealing (XChaCha20-Poly1305, random 192-bit nonce, associated data binding the purpose and
//!   the record) protects secrets that must be read back: codes on their way to the delivery
//!   worker, token bodies in replies and results, private signing keys at rest.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

const NONCE_LEN: usize = 24;

/// A 32-byte secret key. `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// Parses 32 bytes written as base64 (any common alphabet) or hex.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let decoded = if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&raw[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|e| e.to_string())?
        } else {
            [&URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD, &STANDARD_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(raw).ok())
                .ok_or_else(|| "not base64 or hex".to_owned())?
        };
        let bytes: [u8; 32] = decoded
            .try_into()
            .map_err(|v: Vec<u8>| format!("must be 32 bytes, got {}", v.len()))?;
        Ok(Self(bytes))
    }

    /// The key as unpadded URL-safe base64 (for generated configuration only).
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// A sub-key for one purpose, so one configured key never serves two algorithms.
    pub fn derive(&self, purpose: &str) -> SecretKey {
        SecretKey(self.mac(purpose.as_bytes(), &[]))
    }

    fn mac(&self, label: &[u8], data: &[u8]) -> [u8; 32] {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(&(label.len() as u64).to_be_bytes());
        mac.update(label);
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// The keyed hash of `secret` for `purpose` (domain-separated).
    pub fn keyed_hash(&self, purpose: &str, secret: &[u8]) -> [u8; 32] {
        self.mac(purpose.as_bytes(), secret)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The keyed hash stored for an app's client secret (under `PASSGATE_CLIENT_KEY`).
pub fn hash_client_secret(client_key: &SecretKey, secret: &str) -> [u8; 32] {
    client_key.keyed_hash("client-secret", secret.as_bytes())
}

/// Compares two secrets (or their hashes) in constant time.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed value is malformed or was not sealed with this key and context")]
    Open,
    #[error("sealing failed")]
    Seal,
}

/// AEAD under one key. `context` is authenticated (not encrypted): a value sealed for one
/// purpose or record cannot be replayed as another.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    pub fn new(key: &SecretKey) -> Self {
        let cipher = <XChaCha20Poly1305 as KeyInit>::new_from_slice(key.as_bytes())
            .unwrap_or_else(|_| unreachable!("the key is 32 bytes"));
        Self { cipher }
    }

    /// `nonce || ciphertext+tag`.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce_bytes, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce_bytes: [u8; NONCE_LEN] = nonce_bytes.try_into().map_err(|_| SealError::Open)?;
        let nonce = XNonce::from(nonce_bytes);
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Open)
    }

    /// [`Sealer::seal`] as unpadded URL-safe base64, for JSON messages.
    pub fn seal_b64(&self, context: &[u8], plaintext: &[u8]) -> Result<String, SealError> {
        self.seal(context, plaintext)
            .map(|v| URL_SAFE_NO_PAD.encode(v))
    }

    pub fn open_b64(&self, context: &[u8], sealed: &str) -> Result<Vec<u8>, SealError> {
        let raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| SealError::Open)?;
        self.open(context, &raw)
    }
}

/// A uniformly random string of `len` decimal digits (rejection sampling, no modulo bias).
pub fn random_digits(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        // 250 is the largest multiple of 10 not above 256: bytes >= 250 are rejected.
        let byte: u8 = rand::random();
        if byte < 250 {
            out.push(char::from(b'0' + byte % 10));
        }
    }
    out
}

/// A random token of `bytes` bytes as unpadded URL-safe base64.
pub fn random_token(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_hash_depends_on_key_purpose_and_secret() {
        let k1 = SecretKey::from_bytes([1; 32]);
        let k2 = SecretKey::from_bytes([2; 32]);
        let h = k1.keyed_hash("otp", b"123456");
        assert_eq!(h, k1.keyed_hash("otp", b"123456"));
        assert_ne!(h, k2.keyed_hash("otp", b"123456"));
        assert_ne!(h, k1.keyed_hash("link", b"123456"));
        assert_ne!(h, k1.keyed_hash("otp", b"123457"));
    }

    #[test]
    fn seal_round_trips_and_binds_context() {
        let sealer = Sealer::new(&SecretKey::from_bytes([7; 32]));
        let sealed = sealer.seal(b"ctx-a", b"secret").unwrap_or_default();
        assert_eq!(sealer.open(b"ctx-a", &sealed), Ok(b"secret".to_vec()));
        assert_eq!(sealer.open(b"ctx-b", &sealed), Err(SealError::Open));
        let other = Sealer::new(&SecretKey::from_bytes([8; 32]));
        assert_eq!(other.open(b"ctx-a", &sealed), Err(SealError::Open));
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert_eq!(sealer.open(b"ctx-a", &tampered), Err(SealError::Open));
        assert!(!String::from_utf8_lossy(&sealed).contains("secret"));
    }

    #[test]
    fn random_digits_have_the_length_and_spread() {
        let mut counts = [0usize; 10];
        for _ in 0..2000 {
            let code = random_digits(6);
            assert_eq!(code.len(), 6);
            for b in code.bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        // 12,000 digits: each should appear about 1,200 times.
        assert!(
            counts.iter().all(|&c| (900..1500).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn key_parsing_accepts_base64_and_hex_and_redacts() {
        let key = SecretKey::generate();
        let parsed =
            SecretKey::parse(&key.to_base64()).unwrap_or_else(|_| SecretKey::from_bytes([0; 32]));
        assert_eq!(parsed.as_bytes(), key.as_bytes());
        assert!(SecretKey::parse(&"ab".repeat(32)).is_ok());
        assert!(SecretKey::parse("short").is_err());
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
    }

    #[test]
    fn constant_time_eq_checks_length_and_content() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
