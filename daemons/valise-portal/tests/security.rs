//! Sign-in, sessions, CSRF, headers, throttling, per-user isolation and admin rights,
//! against the real portal over HTTPS (no engine needed).

mod common;

use common::{PASSWORD, Portal, wav};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn sign_in_sets_a_host_only_strict_cookie_and_sign_out_ends_the_session() {
    let p = Portal::start().await;
    p.add_user("alice", false);
    let mut c = p.client();
    let r = c.login("alice", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in [
        "__Host-valise-session=",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    assert!(!cookie.contains("Domain"), "a __Host- cookie has no Domain");
    let (s, me) = c.get_json("/api/me").await;
    assert_eq!(
        (s, me["username"].as_str()),
        (StatusCode::OK, Some("alice"))
    );
    let r = c.req(Method::POST, "/api/logout").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (s, e) = c.get_json("/api/me").await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );
}

#[tokio::test]
async fn wrong_passwords_are_refused_then_throttled_and_audited_without_secrets() {
    let p = Portal::start().await;
    p.add_user("bob", false);
    let mut c = p.client();
    for _ in 0..5 {
        let r = c.login("bob", "not the right password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = c.login("bob", PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "throttled even with the right password"
    );
    assert!(r.headers().contains_key("retry-after"));
    // Unknown accounts answer exactly like wrong passwords; other accounts from the same
    // address are not throttled by bob's (the address has its own, larger allowance).
    let mut other = p.client();
    let r = other.login("nobody", "whatever password").await;
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "bad_credentials");
    let log = p
        .db()
        .with(|c| valise_portal::audit::list(c, 100, None))
        .unwrap();
    assert!(
        log.iter()
            .any(|e| e.action == "login_failed" && e.actor == "bob")
    );
    assert!(
        log.iter()
            .any(|e| e.action == "login_throttled" && e.actor == "bob")
    );
    let dump = format!("{log:?}");
    assert!(!dump.contains("not the right password") && !dump.contains(PASSWORD));
}

#[tokio::test]
async fn cross_site_requests_with_the_cookie_are_refused() {
    let p = Portal::start().await;
    p.add_user("carol", false);
    let c = p.login("carol").await;
    let cookie = format!("__Host-valise-session={}", c.cookie.clone().unwrap());
    let body = json!({"text": "hello", "target": "pt"});
    // Another site's page.
    let r = c
        .raw(Method::POST, "/api/translate")
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["code"], "csrf");
    // No proof of origin at all.
    let r = c
        .raw(Method::DELETE, "/api/jobs/0123456789abcdef0123456789abcdef")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Login CSRF: another site cannot sign the browser in.
    let r = c
        .raw(Method::POST, "/api/login")
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"username": "carol", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Reading is fine (GET has no side effect).
    let r = c
        .raw(Method::GET, "/api/me")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_answer_carries_strict_security_headers_and_the_ui_is_served_over_http2() {
    let p = Portal::start().await;
    for path in ["/", "/assets/app.js", "/api/me", "/some/page"] {
        let r = p.client().raw(Method::GET, path).send().await.unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2, "{path}");
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(
            h["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age=")
        );
    }
    let r = p.client().raw(Method::GET, "/").send().await.unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let r = p
        .client()
        .raw(Method::GET, "/api/nothing-here")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "unknown API paths are 404 JSON, not the UI"
    );
}

#[tokio::test]
async fn nobody_sees_another_users_jobs_admins_included() {
    let p = Portal::start().await;
    p.add_user("dave", false);
    p.add_user("erin", false);
    p.add_user("root", true);
    let dave = p.login("dave").await;
    let (s, job) = dave
        .upload("/api/jobs/transcribe?filename=secret-meeting.wav", wav(1.0))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let (_, mine) = dave.get_json("/api/jobs").await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    for other in [p.login("erin").await, p.login("root").await] {
        let (s, list) = other.get_json("/api/jobs").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
        for path in ["", "/media", "/transcript", "/export?format=txt"] {
            let (s, _) = other.get_json(&format!("/api/jobs/{id}{path}")).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        }
        let r = other
            .req(Method::DELETE, &format!("/api/jobs/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let (s, _) = dave.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!(s, StatusCode::OK, "still there for its owner");
    // The audit log knows a job was created, never what it was called.
    let log = p
        .db()
        .with(|c| valise_portal::audit::list(c, 100, None))
        .unwrap();
    assert!(
        log.iter()
            .any(|e| e.action == "job_created" && e.detail.contains(&id))
    );
    assert!(!format!("{log:?}").contains("secret-meeting"));
}

#[tokio::test]
async fn admin_pages_are_for_admins_and_the_last_admin_stays() {
    let p = Portal::start().await;
    p.add_user("frank", false);
    p.add_user("grace", true);
    let staff = p.login("frank").await;
    for path in [
        "/api/admin/users",
        "/api/admin/state",
        "/api/admin/audit",
        "/api/admin/retention",
    ] {
        let (s, e) = staff.get_json(path).await;
        assert_eq!(
            (s, e["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{path}"
        );
    }
    let admin = p.login("grace").await;
    let (s, u) = admin
        .send_json(
            Method::POST,
            "/api/admin/users",
            &json!({"username": "heidi", "password": "short"}),
        )
        .await;
    assert_eq!(
        (s, u["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("weak_password"))
    );
    let (s, u) = admin
        .send_json(
            Method::POST,
            "/api/admin/users",
            &json!({"username": "heidi", "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let (_, users) = admin.get_json("/api/admin/users").await;
    let me = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "grace")
        .unwrap();
    let (s, e) = admin
        .send_json(
            Method::PATCH,
            &format!("/api/admin/users/{}", me["id"]),
            &json!({"admin": false}),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict")),
        "the last admin cannot step down"
    );
    // Disabling a user ends their session at once.
    let (_, users) = admin.get_json("/api/admin/users").await;
    let frank = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "frank")
        .unwrap();
    let (s, _) = admin
        .send_json(
            Method::PATCH,
            &format!("/api/admin/users/{}", frank["id"]),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = staff.get_json("/api/me").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, state) = admin.get_json("/api/admin/state").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        state["engines"]["transcribe"]["up"], false,
        "no engine in this test"
    );
    assert!(state["disk"]["total_bytes"].as_u64().unwrap() > 0);
    let (_, audit) = admin.get_json("/api/admin/audit").await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"user_created") && actions.contains(&"user_updated"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn api_tokens_work_without_cookies_and_scripts_routes_need_one() {
    let p = Portal::start().await;
    p.add_user("ivan", false);
    let token = p.token("ivan");
    let mut c = p.client();
    c.token = Some(token.clone());
    let r = c
        .raw(Method::GET, "/api/me")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c.raw(Method::GET, "/languages").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no token");
    let r = c
        .raw(Method::GET, "/languages")
        .bearer_auth("vt_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "forged token");
    // A session cookie is not enough for the scripts' API.
    let browser = p.login("ivan").await;
    let r = browser.req(Method::GET, "/languages").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c.raw(Method::GET, "/openapi.json").send().await.unwrap();
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/audio/transcriptions"]["post"].is_object());
}
