//! The web console in headless Chromium (WebDriver): an invited admin's first steps, a member
//! kept out of the admin pages; and over plain HTTP what a browser would not do (forms without
//! or with a forged CSRF token, script requests without the header), and the shared lockout.
//! Processing and the playground need dokko-ingest: dokko-ingest's tests drive them
//! (services/dokko-ingest/tests/api/console.rs).

use std::path::PathBuf;

use fantoccini::Locator;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;
use testkit::browser::Browser;

use crate::{PASSWORD, TestApp, count, str_of};

/// Signs in on the console's form and waits for the signed-in page.
async fn sign_in(browser: &Browser, organisation: &str, email: &str, password: &str, shown: &str) {
    browser.goto("/console/sign-in").await;
    browser.fill("#sign-in input[name=organisation]", organisation).await;
    browser.fill("#sign-in input[name=email]", email).await;
    browser.fill("#sign-in input[name=password]", password).await;
    browser.click("#sign-in button[type=submit]", shown).await;
}

/// Waits until `css` is on the page (something a script shows).
async fn wait_for(browser: &Browser, css: &str) {
    let waited = browser.client.wait().at_most(std::time::Duration::from_secs(60)).for_element(Locator::Css(css)).await;
    if let Err(e) = waited {
        panic!("{css} on {}: {e}\n{}", browser.location().await, browser.source().await);
    }
}

/// A folder on disk to upload: `docs/` with two text files, one nested, and a file of a type
/// the API refuses.
fn folder_to_upload() -> PathBuf {
    let root = std::env::temp_dir().join(format!("dokko-console-{}", uuid::Uuid::new_v4()));
    let docs = root.join("docs");
    std::fs::create_dir_all(docs.join("guide")).expect("folders");
    std::fs::write(docs.join("intro.txt"), "Welcome to the handbook. The kettle is in the kitchen.").expect("file");
    std::fs::write(docs.join("guide/setup.md"), "# Setup\n\nInstall the tools, then sign in.").expect("file");
    std::fs::write(docs.join("tool.exe"), b"MZ not a document").expect("file");
    docs
}

#[tokio::test]
async fn an_invited_admin_signs_in_creates_a_service_account_and_uploads_a_folder() {
    let app = TestApp::spawn().await;
    let p = app.provision("acme", "admin@acme.example").await;
    let browser = Browser::start(&app.server.url(), 1280, 900).await;

    browser.goto("/console/repositories").await;
    assert_eq!(browser.location().await, "/console/sign-in", "no session: to the sign-in page");

    // The invitation link: choose a password, then the sign-in page with the account filled in.
    browser.goto(&format!("/invitations/accept?token={}", p.invitation.token)).await;
    browser.screenshot("console-invitation-1280").await;
    browser.fill("#accept input[name=password]", PASSWORD).await;
    browser.click("#accept button[type=submit]", "#sign-in").await;
    assert!(browser.location().await.starts_with("/console/sign-in?"), "{}", browser.location().await);
    assert_eq!(browser.text("#notice").await, "Your account is active. Sign in with your new password.");
    let organisation = browser.find("#sign-in input[name=organisation]").await.prop("value").await.expect("value");
    assert_eq!(organisation.as_deref(), Some("acme"));

    // A wrong password: the API's message, the form kept.
    browser.fill("#sign-in input[name=password]", "not the password").await;
    browser.click("#sign-in button[type=submit]", "#error").await;
    assert_eq!(browser.text("#error").await, "incorrect email or password");
    browser.fill("#sign-in input[name=password]", PASSWORD).await;
    browser.click("#sign-in button[type=submit]", "#who").await;
    assert_eq!(browser.location().await, "/console/repositories");
    assert_eq!(browser.text("#who").await, "admin@acme.example");
    assert!(browser.exists("#no-repositories").await, "the empty state says what to do");
    assert_eq!(browser.text("#nav a[aria-current=page]").await, "Files");
    let session = browser.client.get_named_cookie("dokko_console").await.expect("the session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(session.same_site().map(|s| s.to_string()).as_deref(), Some("Strict"));
    assert_eq!(session.path(), Some("/console"));
    browser.screenshot("console-repositories-empty-1280").await;

    // The access token, usable with the API.
    browser.goto("/console/token").await;
    let token = browser.text("#access-token").await;
    assert_eq!(app.as_token(&token).get("/api/v1/permissions").await.status, 200);
    browser.screenshot("console-token-1280").await;

    // A service account: the secret shown once, with the curl line of step C.
    browser.goto("/console/service-accounts").await;
    assert!(browser.exists("#no-accounts").await);
    browser.fill("#create-account input[name=name]", "production-integration").await;
    browser.click("#create-account button[type=submit]", "#client-secret").await;
    let client_id = browser.text("#client-id").await;
    let secret = browser.text("#client-secret").await;
    let step_c = browser.text("#step-c").await;
    assert!(step_c.contains(&format!("client_id={client_id}")) && step_c.contains("X-Tenant: acme"), "{step_c}");
    assert_eq!(app.service_login("acme", &client_id, &secret).await.status, 200, "the credentials work");
    browser.screenshot("console-service-account-created-1280").await;
    browser.goto("/console/service-accounts").await;
    assert!(!browser.source().await.contains(&secret), "never shown again");
    assert!(browser.text("#accounts").await.contains("production-integration"));

    // Rotate: a new secret, shown once; the old one stops. Then revoke.
    browser.find("#accounts details.confirm summary").await.click().await.expect("opens");
    browser.click("#accounts button.rotate", "#client-secret").await;
    let rotated = browser.text("#client-secret").await;
    assert_ne!(rotated, secret);
    assert_eq!(app.service_login("acme", &client_id, &secret).await.status, 401, "the old secret stopped");
    assert_eq!(app.service_login("acme", &client_id, &rotated).await.status, 200);
    browser.goto("/console/service-accounts").await;
    browser.find("#accounts details.confirm:nth-of-type(2) summary").await.click().await.expect("opens");
    browser.click("#accounts button.revoke", "#notice").await;
    assert_eq!(browser.text("#accounts td.state").await, "revoked");
    assert_eq!(app.service_login("acme", &client_id, &rotated).await.status, 401, "revoked");

    // People: an invitation's link.
    browser.goto("/console/people").await;
    browser.fill("#invite input[name=email]", "bob@acme.example").await;
    browser.click("#invite button[type=submit]", "#invitation-url").await;
    let link = browser.text("#invitation-url").await;
    assert!(link.starts_with("https://dokko.test/invitations/accept?token=inv_"), "{link}");
    assert!(browser.text("#people").await.contains("bob@acme.example"));
    browser.screenshot("console-people-1280").await;

    // A repository, then a whole folder uploaded: the per-file outcome of the API's 207.
    browser.goto("/console/repositories").await;
    browser.fill("#create-repository input[name=name]", "handbook").await;
    browser.click("#create-repository button[type=submit]", "#repository-name").await;
    assert_eq!(browser.text("#repository-name").await, "handbook");
    assert!(browser.exists("#empty-tree").await);
    let folder = folder_to_upload();
    browser.find("#folder-input").await.send_keys(&folder.to_string_lossy()).await.expect("chooses the folder");
    wait_for(&browser, ".outcome-summary").await;
    let summary = browser.find(".outcome-summary").await;
    assert_eq!(summary.attr("data-status").await.expect("attr").as_deref(), Some("partial"));
    assert_eq!(browser.text(r#".outcome li.ok[data-path="docs/intro.txt"]"#).await, "docs/intro.txt");
    assert!(browser.exists(r#".outcome li.ok[data-path="docs/guide/setup.md"]"#).await);
    let refused = browser.text(r#".outcome li.failed[data-path="docs/tool.exe"]"#).await;
    assert!(refused.contains("INVALID_TYPE"), "{refused}");
    browser.screenshot("console-upload-outcome-1280").await;
    let repository_id = browser.text("#repository-id").await;
    let tree = app.as_token(&token).get(&format!("/api/v1/repositories/{repository_id}/items")).await;
    assert!(tree.body["folders"]["docs"]["files"]["intro.txt"].is_object(), "{}", tree.text);
    assert!(tree.body["folders"]["docs"]["folders"]["guide"]["files"]["setup.md"].is_object(), "{}", tree.text);

    // The tree, and a file's metadata: a reserved key refused with the API's message.
    browser.click("#refresh-tree", "#files").await;
    let files = browser.text("#files").await;
    assert!(files.contains("docs/intro.txt") && files.contains("docs/guide/setup.md"), "{files}");
    browser.screenshot("console-repository-1280").await;
    browser.click(r#"#files a.file[href^="/console/files/"]"#, "#metadata-form").await;
    browser.fill("#metadata", r#"{"file_id": "mine"}"#).await;
    browser.click("#metadata-form button[type=submit]", "#error").await;
    assert!(browser.text("#error").await.contains("file_id"), "{}", browser.text("#error").await);
    browser.fill("#metadata", r#"{"team": "docs"}"#).await;
    browser.click("#metadata-form button[type=submit]", "#notice").await;
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM dokko.files WHERE metadata->>'team' = 'docs'").await, 1);

    // At phone width: the same pages, nothing wider than the screen.
    browser.client.set_window_size(390, 844).await.expect("resizes");
    browser.goto(&format!("/console/repositories/{repository_id}")).await;
    assert!(browser.page_width().await <= 390, "no sideways scrolling: {}", browser.page_width().await);
    browser.screenshot("console-repository-390").await;
    browser.goto("/console/service-accounts").await;
    assert!(browser.page_width().await <= 390, "no sideways scrolling: {}", browser.page_width().await);
    browser.screenshot("console-service-accounts-390").await;

    browser.click("#sign-out", "#sign-in").await;
    assert_eq!(browser.text("#notice").await, "You are signed out.");
    browser.goto("/console/token").await;
    assert_eq!(browser.location().await, "/console/sign-in");
    browser.close().await;
    std::fs::remove_dir_all(folder.parent().expect("root")).ok();
}

#[tokio::test]
async fn a_member_cannot_reach_the_admin_pages() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let res = org.admin.post_json("/api/v1/admin/invitations", &json!({"email": "ann@acme.example"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    let accept = json!({"token": str_of(&res.body, "invitation_token"), "password": PASSWORD});
    assert_eq!(app.anonymous().post_json("/api/v1/auth/invitations/accept", &accept).await.status, 200);

    let browser = Browser::start(&app.server.url(), 390, 844).await;
    // Chromium starts no narrower than 500 px; the phone's width comes after.
    browser.client.set_window_size(390, 844).await.expect("resizes");
    browser.goto("/console/sign-in").await;
    assert!(browser.page_width().await <= 390, "no sideways scrolling: {}", browser.page_width().await);
    browser.screenshot("console-sign-in-390").await;
    sign_in(&browser, "acme", "ann@acme.example", PASSWORD, "#who").await;
    let nav = browser.text("#nav").await;
    assert!(!nav.contains("Service accounts") && !nav.contains("People"), "{nav}");
    for path in ["/console/service-accounts", "/console/people"] {
        browser.goto(path).await;
        assert!(browser.text("h1").await.starts_with("403"), "{path}");
        assert!(browser.text("#error").await.contains("organisation admins"), "{path}");
        assert_eq!(browser.text("#who").await, "ann@acme.example", "the navigation stays");
    }
    browser.screenshot("console-forbidden-390").await;
    browser.goto("/console/no-such-page").await;
    assert_eq!(browser.text("h1").await, "Page not found");
    browser.screenshot("console-not-found-390").await;
    // What members may do, as in the API: permissions and repositories.
    browser.goto("/console/permissions").await;
    browser.fill("#create-permission input[name=name]", "engineering").await;
    browser.click("#create-permission button[type=submit]", "#notice").await;
    assert!(browser.text("#permissions").await.contains("engineering"));
    browser.close().await;
}

/// The value of `name` among a response's `Set-Cookie` headers.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        let (pair, _) = v.split_once(';').unwrap_or((v, ""));
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_owned())
    })
}

/// The value of the first hidden `csrf_token` field of a page.
fn csrf_field(html: &str) -> String {
    let marker = r#"name="csrf_token" value=""#;
    let start = html.find(marker).expect("a csrf_token field") + marker.len();
    html[start..start + html[start..].find('"').expect("end")].to_owned()
}

#[tokio::test]
async fn forms_and_scripts_without_the_csrf_token_are_refused_and_sign_in_shares_the_lockout() {
    let app = TestApp::spawn_with(|env| env.with("LOGIN_MAX_FAILURES", "2")).await;
    let org = app.org("acme").await;
    let base = app.server.url();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");

    // Sign-in: the form's token must match its cookie.
    let res = http.get(format!("{base}/console/sign-in")).send().await.expect("answers");
    let cookie = set_cookie(&res, "dokko_console_sign_in").expect("the sign-in form's cookie");
    let form_token = csrf_field(&res.text().await.expect("body"));
    let fields = [("organisation", "acme"), ("email", org.admin_email.as_str()), ("password", PASSWORD)];
    for (cookie_header, token) in [
        (String::new(), form_token.as_str()),
        (format!("dokko_console_sign_in={cookie}"), "forged"),
        (format!("dokko_console_sign_in={cookie}"), ""),
    ] {
        let res = http
            .post(format!("{base}/console/sign-in"))
            .header(COOKIE, cookie_header)
            .form(&[fields[0], fields[1], fields[2], ("csrf_token", token)])
            .send()
            .await
            .expect("answers");
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(set_cookie(&res, "dokko_console").is_none());
    }
    let res = http
        .post(format!("{base}/console/sign-in"))
        .header(COOKIE, format!("dokko_console_sign_in={cookie}"))
        .header("X-Forwarded-Proto", "https")
        .form(&[fields[0], fields[1], fields[2], ("csrf_token", &form_token)])
        .send()
        .await
        .expect("answers");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let raw = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("dokko_console="));
    let raw = raw.expect("the session cookie").to_owned();
    assert!(raw.contains("HttpOnly") && raw.contains("SameSite=Strict") && raw.contains("Secure"), "{raw}");
    let session = set_cookie(&res, "dokko_console").expect("session");
    let signed_in = format!("dokko_console={session}");

    // A form without, or with a forged, token: 403, nothing created.
    let page =
        http.get(format!("{base}/console/permissions")).header(COOKIE, &signed_in).send().await.expect("answers");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-security-policy"].to_str().expect("csp").contains("script-src 'self'"));
    let csrf = csrf_field(&page.text().await.expect("body"));
    for token in [None, Some("forged")] {
        let mut form = vec![("name", "engineering")];
        if let Some(token) = token {
            form.push(("csrf_token", token));
        }
        let res = http
            .post(format!("{base}/console/permissions"))
            .header(COOKIE, &signed_in)
            .form(&form)
            .send()
            .await
            .expect("answers");
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM dokko.permissions").await, 0);
    let res = http
        .post(format!("{base}/console/permissions"))
        .header(COOKIE, &signed_in)
        .form(&[("name", "engineering"), ("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("answers");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/console/permissions?notice=created");
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM dokko.permissions").await, 1);

    // A script's request: X-CSRF-Token required for changes, the API's JSON errors.
    let repository = crate::create_repository(&org.admin, org.source_id, "handbook", &[]).await;
    let url = format!("{base}/console/api/repositories/{}/items", str_of(&repository, "id"));
    let delete = json!({"items": ["a.txt"]});
    for token in [None, Some("forged")] {
        let mut req = http.delete(&url).header(COOKIE, &signed_in).json(&delete);
        if let Some(token) = token {
            req = req.header("X-CSRF-Token", token);
        }
        let res = req.send().await.expect("answers");
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let body: serde_json::Value = res.json().await.expect("JSON");
        assert!(body["error"].as_str().expect("error").contains("X-CSRF-Token"), "{body}");
    }
    let res = http.get(&url).send().await.expect("answers");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "no session");
    let res = http.get(&url).header(COOKIE, &signed_in).send().await.expect("answers");
    assert_eq!(res.status(), StatusCode::OK, "reads need no token");
    let uploaded = crate::upload(&org.admin, str_of(&repository, "id"), &[("a.txt", b"hello")]).await;
    let file_id = str_of(&uploaded.body["result"]["files"]["a.txt"], "file_id").to_owned();
    let res = http
        .get(format!("{base}/console/api/files/{file_id}/download"))
        .header(COOKIE, &signed_in)
        .send()
        .await
        .expect("answers");
    assert_eq!(res.status(), StatusCode::TEMPORARY_REDIRECT, "downloads go to a presigned URL, as in the API");
    assert!(res.headers()[LOCATION].to_str().expect("location").contains("X-Amz-Signature"));

    // The console's failed sign-ins count for the API's lockout (one throttle).
    for _ in 0..2 {
        let res = http.get(format!("{base}/console/sign-in")).send().await.expect("answers");
        let cookie = set_cookie(&res, "dokko_console_sign_in").expect("cookie");
        let token = csrf_field(&res.text().await.expect("body"));
        let res = http
            .post(format!("{base}/console/sign-in"))
            .header(COOKIE, format!("dokko_console_sign_in={cookie}"))
            .form(&[fields[0], fields[1], ("password", "wrong password"), ("csrf_token", &token)])
            .send()
            .await
            .expect("answers");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = app
        .anonymous()
        .with_header("X-Tenant", "acme")
        .post_form("/api/v1/auth/login", &[("email", org.admin_email.as_str()), ("password", PASSWORD)])
        .await;
    assert_eq!(res.status, 429, "{}", res.text);
}

/// The text of `css` as the page is now (read by a script, so a page reloading in between reads
/// as nothing rather than failing).
async fn text_now(browser: &Browser, css: &str) -> Option<String> {
    let script = "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : null;";
    let value = browser.client.execute(script, vec![json!(css)]).await.ok()?;
    value.as_str().map(str::to_owned)
}

/// Waits until `css` is no longer on the page.
async fn wait_gone(browser: &Browser, css: &str) {
    let started = std::time::Instant::now();
    let script = "return document.querySelector(arguments[0]) !== null;";
    // An error (the page reloading) is no answer: wait on.
    while browser.client.execute(script, vec![json!(css)]).await.map_or(true, |found| found != json!(false)) {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "{css} still on {}", browser.location().await);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn files_are_foldered_moved_replaced_and_deleted_in_the_console() {
    let app = TestApp::spawn().await;
    let org = app.org("acme").await;
    let repository = crate::create_repository(&org.admin, org.source_id, "handbook", &[]).await;
    let repository_id = str_of(&repository, "id").to_owned();
    let res = crate::upload(&org.admin, &repository_id, &[("notes/a.txt", b"first")]).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let browser = Browser::start(&app.server.url(), 1280, 900).await;
    sign_in(&browser, "acme", &org.admin_email, PASSWORD, "#who").await;
    browser.goto(&format!("/console/repositories/{repository_id}")).await;

    // Dropped on the drop zone (WebDriver cannot drag from the desktop: the drop event a
    // browser sends, with a file in its DataTransfer).
    let drop = r#"
        const files = new DataTransfer();
        files.items.add(new File(["dropped text"], "dropped.txt", {type: "text/plain"}));
        document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", {dataTransfer: files, bubbles: true, cancelable: true}));
    "#;
    browser.client.execute(drop, vec![]).await.expect("drops");
    wait_for(&browser, r#".outcome li.ok[data-path="dropped.txt"]"#).await;
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM dokko.files WHERE path = 'dropped.txt'").await, 1);

    // A new folder.
    browser.fill("#new-folder input[name=path]", "archive").await;
    browser.find("#new-folder button[type=submit]").await.click().await.expect("submits");
    wait_for(&browser, r#"tr[data-path="archive"]"#).await;

    // Replace: the same file id, the next version.
    let row = r#"tr[data-path="notes/a.txt"]"#;
    let replacement = std::env::temp_dir().join(format!("a-{}.txt", uuid::Uuid::new_v4()));
    std::fs::write(&replacement, "second, longer content").expect("file");
    browser.find(&format!("{row} details.op:nth-of-type(2) summary")).await.click().await.expect("opens");
    browser
        .find(&format!("{row} form[data-op=replace] input[type=file]"))
        .await
        .send_keys(&replacement.to_string_lossy())
        .await
        .expect("chooses");
    browser.find(&format!("{row} form[data-op=replace] button")).await.click().await.expect("submits");
    let started = std::time::Instant::now();
    while text_now(&browser, r#"tr[data-path="notes/a.txt"] td[data-label="Version"]"#).await.as_deref() != Some("v2") {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the version stays v1");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    std::fs::remove_file(&replacement).ok();

    // Move into the new folder.
    browser.find(&format!("{row} details.op:nth-of-type(1) summary")).await.click().await.expect("opens");
    browser.fill(&format!("{row} form[data-op=move] input[name=new_path]"), "archive/a.txt").await;
    browser.find(&format!("{row} form[data-op=move] button")).await.click().await.expect("submits");
    wait_for(&browser, r#"tr[data-path="archive/a.txt"]"#).await;
    let tree = org.admin.get(&format!("/api/v1/repositories/{repository_id}/items")).await;
    assert_eq!(tree.body["folders"]["archive"]["files"]["a.txt"]["version_id"], "v2", "{}", tree.text);

    // Delete, behind its confirmation.
    let row = r#"tr[data-path="archive/a.txt"]"#;
    assert!(!browser.find(&format!("{row} form[data-op=delete] button")).await.is_displayed().await.expect("shown?"));
    browser.find(&format!("{row} details.op:nth-of-type(3) summary")).await.click().await.expect("opens");
    browser.screenshot("console-delete-confirmation-1280").await;
    browser.find(&format!("{row} form[data-op=delete] button")).await.click().await.expect("confirms");
    wait_gone(&browser, row).await;
    assert_eq!(count(&app.db, "SELECT count(*) AS n FROM dokko.files WHERE path LIKE 'archive/%'").await, 0);

    // The repository's settings: renamed and given a permission, then deleted.
    let permission = crate::create_permission(&org.admin, "engineering").await;
    let permission_id = str_of(&permission, "id");
    browser.goto(&format!("/console/repositories/{repository_id}")).await;
    browser.fill("#settings input[name=name]", "staff handbook").await;
    browser.find(&format!("#settings input[name=permission_{permission_id}]")).await.click().await.expect("checks");
    browser.click("#settings form.card button[type=submit]", "#notice").await;
    assert_eq!(browser.text("#notice").await, "The repository is saved.");
    assert_eq!(browser.text("#repository-name").await, "staff handbook");
    assert_eq!(browser.text("#repository-permissions").await, "engineering");
    browser.find("#settings details.confirm summary").await.click().await.expect("opens");
    browser.click("#settings button.delete-repository", "#notice").await;
    assert_eq!(browser.location().await, "/console/repositories?notice=deleted");
    assert!(browser.exists("#no-repositories").await);
    browser.close().await;
}
