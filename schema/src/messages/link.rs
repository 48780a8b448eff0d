use serde::{Deserialize, Serialize};

use crate::ids::SessionId;
use crate::messages::IdentifierType;

/// `link.send`: email a magic link. The redirect URI is checked against the app's allow-list
/// by the worker (exact match).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkSend {
    pub identifier_type: IdentifierType,
    pub identifier: String,
    pub redirect_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Lifetime in minutes (1–60); 15 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u32>,
    #[serde(default)]
    pub create_new_user: bool,
    /// The end user's IP address, when the caller names it (per-IP send limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
}

/// `link.authenticate`: consume a link code (sealed under the transport key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkAuthenticate {
    pub code_sealed: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
}
