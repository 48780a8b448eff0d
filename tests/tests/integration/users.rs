//! The users API.

use passgate_tests::Stack;
use serde_json::json;

#[tokio::test]
async fn create_get_find_disable_and_delete_users() {
    let stack = Stack::start().await;
    let (_, a) = stack.app_with_token("A").await;
    let (_, b) = stack.app_with_token("B").await;
    let r = stack
        .post("/v1/users", &a, &json!({"email": "Tia@Example.com", "phone_number": "+1 415 555 0100", "username": "tia"}), &[])
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let user = &r.body["result"];
    let id = user["user_id"].as_str().unwrap().to_owned();
    assert_eq!(user["email"]["value"], "tia@example.com");
    assert_eq!(user["email"]["email_verified"], false);
    assert_eq!(user["phone_number"]["value"], "+14155550100");
    assert_eq!(user["status"], "active");

    let dup = stack
        .post("/v1/users", &a, &json!({"email": "tia@example.com"}), &[])
        .await;
    assert_eq!((dup.status, dup.error_code()), (409, "user_already_exists"));
    // Another app has its own users.
    assert_eq!(
        stack
            .post("/v1/users", &b, &json!({"email": "tia@example.com"}), &[])
            .await
            .status,
        201
    );
    assert_eq!(
        stack.get(&format!("/v1/users/{id}"), &b).await.error_code(),
        "user_not_found"
    );

    assert_eq!(
        stack.get(&format!("/v1/users/{id}"), &a).await.body["result"]["user_id"],
        id.as_str()
    );
    assert_eq!(
        stack
            .get("/v1/users?email=tia%40example.com", &a)
            .await
            .body["result"]["user_id"],
        id.as_str()
    );
    assert_eq!(
        stack.get("/v1/users?username=tia", &a).await.body["result"]["user_id"],
        id.as_str()
    );
    assert_eq!(
        stack
            .get("/v1/users?username=nobody", &a)
            .await
            .error_code(),
        "user_not_found"
    );
    assert_eq!(
        stack.get("/v1/users", &a).await.error_code(),
        "system_invalid_input"
    );
    for bad in [
        json!({}),
        json!({"email": "nope"}),
        json!({"phone_number": "12345"}),
        json!({"email": 5}),
    ] {
        let r = stack.post("/v1/users", &a, &bad, &[]).await;
        assert_eq!(
            (r.status, r.error_code()),
            (400, "system_invalid_input"),
            "{bad}"
        );
    }

    // A disabled user cannot log in; the code is not burned by the refusal.
    let patch = stack
        .http
        .patch(format!("{}/v1/users/{id}", stack.api_url))
        .bearer_auth(&a)
        .json(&json!({"status": "disabled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 200);
    assert_eq!(stack.send_code(&a, "tia@example.com").await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        stack.smtp.mails_to("tia@example.com").is_empty(),
        "nothing is sent to a disabled user"
    );

    let del = stack
        .http
        .delete(format!("{}/v1/users/{id}", stack.api_url))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(stack.get(&format!("/v1/users/{id}"), &a).await.status, 404);
    let again = stack
        .http
        .delete(format!("{}/v1/users/{id}", stack.api_url))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn a_disabled_user_gets_user_not_active_after_a_valid_code() {
    let stack = Stack::start().await;
    let (_, a) = stack.app_with_token("A").await;
    assert_eq!(stack.send_code(&a, "uma@example.com").await.status, 200);
    let code = stack.smtp.code_for("uma@example.com", 1).await.unwrap();
    let first = stack.authenticate(&a, "uma@example.com", &code).await;
    let id = first.body["session_id"].as_str().map(|_| ()).map(|_| ());
    assert!(id.is_some());
    let user = stack
        .get("/v1/users?email=uma%40example.com", &a)
        .await
        .body["result"]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(stack.send_code(&a, "uma@example.com").await.status, 200);
    let code = stack.smtp.code_for("uma@example.com", 2).await.unwrap();
    stack
        .http
        .patch(format!("{}/v1/users/{user}", stack.api_url))
        .bearer_auth(&a)
        .json(&json!({"status": "disabled"}))
        .send()
        .await
        .unwrap();
    let r = stack.authenticate(&a, "uma@example.com", &code).await;
    assert_eq!((r.status, r.error_code()), (403, "user_not_active"));
    // Re-enabled, the same code works: the refusal did not consume it.
    stack
        .http
        .patch(format!("{}/v1/users/{user}", stack.api_url))
        .bearer_auth(&a)
        .json(&json!({"status": "active"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stack
            .authenticate(&a, "uma@example.com", &code)
            .await
            .status,
        200
    );
}
