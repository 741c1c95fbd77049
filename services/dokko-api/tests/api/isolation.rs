//! Tenant isolation: every id of one organisation, tried with the other's tokens, answers 404
//! exactly like a missing one, and lists never show the other's rows.

use serde_json::json;

use crate::{TestApp, create_permission, create_repository, str_of};

#[tokio::test]
async fn one_tenant_never_reaches_another_tenants_rows() {
    let app = TestApp::spawn().await;
    let acme = app.org("acme").await;
    let globex = app.org("globex").await;
    let acme_machine = app.machine(&acme).await;
    let (acme_account, _, _) = app.service_account(&acme, "acme-account").await;
    let perm = create_permission(&acme_machine, "secret-project").await;
    let repo = create_repository(&acme_machine, acme.source_id, "plans", &[str_of(&perm, "id")]).await;
    let (perm_id, repo_id) = (str_of(&perm, "id").to_owned(), str_of(&repo, "id").to_owned());
    let absent = "550e8400-e29b-41d4-a716-446655440000";

    let globex_machine = app.machine(&globex).await;
    for intruder in [&globex.admin, &globex_machine] {
        for id in [perm_id.as_str(), absent] {
            let missing = [
                intruder.get(&format!("/api/v1/permissions/{id}")).await,
                intruder.patch_json(&format!("/api/v1/permissions/{id}"), &json!({"name": "mine"})).await,
                intruder.delete(&format!("/api/v1/permissions/{id}")).await,
            ];
            for res in missing {
                assert_eq!(res.status, 404, "{}", res.text);
                assert_eq!(res.error(), "permission not found");
            }
        }
        for id in [repo_id.as_str(), absent] {
            for res in [
                intruder.get(&format!("/api/v1/repositories/{id}")).await,
                intruder.patch_json(&format!("/api/v1/repositories/{id}"), &json!({"name": "mine"})).await,
                intruder.delete(&format!("/api/v1/repositories/{id}")).await,
            ] {
                assert_eq!(res.status, 404, "{}", res.text);
                assert_eq!(res.error(), "repository not found");
            }
        }
        let source = acme.source_id.to_string();
        for res in [
            intruder.get(&format!("/api/v1/document-sources/{source}")).await,
            intruder.get(&format!("/api/v1/repositories?document_source_id={source}")).await,
            intruder.post_json("/api/v1/repositories", &json!({"name": "x", "document_source_id": source})).await,
        ] {
            assert_eq!(res.status, 404, "{}", res.text);
            assert_eq!(res.error(), "document source not found");
        }
        let with_foreign_permission = intruder
            .post_json(
                "/api/v1/repositories",
                &json!({"name": "x", "document_source_id": globex.source_id, "permission_ids": [perm_id]}),
            )
            .await;
        assert_eq!(with_foreign_permission.status, 404, "{}", with_foreign_permission.text);

        for list in
            ["/api/v1/permissions", "/api/v1/document-sources", "/api/v1/repositories?only_web_search_repos=true"]
        {
            let res = intruder.get(list).await;
            assert_eq!(res.status, 200, "{}", res.text);
            assert!(!res.text.contains(&acme.id.to_string()), "{list} shows nothing of acme: {}", res.text);
        }
    }
    // A globex repository cannot be given an acme permission either.
    let theirs = create_repository(&globex.admin, globex.source_id, "theirs", &[]).await;
    let res = globex
        .admin
        .patch_json(&format!("/api/v1/repositories/{}", str_of(&theirs, "id")), &json!({"permission_ids": [perm_id]}))
        .await;
    assert_eq!(res.status, 404, "{}", res.text);

    for res in [
        globex.admin.get(&format!("/api/v1/admin/service-accounts/{acme_account}")).await,
        globex.admin.delete(&format!("/api/v1/admin/service-accounts/{acme_account}")).await,
        globex.admin.post(&format!("/api/v1/admin/service-accounts/{acme_account}/rotate-secret")).await,
    ] {
        assert_eq!(res.status, 404, "{}", res.text);
    }
    let accounts = globex.admin.get("/api/v1/admin/service-accounts").await;
    assert!(!accounts.text.contains(&acme_account));
    let users = globex.admin.get("/api/v1/admin/users").await;
    assert!(!users.text.contains(&acme.admin_email));

    // acme's rows are untouched.
    let still = acme_machine.get(&format!("/api/v1/repositories/{repo_id}")).await;
    assert_eq!(still.status, 200);
    assert_eq!(still.body["name"], "plans");
    assert_eq!(still.body["permission_ids"], json!([perm_id]));
    assert_eq!(acme.admin.get(&format!("/api/v1/admin/service-accounts/{acme_account}")).await.body["is_active"], true);
}
