//! The admin dashboard's pages: the login and main flows in headless Chromium, driven through
//! chromedriver (WebDriver), and what a browser would not do (forged or missing CSRF tokens,
//! headers) over plain HTTP.

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::json;
use testkit::browser::Browser;
use testkit::{SinkMode, WebhookSink};

use crate::admin::PASSWORD;
use crate::scan::fixture_with;
use crate::{TestApp, count, execute};

async fn with_admin() -> TestApp {
    let hash = auth::password::hash(PASSWORD).expect("hash");
    TestApp::spawn_with(move |env| env.with("ADMIN_USERNAME", "root").with("ADMIN_PASSWORD_HASH", hash)).await
}

/// A browser on the dashboard, at the width of an operator's laptop.
async fn browser(app: &TestApp) -> Browser {
    Browser::start(&app.server.url(), 1440, 900).await
}

async fn log_in(browser: &Browser, username: &str, password: &str, shown: &str) {
    browser.goto("/admin/login").await;
    browser.fill("#login input[name=username]", username).await;
    browser.fill("#login input[name=password]", password).await;
    browser.click("#login button[type=submit]", shown).await;
}

#[tokio::test]
async fn the_admin_logs_in_and_out_in_a_browser() {
    let app = with_admin().await;
    let browser = browser(&app).await;
    browser.goto("/admin").await;
    assert_eq!(browser.location().await, "/admin/login", "no session: to the login page");

    log_in(&browser, "root", "not the password", "#login-error").await;
    assert_eq!(browser.text("#login-error").await, "Wrong username or password.");
    assert_eq!(
        browser.find("#login input[name=username]").await.prop("value").await.expect("value").as_deref(),
        Some("root")
    );
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.admin_sessions").await, 0);
    let cookies = browser.client.get_all_cookies().await.expect("cookies");
    assert!(cookies.iter().all(|c| c.name() != "docora_admin"), "no session cookie: {cookies:?}");
    browser.goto("/admin").await;
    assert_eq!(browser.location().await, "/admin/login");

    log_in(&browser, "root", PASSWORD, "#who").await;
    assert_eq!(browser.location().await, "/admin");
    assert_eq!(browser.text("#who").await, "root");
    assert!(browser.exists("#no-apps").await);
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.admin_sessions").await, 1);
    let session = browser.client.get_named_cookie("docora_admin").await.expect("the session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(session.same_site().map(|s| s.to_string()).as_deref(), Some("Strict"));
    assert_eq!(session.path(), Some("/admin"));
    browser.goto("/admin/login").await;
    assert_eq!(browser.location().await, "/admin", "logged in already");

    browser.click("#logout", "#login").await;
    assert_eq!(browser.location().await, "/admin/login");
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.admin_sessions").await, 0);
    browser.goto("/admin/queue").await;
    assert_eq!(browser.location().await, "/admin/login", "the session is gone");
    browser.close().await;
}

#[tokio::test]
async fn apps_are_onboarded_rekeyed_and_deleted_in_a_browser() {
    let app = with_admin().await;
    let (owner_id, _) = app.github.add_user("octo");
    app.github.add_repo(owner_id, "docs", false);
    let register = json!({"github_url": "https://github.com/octo/docs"});
    let browser = browser(&app).await;
    log_in(&browser, "root", PASSWORD, "#who").await;
    browser.goto("/admin/apps").await;

    // Refused by the server (plain HTTP): the form comes back with the reason and the values.
    let name = "Reader <b>one</b>";
    browser.fill("#onboard input[name=app_name]", name).await;
    browser.fill("#onboard input[name=base_url]", "http://hooks.example.com/docora").await;
    browser.fill("#onboard input[name=email]", "dev@example.com").await;
    browser.fill("#onboard input[name=client_auth_key]", "0123456789abcdef-key").await;
    browser.click("#onboard button[type=submit]", "#onboard-error").await;
    assert!(browser.text("#onboard-error").await.contains("base_url"));
    assert_eq!(
        browser.find("#onboard input[name=app_name]").await.prop("value").await.expect("value").as_deref(),
        Some(name)
    );
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.apps").await, 0);

    browser.fill("#onboard input[name=base_url]", "https://hooks.example.com/docora").await;
    browser.fill("#onboard input[name=client_auth_key]", "0123456789abcdef-key").await;
    browser.click("#onboard button[type=submit]", "#token").await;
    let token = browser.text("#token").await;
    let app_id = browser.text("#app-id").await;
    assert!(token.starts_with("docora_") && token.len() == 7 + 64, "{token}");
    assert_eq!(browser.source().await.matches(&token).count(), 1, "shown once on the page");
    assert_eq!(app.as_token(&token).post_json("/api/repositories", &register).await.status, 201, "the token works");

    // Never again: the apps page shows the app and its repository, not the token.
    browser.goto("/admin/apps").await;
    assert!(!browser.source().await.contains(&token[7..]), "the token is not on the apps page");
    let section = format!("#app-{app_id}");
    assert_eq!(browser.text(&format!("{section} h2")).await, name, "shown as text, not markup");
    let row = browser.text(&format!("{section} table.repositories tbody tr")).await;
    assert!(row.contains("https://github.com/octo/docs") && row.contains("pending") && row.contains("never"), "{row}");

    browser.find(&format!("{section} details.regenerate summary")).await.click().await.expect("opens");
    browser.click(&format!("{section} button.regenerate"), "#token").await;
    let new_token = browser.text("#token").await;
    assert!(new_token.starts_with("docora_") && new_token != token);
    assert_eq!(browser.text("#app-id").await, app_id);
    assert_eq!(app.as_token(&token).post_json("/api/repositories", &register).await.status, 401, "the old one stopped");
    assert_eq!(app.as_token(&new_token).post_json("/api/repositories", &register).await.status, 201);

    browser.goto("/admin/apps").await;
    browser.find(&format!("{section} details.delete summary")).await.click().await.expect("opens");
    browser.click(&format!("{section} button.delete"), "#notice").await;
    assert_eq!(browser.location().await, "/admin/apps?notice=deleted");
    assert!(!browser.exists(&section).await);
    assert!(browser.exists("#no-apps").await);
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.apps").await, 0);
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.repositories").await, 0, "nobody watches it any more");
    assert_eq!(app.as_token(&new_token).post_json("/api/repositories", &register).await.status, 401);
    browser.close().await;
}

#[tokio::test]
async fn a_failed_delivery_is_seen_and_retried_and_the_queue_shows_due_scans_in_a_browser() {
    let sink = WebhookSink::start().expect("sink");
    let f = fixture_with("5", &format!("{}/hooks", sink.url())).await;
    let deliverer =
        f.app.settings.deliverer(service_kit::db::pool(&f.app.settings.database).expect("pool")).expect("deliverer");
    let browser = browser(&f.app).await;
    log_in(&browser, "root", PASSWORD, "#who").await;

    // Just registered: due for its first scan.
    browser.goto("/admin/queue").await;
    assert_eq!(browser.text("#scans-due-count").await, "1");
    let due = browser.text("#scans-due tbody").await;
    assert!(due.contains("https://github.com/octo/docs") && due.contains(&f.repository_id), "{due}");
    assert!(!browser.exists("#scans-running tbody").await);

    // Three files, and a receiver that answers 503 until the link gives up on the first.
    f.scan_now().await;
    sink.set_mode(SinkMode::Fail(503));
    for _ in 0..3 {
        execute(&f.app.db, "UPDATE docora.events SET next_attempt_at = now()").await;
        while let Some(event) = deliverer.take().await.expect("take") {
            deliverer.deliver(&event).await.expect("deliver");
        }
    }
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.events WHERE status = 'failed'").await, 1);

    browser.goto("/admin/apps").await;
    let row = browser.text(&format!("#link-{}-{}", f.app_id, f.repository_id)).await;
    assert!(row.contains("failed") && row.contains("503"), "{row}");

    // The history, filtered with the form.
    browser.goto("/admin/deliveries").await;
    assert_eq!(browser.client.find_all(Locator::Css("tr.delivery")).await.expect("rows").len(), 3);
    browser.find("#filters select[name=status]").await.select_by_value("failed").await.expect("selects");
    browser.click_to("#filters button[type=submit]", "status=failed").await;
    let rows = browser.client.find_all(Locator::Css("tr.delivery")).await.expect("rows");
    assert_eq!(rows.len(), 1);
    let failed = rows[0].text().await.expect("text");
    assert!(failed.contains("README.md") && failed.contains("503") && failed.contains("failed"), "{failed}");
    browser.find("#filters select[name=event]").await.select_by_value("delete").await.expect("selects");
    browser.click("#filters button[type=submit]", "#no-deliveries").await;
    browser.goto("/admin/deliveries?status=lost").await;
    assert!(browser.text("#filter-error").await.contains("status"));

    // Retry: the failed one and those behind it are due again, in order.
    browser.goto("/admin/failed").await;
    let link = format!("#failed-{}-{}", f.app_id, f.repository_id);
    let shown = browser.text(&link).await;
    assert!(shown.contains("README.md") && shown.contains("503"), "{shown}");
    sink.set_mode(SinkMode::Accept);
    browser.click(&format!("{link} button.retry"), "#notice").await;
    assert_eq!(browser.location().await, "/admin/failed?notice=retried");
    assert!(browser.exists("#no-failures").await);
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.events WHERE status = 'failed'").await, 0);
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.app_repositories WHERE status = 'pending'").await, 1);
    browser.goto("/admin/queue").await;
    assert_eq!(browser.text("#deliveries-pending-count").await, "3");
    assert_eq!(browser.text("#deliveries-failed-count").await, "0");

    let mut delivered = 0;
    while let Some(event) = deliverer.take().await.expect("take") {
        deliverer.deliver(&event).await.expect("deliver");
        delivered += 1;
    }
    assert_eq!(delivered, 3);
    browser.goto("/admin/apps").await;
    let row = browser.text(&format!("#link-{}-{} .status", f.app_id, f.repository_id)).await;
    assert_eq!(row, "synced");
    browser.close().await;
}

/// A client that shows redirects instead of following them, with the given cookie.
fn http(cookie: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(cookie) = cookie {
        headers.insert(reqwest::header::COOKIE, cookie.parse().expect("a header value"));
    }
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .expect("client")
}

/// The `name=value` of a `Set-Cookie` named `name`.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The value of the first hidden `csrf_token` field of a page.
fn csrf_field(html: &str) -> String {
    let start =
        html.find(r#"name="csrf_token" value=""#).expect("a csrf_token field") + r#"name="csrf_token" value=""#.len();
    html[start..].split('"').next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused_and_pages_are_guarded() {
    let app = with_admin().await;
    let base = app.server.url().to_owned();
    let anonymous = http(None);
    let res = anonymous.get(format!("{base}/admin")).send().await.expect("answers");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/admin/login");

    // The login form: its token is bound to a cookie; without both, no session.
    let res = anonymous.get(format!("{base}/admin/login")).send().await.expect("answers");
    assert_eq!(res.status(), StatusCode::OK);
    for (name, value) in [
        ("cache-control", "no-store"),
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(res.headers()[name], value, "{name}");
    }
    let login_cookie = set_cookie(&res, "docora_login_csrf").expect("the login form's cookie");
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"), "{login_cookie}");
    let login_cookie = login_cookie.split(';').next().unwrap_or_default().to_owned();
    let login_token = csrf_field(&res.text().await.expect("body"));
    let credentials = [("username", "root"), ("password", PASSWORD)];
    for (cookie, token) in
        [(None, login_token.as_str()), (Some(login_cookie.as_str()), ""), (Some(login_cookie.as_str()), "forged")]
    {
        let res = http(cookie)
            .post(format!("{base}/admin/login"))
            .form(&[credentials[0], credentials[1], ("csrf_token", token)])
            .send()
            .await
            .expect("answers");
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{cookie:?} {token}");
        assert!(set_cookie(&res, "docora_admin").is_none());
    }
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.admin_sessions").await, 0);
    let res = http(Some(&login_cookie))
        .post(format!("{base}/admin/login"))
        .form(&[credentials[0], credentials[1], ("csrf_token", &login_token)])
        .send()
        .await
        .expect("answers");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/admin");
    let session = set_cookie(&res, "docora_admin").expect("the session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(session.contains(part), "{part} in {session}");
    }
    assert!(!session.contains("Secure"), "plain HTTP here: {session}");
    let admin = http(Some(session.split(';').next().unwrap_or_default()));

    let page = admin.get(format!("{base}/admin")).send().await.expect("answers");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let csrf = csrf_field(&page.text().await.expect("body"));
    let onboard = |token: &str| {
        vec![
            ("app_name", "<script>alert(1)</script>".to_owned()),
            ("base_url", "https://hooks.example.com/docora".to_owned()),
            ("email", "dev@example.com".to_owned()),
            ("client_auth_key", "0123456789abcdef-key".to_owned()),
            ("csrf_token", token.to_owned()),
        ]
    };
    for token in ["", "forged"] {
        let res = admin.post(format!("{base}/admin/apps")).form(&onboard(token)).send().await.expect("answers");
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{token:?}");
        assert!(res.text().await.expect("body").contains("did not come from this dashboard"));
    }
    let without_field = [("app_name", "Reader"), ("base_url", "https://hooks.example.com/docora")];
    let res = admin.post(format!("{base}/admin/apps")).form(&without_field).send().await.expect("answers");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.apps").await, 0);

    let res = admin.post(format!("{base}/admin/apps")).form(&onboard(&csrf)).send().await.expect("answers");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body = res.text().await.expect("body");
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !body.contains("<script>"), "escaped");
    let app_id = body.split(r#"id="app-id">"#).nth(1).and_then(|s| s.split('<').next()).expect("the app id").to_owned();

    for path in [
        format!("/admin/apps/{app_id}/token"),
        format!("/admin/apps/{app_id}/delete"),
        format!("/admin/apps/{app_id}/repositories/repo_nope/retry"),
        format!("/admin/apps/{app_id}/breaker/reset"),
        "/admin/logout".to_owned(),
    ] {
        let res = admin.post(format!("{base}{path}")).form(&[("csrf_token", "forged")]).send().await.expect("answers");
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
        let res = admin.post(format!("{base}{path}")).form::<[(&str, &str); 0]>(&[]).send().await.expect("answers");
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path} with no field");
    }
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.apps").await, 1);
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.admin_sessions").await, 1);
    let res = admin.get(format!("{base}/admin")).send().await.expect("answers");
    let apps_page = res.text().await.expect("body");
    assert!(apps_page.contains("&lt;script&gt;") && !apps_page.contains("<script>"));

    // With the token: an app's breaker is closed on demand; a missing app is a 404 page; logging
    // out ends the session.
    execute(&app.db, "UPDATE docora.apps SET delivery_failures = 12, breaker_open_until = now() + interval '1 minute'")
        .await;
    let page = admin.get(format!("{base}/admin/apps")).send().await.expect("answers").text().await.expect("body");
    assert!(page.contains("open until") && page.contains("12 failures in a row") && page.contains("reset-breaker"));
    let res = admin
        .post(format!("{base}/admin/apps/{app_id}/breaker/reset"))
        .form(&[("csrf_token", &csrf)])
        .send()
        .await
        .expect("answers");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/admin/apps?notice=breaker_closed");
    let closed = "SELECT count(*) AS n FROM docora.apps WHERE delivery_failures = 0 AND breaker_open_until IS NULL";
    assert_eq!(count(&app.db, closed).await, 1);
    let page = admin.get(format!("{base}/admin/apps")).send().await.expect("answers").text().await.expect("body");
    assert!(!page.contains("reset-breaker"), "no button on a closed breaker");
    let res = admin
        .post(format!("{base}/admin/apps/app_nope/delete"))
        .form(&[("csrf_token", &csrf)])
        .send()
        .await
        .expect("answers");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = admin.post(format!("{base}/admin/logout")).form(&[("csrf_token", &csrf)]).send().await.expect("answers");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/admin/login");
    assert!(set_cookie(&res, "docora_admin").is_some_and(|c| c.contains("Max-Age=0")));
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM docora.admin_sessions").await, 0);
    let res = admin.get(format!("{base}/admin")).send().await.expect("answers");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_operator_follows_a_file_to_its_attempts_and_redelivers_it_in_a_browser() {
    let sink = WebhookSink::start().expect("sink");
    let f = fixture_with("5", &format!("{}/hooks", sink.url())).await;
    let deliverer =
        f.app.settings.deliverer(service_kit::db::pool(&f.app.settings.database).expect("pool")).expect("deliverer");
    // Many apps with long names, and a deep path.
    for i in 0..8 {
        f.app
            .app_at(&format!("A rather long application name, number {i}, as operators write them"), &sink.url())
            .await;
    }
    f.repo
        .write("docs/reference/api/v2/endpoints/a-very-long-file-name-for-the-console.md", b"x")
        .commit("deep")
        .expect("commit");
    f.scan_now().await;
    sink.set_mode(SinkMode::FailNext(1, 503));
    for _ in 0..2 {
        execute(&f.app.db, "UPDATE docora.events SET next_attempt_at = now()").await;
        while let Some(event) = deliverer.take().await.expect("take") {
            deliverer.deliver(&event).await.expect("deliver");
        }
    }
    let readme: String = sink
        .received()
        .iter()
        .find(|r| r.json()["file"]["path"] == "README.md")
        .and_then(|r| r.delivery().map(str::to_owned))
        .expect("README delivered");

    let browser = browser(&f.app).await;
    log_in(&browser, "root", PASSWORD, "#who").await;
    browser.goto("/admin/deliveries").await;
    assert_eq!(browser.client.find_all(Locator::Css("tr.delivery")).await.expect("rows").len(), 4);
    let row = browser.text(&format!("#delivery-{readme}")).await;
    assert!(row.contains(&readme[24..]) && row.contains("200") && row.contains("delivered"), "{row}");
    assert!(browser.page_width().await <= 1440, "the table fits 1440 px");
    browser.screenshot("deliveries").await;
    // The delivery id a receiver logged finds it.
    browser.fill("#filters input[name=id]", &readme).await;
    browser.click_to("#filters button[type=submit]", "id=").await;
    assert_eq!(browser.client.find_all(Locator::Css("tr.delivery")).await.expect("rows").len(), 1);

    browser.click(&format!("#delivery-{readme} td.id a"), "#delivery-id").await;
    assert_eq!(browser.text("#delivery-id").await, readme);
    let attempts = browser.client.find_all(Locator::Css("section.attempt")).await.expect("attempts");
    assert_eq!(attempts.len(), 2);
    let failed = attempts[1].text().await.expect("text");
    assert!(failed.contains("503") && failed.contains("X-Docora-Signature"), "{failed}");
    assert!(!browser.source().await.contains(crate::SIGNING_KEY), "the key is never shown");
    browser.screenshot("delivery").await;

    browser.click("#redeliver button[type=submit]", "#notice").await;
    assert!(browser.text("#delivery-status").await.contains("pending"));
    assert!(browser.text("#delivery-id").await.starts_with(&readme));
    while let Some(event) = deliverer.take().await.expect("take") {
        deliverer.deliver(&event).await.expect("deliver");
    }
    let last = sink.received().pop().expect("redelivered");
    assert_eq!(last.delivery(), Some(readme.as_str()));
    assert_eq!(last.header("x-docora-redelivery"), Some("true"));
    browser.goto(&format!("/admin/deliveries?id={readme}")).await;
    assert_eq!(browser.client.find_all(Locator::Css("tr.delivery")).await.expect("rows").len(), 2);
    assert!(browser.exists(".badge.redelivery").await);

    // Paging keeps the filters.
    browser.goto(&format!("/admin/deliveries?app_id={}&limit=2", f.app_id)).await;
    browser.click_to("#next-page", "before=").await;
    assert!(browser.location().await.contains(&format!("app_id={}", f.app_id)));
    assert_eq!(browser.client.find_all(Locator::Css("tr.delivery")).await.expect("rows").len(), 2);

    // An unknown console URL: the console's 404 page, not JSON.
    browser.goto("/admin/no/such/page").await;
    assert_eq!(browser.text("h1").await, "404 Not Found");
    assert!(browser.exists("#who").await, "with the navigation");
    browser.screenshot("not-found").await;
    browser.goto("/admin").await;
    let health = browser.text(&format!("#health-{}", f.app_id)).await;
    assert!(health.contains("%") && health.contains("closed"), "{health}");
    browser.screenshot("overview").await;
    browser.goto("/admin/apps").await;
    browser.screenshot("apps").await;
    browser.close().await;
    let res = reqwest::get(format!("{}/admin/nothing", f.app.server.url())).await.expect("get");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/html"));
}

/// A browser at 1280 px, the narrowest laptop an operator uses.
async fn narrow_browser(app: &TestApp) -> Browser {
    Browser::start(&app.server.url(), 1280, 900).await
}

#[tokio::test]
async fn an_operator_finds_why_a_file_did_not_reach_an_app_from_the_overview_in_a_browser() {
    // Nine apps with long names watch one repository of thirty files: a few hundred deliveries.
    // The first app's receiver answers 503, so its first event gives up and the rest wait.
    let good = WebhookSink::start().expect("sink");
    let bad = WebhookSink::start().expect("sink");
    bad.set_mode(SinkMode::Fail(503));
    let f = fixture_with("5", &format!("{}/hooks", bad.url())).await;
    let deliverer =
        f.app.settings.deliverer(service_kit::db::pool(&f.app.settings.database).expect("pool")).expect("deliverer");
    let register = json!({"github_url": "https://github.com/octo/docs"});
    for i in 1..9 {
        let name = format!("Knowledge base indexer for the documentation portal of team number {i}");
        let (_, client) = f.app.app_at(&name, &format!("{}/hooks", good.url())).await;
        assert_eq!(client.post_json("/api/repositories", &register).await.status, 201);
    }
    // A second repository, registered by the first app (not scanned until later).
    let (owner_id, _) = f.app.github.add_user("acme");
    f.app.github.add_repo(owner_id, "handbook", false);
    f.git.create_repo("acme", "handbook").expect("repo");
    let handbook =
        f.client.post_json("/api/repositories", &json!({"github_url": "https://github.com/acme/handbook"})).await;
    assert_eq!(handbook.status, 201, "{}", handbook.text);
    let handbook_id = handbook.body["repository_id"].as_str().expect("an id").to_owned();
    let later =
        format!("UPDATE docora.repositories SET next_scan_at = now() + interval '1 day' WHERE id = '{handbook_id}'");
    execute(&f.app.db, &later).await;
    for i in 0..27 {
        f.repo.write(&format!("docs/reference/api/v2/section-{i:02}/a-rather-long-file-name-{i}.md"), b"x");
    }
    f.repo.commit("many").expect("commit");
    let claimed = f.scanner.claim().await.expect("claim").expect("the first repository is due");
    assert_eq!(claimed.id, f.repository_id);
    f.scanner.scan(&claimed).await.expect("scan");
    for _ in 0..3 {
        execute(&f.app.db, "UPDATE docora.events SET next_attempt_at = now()").await;
        while let Some(event) = deliverer.take().await.expect("take") {
            deliverer.deliver(&event).await.expect("deliver");
        }
    }
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.events WHERE status = 'delivered'").await, 8 * 30);
    assert_eq!(count(&f.app.db, "SELECT count(*) AS n FROM docora.events WHERE status = 'failed'").await, 1);
    // The second repository has not been scanned for a long while: no scan worker runs.
    execute(
        &f.app.db,
        &format!("UPDATE docora.repositories SET next_scan_at = now() - interval '2 hours' WHERE id = '{handbook_id}'"),
    )
    .await;

    let browser = narrow_browser(&f.app).await;
    log_in(&browser, "root", PASSWORD, "#who").await;
    // The overview: the app with a failing link, and the stuck repository with the reason.
    let health = browser.text(&format!("#health-{}", f.app_id)).await;
    assert!(health.contains("1 of 2"), "{health}");
    let stuck = browser.text(&format!("#repository-health-{handbook_id}")).await;
    assert!(stuck.contains("stuck") && stuck.contains("never scanned") && stuck.contains("SCAN_WORKERS"), "{stuck}");
    assert!(browser.page_width().await <= 1280, "the overview fits 1280 px");
    browser.screenshot("console-overview").await;

    // Overview → app → repository.
    browser.click(&format!("#health-{} a", f.app_id), "section.app").await;
    assert_eq!(browser.location().await, format!("/admin/apps/{}", f.app_id));
    browser.screenshot("console-app").await;
    browser.click(&format!("#link-{}-{} a.repository", f.app_id, f.repository_id), "#sync").await;
    assert_eq!(browser.location().await, format!("/admin/repositories/{}", f.repository_id));
    assert!(browser.text("#sync-state").await.starts_with("ok"));
    assert!(browser.text("#last-attempt").await.contains("scanned"));
    assert_eq!(browser.text("#current-commit code").await, f.repo.head());
    assert_eq!(browser.client.find_all(Locator::Css("tr.link")).await.expect("links").len(), 9);
    let link = browser.text(&format!("#link-{}", f.app_id)).await;
    assert!(link.contains("failed") && link.contains("503") && link.contains("29 pending"), "{link}");
    let other = browser.client.find_all(Locator::Css("tr.link td.delivery-state")).await.expect("cells");
    let mut states = Vec::new();
    for cell in other {
        states.push(cell.text().await.expect("text"));
    }
    assert_eq!(states.iter().filter(|s| *s == "up to date").count(), 8, "{states:?}");
    assert!(browser.page_width().await <= 1280, "the repository page fits 1280 px");
    browser.screenshot("console-repository").await;
    browser.client.execute("window.scrollTo(0, document.body.scrollHeight)", vec![]).await.expect("scrolls");
    browser.screenshot("console-repository-end").await;

    // Repository → the failed delivery → its attempts.
    browser.click(&format!("#link-{} td.why a", f.app_id), "#delivery-id").await;
    let attempts = browser.client.find_all(Locator::Css("section.attempt")).await.expect("attempts");
    assert_eq!(attempts.len(), 3);
    assert!(attempts[0].text().await.expect("text").contains("503"));
    assert!(browser.text("#delivery-status").await.contains("failed"));
    browser.screenshot("console-delivery-failed").await;
    browser.click("#delivery-repository", "#sync").await;

    // The file's deliveries, found from the repository page.
    browser.fill("#find-file input[name=path]", "docs/reference/api/v2/section-07/").await;
    browser.click_to("#find-file button[type=submit]", "path=").await;
    let rows = browser.client.find_all(Locator::Css("tr.delivery")).await.expect("rows");
    assert_eq!(rows.len(), 9, "one per app");

    // The whole history at 1280 px: long names are cut with their full text in the title.
    browser.goto("/admin/deliveries?limit=300").await;
    assert_eq!(browser.client.find_all(Locator::Css("tr.delivery")).await.expect("rows").len(), 9 * 30);
    assert!(browser.page_width().await <= 1280, "the history fits 1280 px");
    browser.screenshot("console-deliveries").await;
    browser.goto("/admin/queue").await;
    assert!(browser.text(&format!("#repository-health-{handbook_id}")).await.contains("never scanned"));
    assert!(browser.page_width().await <= 1280, "the queue fits 1280 px");
    browser.screenshot("console-queue").await;
    browser.goto("/admin/apps").await;
    browser.screenshot("console-apps").await;
    browser.close().await;
}

#[tokio::test]
async fn a_repository_whose_scans_fail_or_stall_is_flagged_with_the_reason_in_a_browser() {
    let f = fixture_with("2", "https://hooks.example.com/docora").await;
    f.scan_now().await;
    let browser = narrow_browser(&f.app).await;
    log_in(&browser, "root", PASSWORD, "#who").await;
    assert!(browser.exists("#all-scanning-well").await);

    // Its repository is gone from GitHub: failing, and the link does not read synced.
    execute(&f.app.db, "UPDATE docora.app_repositories SET status = 'synced'").await;
    f.git.set_failing(true);
    f.scan_now().await;
    browser.goto("/admin").await;
    let flagged = browser.text(&format!("#repository-health-{}", f.repository_id)).await;
    assert!(flagged.contains("failing") && flagged.contains("git failed"), "{flagged}");
    browser.goto(&format!("/admin/apps/{}", f.app_id)).await;
    let status = browser.text(&format!("#link-{}-{} .status", f.app_id, f.repository_id)).await;
    assert_ne!(status, "synced");
    browser.goto(&format!("/admin/repositories/{}", f.repository_id)).await;
    assert!(browser.text("#sync-state").await.starts_with("failing"));
    assert!(browser.exists("#deliveries-stale").await);
    let scans = browser.client.find_all(Locator::Css("tr.scan")).await.expect("scans");
    assert_eq!(scans.len(), 2);
    assert!(scans[0].text().await.expect("text").contains("git failed"));
    assert!(!scans[1].text().await.expect("text").contains("git failed"), "the first scan had no error");

    // A second failure opens the circuit; then a scan is abandoned past its lease: stuck.
    f.scan_now().await;
    browser.goto("/admin/queue").await;
    let flagged = browser.text(&format!("#repository-health-{}", f.repository_id)).await;
    assert!(flagged.contains("circuit open"), "{flagged}");
    // The apps were told: the sync_failed delivery shows its reason in the history.
    browser.goto("/admin/deliveries?event=sync_failed").await;
    let row = browser.text("tr.delivery").await;
    assert!(row.contains("sync_failed") && row.contains("sync failed: git failed"), "{row}");
    browser.screenshot("console-sync-failed").await;
    f.git.set_failing(false);
    execute(&f.app.db, "UPDATE docora.repositories SET circuit_open_until = now() - interval '1 second'").await;
    f.scan_now().await;
    execute(&f.app.db, "UPDATE docora.repositories SET next_scan_at = now()").await;
    f.scanner.claim().await.expect("claim").expect("due");
    execute(&f.app.db, "UPDATE docora.repositories SET scan_lease_until = now() - interval '1 minute'").await;
    browser.goto("/admin/queue").await;
    let flagged = browser.text(&format!("#repository-health-{}", f.repository_id)).await;
    assert!(flagged.contains("stuck") && flagged.contains("lease ran out"), "{flagged}");
    browser.screenshot("console-stuck").await;
    browser.goto("/admin/repositories/repo_000000000000000000000000").await;
    assert_eq!(browser.text("h1").await, "404 Not Found");
    browser.close().await;
}
