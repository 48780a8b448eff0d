//! Input validation and normalisation (pure functions). The workers receive identifiers that
//! are already valid and normalised.

use passgate_schema::messages::IdentifierType;

use crate::error::ApiError;

/// Lower-cases and checks an email address (RFC 5321 lengths; a pragmatic syntax check: the
/// real proof is that the code arrives).
pub fn email(field: &str, raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let bad = |why: &str| {
        Err(ApiError::invalid(
            field,
            format!("not a valid email address: {why}"),
        ))
    };
    if email.len() > 254 {
        return bad("longer than 254 characters");
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return bad("missing @");
    };
    if local.is_empty() || local.len() > 64 {
        return bad("local part must be 1 to 64 characters");
    }
    if domain.len() < 3
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return bad("domain must be a dotted host name");
    }
    if email.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '<' | '>' | '(' | ')' | ',' | ';' | ':' | '\\' | '"' | '[' | ']'
            )
    }) || local.contains('@')
    {
        return bad("contains a character that is not allowed");
    }
    Ok(email)
}

/// A valid phone number in international form (`+` and country code), normalised to E.164.
/// Checked against libphonenumber's metadata (`phonenumber` crate): a number that cannot
/// exist is refused here rather than sent to an SMS provider.
pub fn phone_number(field: &str, raw: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::invalid(
            field,
            "must be a valid phone number in E.164 form, such as +14155550123",
        )
    };
    let trimmed = raw.trim();
    let allowed = |c: char| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.');
    if !trimmed.starts_with('+') || trimmed.len() > 32 || !trimmed[1..].chars().all(allowed) {
        return Err(bad());
    }
    let number = phonenumber::parse(None, trimmed).map_err(|_| bad())?;
    if !phonenumber::is_valid(&number) {
        return Err(bad());
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// The end user's IP address from the `Passgate-Client-IP` header (set by the calling
/// backend), for per-IP send limits.
pub fn client_ip(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get("passgate-client-ip") else {
        return Ok(None);
    };
    let ip: std::net::IpAddr = raw
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            ApiError::invalid("Passgate-Client-IP", "must be an IPv4 or IPv6 address")
        })?;
    Ok(Some(ip.to_string()))
}

/// Validates and normalises an identifier of the given type.
pub fn identifier(kind: IdentifierType, raw: &str) -> Result<String, ApiError> {
    match kind {
        IdentifierType::Email => email("identifier", raw),
        IdentifierType::PhoneNumber => phone_number("identifier", raw),
        IdentifierType::UserId => raw
            .trim()
            .parse::<uuid::Uuid>()
            .map(|u| u.to_string())
            .map_err(|_| ApiError::invalid("identifier", "must be a user id (UUID)")),
        IdentifierType::Username => {
            let name = raw.trim();
            if name.is_empty() || name.chars().count() > 256 || name.chars().any(char::is_control) {
                Err(ApiError::invalid(
                    "identifier",
                    "must be 1 to 256 printable characters",
                ))
            } else {
                Ok(name.to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            email("e", " Alice@Example.COM ").ok().as_deref(),
            Some("alice@example.com")
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "alice@.example.com",
            "alice@example..com",
        ] {
            assert!(email("e", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phone_numbers_must_be_e164() {
        assert_eq!(
            phone_number("p", "+1 (415) 555-0123").ok().as_deref(),
            Some("+14155550123")
        );
        assert_eq!(
            phone_number("p", "+33 6 12 34 56 78").ok().as_deref(),
            Some("+33612345678")
        );
        for bad in [
            "4155550123",
            "+0123456789",
            "+1234",
            "+1415555012a",
            "+1234567890123456",
            "+1 555 000 0000",
        ] {
            assert!(phone_number("p", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers_by_type() {
        assert!(identifier(IdentifierType::UserId, "not-a-uuid").is_err());
        assert!(
            identifier(
                IdentifierType::UserId,
                "0190d1a4-7a1e-7cc0-8000-000000000001"
            )
            .is_ok()
        );
        assert!(identifier(IdentifierType::Username, "   ").is_err());
    }
}
