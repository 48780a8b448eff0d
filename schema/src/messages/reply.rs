use serde::{Deserialize, Serialize};

use crate::ids::RequestId;

/// A worker's final answer to a command, sent to the command's `reply_to` (and recorded in
/// `auth_requests`). `body` is the exact HTTP body; bodies holding tokens travel sealed in
/// `sealed_body` instead (AEAD under the transport key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandReply {
    pub request_id: RequestId,
    pub http_status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
}
