//! Worker roles. One binary runs any subset (`--roles codegen,delivery`); operators scale a
//! role by starting more processes with it (competing consumers on the role's queue).

use passgate_core::amqp::{CODEGEN_QUEUE, DELIVERY_EMAIL_QUEUE, DELIVERY_SMS_QUEUE, VERIFY_QUEUE};
use passgate_core::config::{self, ConfigError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Creates codes (and later links, TOTP secrets, WebAuthn challenges).
    Codegen,
    /// Sends messages through providers.
    Delivery,
    /// Checks what users send back and issues tokens.
    Verify,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Codegen, Role::Delivery, Role::Verify];

    pub fn name(self) -> &'static str {
        match self {
            Self::Codegen => "codegen",
            Self::Delivery => "delivery",
            Self::Verify => "verify",
        }
    }

    pub fn queues(self) -> &'static [&'static str] {
        match self {
            Self::Codegen => &[CODEGEN_QUEUE],
            Self::Delivery => &[DELIVERY_EMAIL_QUEUE, DELIVERY_SMS_QUEUE],
            Self::Verify => &[VERIFY_QUEUE],
        }
    }

    /// Unacknowledged messages a process holds per queue (`PASSGATE_PREFETCH_<ROLE>`).
    pub fn prefetch(self) -> Result<u16, ConfigError> {
        match self {
            Self::Codegen => config::parse_or("PASSGATE_PREFETCH_CODEGEN", 32),
            Self::Delivery => config::parse_or("PASSGATE_PREFETCH_DELIVERY", 64),
            Self::Verify => config::parse_or("PASSGATE_PREFETCH_VERIFY", 32),
        }
    }

    /// Parses `codegen,delivery` (or `all`).
    pub fn parse_list(raw: &str) -> Result<Vec<Role>, String> {
        let mut roles = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                return Ok(Self::ALL.to_vec());
            }
            let role = Self::ALL
                .into_iter()
                .find(|r| r.name() == part)
                .ok_or_else(|| format!("unknown role {part:?} (codegen, delivery, verify, all)"))?;
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        if roles.is_empty() {
            return Err("no role given".to_owned());
        }
        Ok(roles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_role_lists() {
        assert_eq!(Role::parse_list("all"), Ok(Role::ALL.to_vec()));
        assert_eq!(
            Role::parse_list("verify, codegen,verify"),
            Ok(vec![Role::Verify, Role::Codegen])
        );
        assert!(Role::parse_list("cooking").is_err());
        assert!(Role::parse_list("").is_err());
    }
}
