//! Passgate's HTTP API (axum). `main.rs` only wires; [`router`] builds the whole application
//! from an [`AppState`], so tests can run any configuration.
//!
//! The API authenticates the calling app, validates input, records the request, publishes one
//! command with publisher confirms and either waits for the worker's answer or answers `202`.
//! It holds no business logic and never sees a stored code, secret or hash.

pub mod auth;
pub mod broker;
pub mod commands;
pub mod config;
pub mod error;
pub mod extract;
pub mod routes;
pub mod state;
pub mod validate;

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use passgate_core::cache::TtlCache;
use passgate_core::clock::Clock;
use passgate_core::crypto::Sealer;
use passgate_core::telemetry::Shutdown;
use passgate_core::{amqp, db};
use tracing::Instrument;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_scalar::{Scalar, Servable};

use crate::auth::ClientTokens;
use crate::broker::Waiters;
use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// More apps than this in the API's app cache: it is emptied (it refills with the apps in use).
const APP_CACHE_MAX: usize = 10_000;

#[derive(OpenApi)]
#[openapi(
    info(title = "Passgate", description = "Backend authentication API: email one-time codes, email magic links, users and sessions. More methods (SMS, TOTP, passwords, passkeys) arrive as new routes on the same pipeline."),
    modifiers(&BearerAuth),
    tags(
        (name = "oidc", description = "Caller credentials and token verification keys"),
        (name = "otp", description = "One-time codes by email"),
        (name = "links", description = "Email magic links"),
        (name = "sessions", description = "Refresh, session tokens, logout"),
        (name = "users", description = "Users of the calling app"),
        (name = "requests", description = "Polling commands answered with 202"),
        (name = "operations", description = "Health and metrics"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, generated from the route annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    split().1
}

/// The routes and their OpenAPI document, with the answers every `/v1` route may give added.
fn split() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) = api_router().split_for_parts();
    document_caller_errors(&mut api);
    (router, api)
}

/// Every `/v1` route checks the caller's app: `403 app_disabled` once the app is disabled,
/// whatever the route, so it is documented once here rather than on each route.
fn document_caller_errors(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    const DISABLED: &str = "`app_disabled`: the app was disabled after its access token was issued";
    for (path, item) in api.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            match responses.get_mut("403") {
                Some(RefOr::T(existing)) => {
                    existing.description = format!("{}; {DISABLED}", existing.description);
                }
                Some(RefOr::Ref(_)) => {}
                None => {
                    let response = ResponseBuilder::new()
                        .description(DISABLED)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build(),
                        )
                        .build();
                    responses.insert("403".to_owned(), RefOr::T(response));
                }
            }
        }
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::oidc::token))
        .routes(routes!(routes::oidc::jwks))
        .routes(routes!(routes::oidc::openid_configuration))
        .routes(routes!(routes::otp::send))
        .routes(routes!(routes::otp::authenticate))
        .routes(routes!(routes::links::send))
        .routes(routes!(routes::links::authenticate))
        .routes(routes!(routes::sessions::refresh))
        .routes(routes!(routes::sessions::authenticate))
        .routes(routes!(routes::sessions::logout))
        .routes(routes!(routes::users::create, routes::users::find))
        .routes(routes!(
            routes::users::get,
            routes::users::update,
            routes::users::delete
        ))
        .routes(routes!(routes::requests::get))
        .routes(routes!(routes::health::healthz))
        .routes(routes!(routes::health::readyz))
        .routes(routes!(routes::health::metrics))
}

/// The whole application.
pub fn router(state: AppState) -> axum::Router {
    let (router, api) = split();
    let api = Arc::new(api);
    let json_api = api.clone();
    router
        .route("/.well-known/jwks.json", get(routes::oidc::jwks))
        .route(
            "/openapi.json",
            get(move || async move { Json(json_api.as_ref().clone()) }),
        )
        .merge(Scalar::with_url("/docs", api.as_ref().clone()))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Request id, span, and the `passgate_http_*` metrics for every call.
async fn observe(State(_state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert("x-request-id", v);
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let span = tracing::info_span!("http", http.method = %method, http.route = %route, request.id = %request_id);
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!("passgate_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("passgate_http_request_duration_seconds", "method" => method, "route" => route).record(elapsed);
    span.in_scope(|| {
        tracing::debug!(
            http.status = status,
            elapsed_ms = elapsed * 1000.0,
            "request done"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Builds the state and starts the broker supervisor.
pub fn start(
    config: ApiConfig,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shutdown: Shutdown,
) -> anyhow::Result<(AppState, tokio::task::JoinHandle<()>)> {
    let db = db::pool(
        &config.common.database_url,
        config.common.database_pool_size,
        std::time::Duration::from_secs(3),
    )?;
    let ledger = db::pool(
        &db::relaxed_commit_url(&config.common.database_url),
        config.common.database_pool_size,
        std::time::Duration::from_secs(3),
    )?;
    let waiters = Arc::new(Waiters::default());
    let setup_waiters = waiters.clone();
    let (broker, task) = amqp::supervise(
        config.common.amqp_url.clone(),
        "passgate-api".to_owned(),
        shutdown,
        move |conn| broker::setup(conn, setup_waiters.clone()),
        |_| async {},
    );
    let state = AppState {
        client_tokens: Arc::new(ClientTokens::new(
            &config.client_key,
            &config.common.issuer,
        )?),
        transport: Sealer::new(&config.transport_key),
        apps: Arc::new(TtlCache::new(config.app_cache_ttl, APP_CACHE_MAX)),
        config: Arc::new(config),
        db,
        ledger,
        broker,
        waiters,
        clock: Clock::from_env(),
        metrics,
    };
    Ok((state, task))
}
