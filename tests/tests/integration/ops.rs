//! Operations endpoints and documents.

use passgate_tests::Stack;
use serde_json::Value;

#[tokio::test]
async fn health_readiness_metrics_openapi_and_discovery() {
    let stack = Stack::start().await;
    let (_, token) = stack.app_with_token("Acme").await;
    assert_eq!(stack.send_code(&token, "mo@example.com").await.status, 200);
    stack.smtp.code_for("mo@example.com", 1).await.unwrap();
    let get = |url: String| {
        let http = stack.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    for base in [&stack.api_url, &stack.workers_url] {
        assert_eq!(get(format!("{base}/healthz")).await.0, 200);
        let (status, body) = get(format!("{base}/readyz")).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, api_metrics) = get(format!("{}/metrics", stack.api_url)).await;
    assert!(
        api_metrics.contains("passgate_http_requests_total"),
        "{api_metrics}"
    );
    assert!(api_metrics.contains("passgate_api_commands_total"));
    let (_, worker_metrics) = get(format!("{}/metrics", stack.workers_url)).await;
    assert!(
        worker_metrics.contains("passgate_jobs_total"),
        "{worker_metrics}"
    );
    assert!(worker_metrics.contains("passgate_deliveries_total"));
    assert!(!api_metrics.contains("mo@example.com") && !worker_metrics.contains("mo@example.com"));

    let (status, openapi) = get(format!("{}/openapi.json", stack.api_url)).await;
    assert_eq!(status, 200);
    let openapi: Value = serde_json::from_str(&openapi).unwrap();
    for path in [
        "/v1/auth/otp/send",
        "/v1/auth/otp/authenticate",
        "/v1/requests/{request_id}",
        "/oidc/token",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    for path in ["/v1/auth/otp/send", "/v1/auth/link/email/send"] {
        let params = openapi["paths"][path]["post"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            params.iter().any(|p| p["name"] == "Passgate-Client-IP"),
            "{path} does not document Passgate-Client-IP"
        );
    }
    // Every /v1 operation documents 403 app_disabled (one that already had a 403 keeps it).
    for (path, method) in [
        ("/v1/users", "get"),
        ("/v1/requests/{request_id}", "get"),
        ("/v1/auth/otp/authenticate", "post"),
    ] {
        let described = openapi["paths"][path][method]["responses"]["403"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            described.contains("app_disabled"),
            "{method} {path}: {described:?}"
        );
    }
    let (status, docs) = get(format!("{}/docs", stack.api_url)).await;
    assert_eq!(status, 200);
    assert!(docs.to_lowercase().contains("<html"));
    let (_, discovery) = get(format!(
        "{}/.well-known/openid-configuration",
        stack.api_url
    ))
    .await;
    let discovery: Value = serde_json::from_str(&discovery).unwrap();
    assert_eq!(discovery["issuer"], stack.api_url);
    // Every claim an ID token can carry is listed, the phone number's included.
    let claims = discovery["claims_supported"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for claim in [
        "sub",
        "amr",
        "email",
        "email_verified",
        "phone_number",
        "phone_number_verified",
    ] {
        assert!(
            claims.iter().any(|c| c == claim),
            "{claim} not in {claims:?}"
        );
    }
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/oidc/jwks", stack.api_url)
    );
}
