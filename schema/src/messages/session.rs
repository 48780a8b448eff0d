use serde::{Deserialize, Serialize};

use crate::ids::SessionId;

/// `token.refresh`: rotate a refresh token (sealed under the transport key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRefresh {
    pub refresh_token_sealed: String,
}

/// `session.authenticate` (fresh tokens for a live session) and `session.logout`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionCommand {
    pub session_id: SessionId,
}
