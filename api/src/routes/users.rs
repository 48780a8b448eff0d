//! Users of the calling app: create, get, look up by identifier, disable/enable, delete.
//! These are plain data operations with no secret involved, so the API runs them against
//! PostgreSQL directly; everything that checks or issues a credential goes through the workers.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use passgate_core::db;
use passgate_schema::ids::UserId;
use passgate_schema::models::users::{self, Lookup, NewUser, User};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::state::AppState;
use crate::validate;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub email: Option<String>,
    /// E.164.
    pub phone_number: Option<String>,
    pub username: Option<String>,
    pub external_user_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// `active` or `disabled`; a disabled user cannot log in (`403 user_not_active`).
    pub status: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UserQuery {
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub username: Option<String>,
    pub external_user_id: Option<String>,
}

/// `{result: user}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    #[schema(value_type = Object)]
    pub result: Value,
}

/// The user object (Transmit's shape: identifiers with their verification state).
pub fn user_json(u: &User) -> Value {
    json!({
        "user_id": u.id,
        "email": u.email.as_ref().map(|e| json!({"value": e, "email_verified": u.email_verified_at.is_some()})),
        "phone_number": u.phone_number.as_ref().map(|p| json!({"value": p, "phone_number_verified": u.phone_number_verified_at.is_some()})),
        "username": u.username,
        "external_user_id": u.external_user_id,
        "status": u.status,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
        "last_auth": u.last_login_at,
    })
}

fn text(field: &str, raw: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match raw {
        None => Ok(None),
        Some(v) => {
            let v = v.trim().to_owned();
            if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
                Err(ApiError::invalid(
                    field,
                    format!("must be 1 to {max} printable characters"),
                ))
            } else {
                Ok(Some(v))
            }
        }
    }
}

fn parse_id(raw: &str) -> Result<UserId, ApiError> {
    raw.parse().map_err(|_| ApiError::UserNotFound)
}

/// Create a user.
#[utoipa::path(
    post, path = "/v1/users", tag = "users",
    request_body = CreateUserRequest,
    responses(
        (status = 201, body = UserResponse),
        (status = 400, body = ErrorBody, description = "`system_invalid_input`"),
        (status = 409, body = ErrorBody, description = "`user_already_exists`"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<CreateUserRequest>,
) -> Result<Response, ApiError> {
    let req = body.value;
    let email = req
        .email
        .as_deref()
        .map(|e| validate::email("email", e))
        .transpose()?;
    let phone = req
        .phone_number
        .as_deref()
        .map(|p| validate::phone_number("phone_number", p))
        .transpose()?;
    let username = text("username", req.username, 256)?;
    let external = text("external_user_id", req.external_user_id, 256)?;
    if email.is_none() && phone.is_none() && username.is_none() && external.is_none() {
        return Err(ApiError::invalid(
            "email",
            "a user needs at least one of email, phone_number, username, external_user_id",
        ));
    }
    let now = state.clock.now();
    let mut conn = db::conn(&state.db).await?;
    let created = User::create(
        &mut conn,
        &NewUser {
            id: UserId::new_v7(),
            app_id: caller.app_id,
            email: email.as_deref(),
            phone_number: phone.as_deref(),
            username: username.as_deref(),
            external_user_id: external.as_deref(),
            created_at: now,
            updated_at: now,
        },
    )
    .await?;
    let user = created.ok_or(ApiError::UserAlreadyExists)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "result": user_json(&user) })),
    )
        .into_response())
}

/// Look a user up by one identifier.
#[utoipa::path(
    get, path = "/v1/users", tag = "users", params(UserQuery),
    responses((status = 200, body = UserResponse), (status = 404, body = ErrorBody, description = "`user_not_found`")),
    security(("bearer" = []))
)]
pub async fn find(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<UserQuery>,
) -> Result<Json<Value>, ApiError> {
    let email = q
        .email
        .as_deref()
        .map(|e| validate::email("email", e))
        .transpose()?;
    let phone = q
        .phone_number
        .as_deref()
        .map(|p| validate::phone_number("phone_number", p))
        .transpose()?;
    let lookup = match (&email, &phone, &q.username, &q.external_user_id) {
        (Some(e), None, None, None) => Lookup::Email(e),
        (None, Some(p), None, None) => Lookup::PhoneNumber(p),
        (None, None, Some(u), None) => Lookup::Username(u),
        (None, None, None, Some(x)) => Lookup::ExternalId(x),
        _ => {
            return Err(ApiError::invalid(
                "query",
                "give exactly one of email, phone_number, username, external_user_id",
            ));
        }
    };
    let mut conn = db::conn(&state.db).await?;
    let user = User::find(&mut conn, caller.app_id, &lookup)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    Ok(Json(json!({ "result": user_json(&user) })))
}

/// Get a user.
#[utoipa::path(
    get, path = "/v1/users/{user_id}", tag = "users", params(("user_id" = String, Path)),
    responses((status = 200, body = UserResponse), (status = 404, body = ErrorBody, description = "`user_not_found`")),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let mut conn = db::conn(&state.db).await?;
    let user = User::find(&mut conn, caller.app_id, &Lookup::Id(id))
        .await?
        .ok_or(ApiError::UserNotFound)?;
    Ok(Json(json!({ "result": user_json(&user) })))
}

/// Enable or disable a user.
#[utoipa::path(
    patch, path = "/v1/users/{user_id}", tag = "users", params(("user_id" = String, Path)),
    request_body = UpdateUserRequest,
    responses((status = 200, body = UserResponse), (status = 404, body = ErrorBody, description = "`user_not_found`")),
    security(("bearer" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<UpdateUserRequest>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let status = match body.value.status.as_str() {
        users::STATUS_ACTIVE => users::STATUS_ACTIVE,
        users::STATUS_DISABLED => users::STATUS_DISABLED,
        _ => return Err(ApiError::invalid("status", "must be active or disabled")),
    };
    let mut conn = db::conn(&state.db).await?;
    let user = User::set_status(&mut conn, caller.app_id, id, status, state.clock.now())
        .await?
        .ok_or(ApiError::UserNotFound)?;
    Ok(Json(json!({ "result": user_json(&user) })))
}

/// Delete a user: credentials, codes, links and sessions go with it.
#[utoipa::path(
    delete, path = "/v1/users/{user_id}", tag = "users", params(("user_id" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody, description = "`user_not_found`")),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let mut conn = db::conn(&state.db).await?;
    if User::delete(&mut conn, caller.app_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::UserNotFound)
    }
}
