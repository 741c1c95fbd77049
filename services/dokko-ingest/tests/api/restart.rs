//! Jobs against restarts, replicas and failures of their own dependencies.

use std::time::{Duration, Instant};

use crate::{Stack, counters};

/// Uploads `n` small text files into a new repository.
async fn many_files(org: &crate::Org, n: usize) {
    let repo = org.repository("bulk", &[]).await;
    let files: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            (
                format!("notes/note-{i:04}.txt"),
                format!("Note number {i} mentions token{i} and the harbour.").into_bytes(),
            )
        })
        .collect();
    for batch in files.chunks(50) {
        let refs: Vec<(&str, &[u8])> = batch.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
        org.upload(&repo, &refs).await;
    }
}

/// Waits until the job has indexed at least 5 of its `total` files (but not all); its status then.
async fn mid_way(org: &crate::Org, total: i64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = org.status().await.body;
        let done = counters(&status)[1];
        assert!(done < total, "the job ended before the stop could happen: {status}");
        if done >= 5 {
            return status;
        }
        assert!(Instant::now() < deadline, "no progress: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_job_survives_a_restart_mid_way_and_counts_every_file_once() {
    let mut stack = Stack::spawn_with(|env| env.with("JOB_LEASE_SECS", "3").with("EXTRACT_CONCURRENCY", "1")).await;
    let org = stack.org("acme").await;
    many_files(&org, 150).await;
    org.start().await;
    // Progress shows while the job runs.
    let mid_way = mid_way(&org, 150).await;
    assert_eq!(mid_way["status"], "RUNNING");
    assert_eq!(counters(&mid_way)[0], 150, "listing is done before processing");

    stack.stop_ingest();
    let stopped = stack.db.count("SELECT new_indexed AS n FROM ingest.jobs").await;
    assert!(stopped < 150, "{stopped}");
    stack.start_ingest(false, |_| {});
    let status = org.wait().await;
    assert_eq!(status["status"], "COMPLETED", "{status}");
    assert_eq!(counters(&status), [150, 150, 0, 0, 0], "{status}");
    assert_eq!(stack.db.count("SELECT claims::bigint AS n FROM ingest.jobs").await, 2, "taken up again once");
    assert_eq!(stack.db.count("SELECT count(*) AS n FROM ingest.files WHERE state = 'indexed'").await, 150);
    assert_eq!(org.search("token3").await, ["notes/note-0003.txt"]);
    assert_eq!(org.search("token149").await, ["notes/note-0149.txt"]);
}

#[tokio::test]
async fn a_job_stopped_gracefully_is_handed_over_and_the_next_instance_finishes_it() {
    // A lease far longer than the test: a job left leased would not be taken up again in time.
    let mut stack = Stack::spawn_with(|env| env.with("JOB_LEASE_SECS", "600").with("EXTRACT_CONCURRENCY", "2")).await;
    let org = stack.org("acme").await;
    many_files(&org, 150).await;
    org.start().await;
    mid_way(&org, 150).await;

    // As SIGTERM does: the runner stops between files and hands the job over.
    stack.stop_ingest_gracefully();
    let handed_over = "SELECT count(*) AS n FROM ingest.jobs \
                       WHERE status = 'RUNNING' AND lease_owner IS NULL AND lease_until IS NULL AND claims = 0";
    let job = stack.db.text("SELECT row_to_json(j)::text AS t FROM ingest.jobs j").await;
    assert_eq!(stack.db.count(handed_over).await, 1, "the lease is free and the take is not counted: {job}");
    let done = stack.db.count("SELECT new_indexed AS n FROM ingest.jobs").await;
    assert!(done < 150, "{done}");
    // The files under way when the stop came finished and committed: every file counted is
    // indexed and marked done, and no other.
    assert_eq!(stack.db.count("SELECT count(*) AS n FROM ingest.job_files WHERE outcome = 'new'").await, done);
    assert_eq!(stack.db.count("SELECT count(*) AS n FROM ingest.job_files WHERE outcome IS NOT NULL").await, done);
    assert_eq!(stack.db.count("SELECT count(*) AS n FROM ingest.files WHERE state = 'indexed'").await, done);

    // The next instance takes the job up at once and finishes it.
    stack.start_ingest(false, |_| {});
    let status = org.wait().await;
    assert_eq!(status["status"], "COMPLETED", "{status}");
    assert_eq!(counters(&status), [150, 150, 0, 0, 0], "{status}");
    assert_eq!(stack.db.count("SELECT claims::bigint AS n FROM ingest.jobs").await, 1, "the hand-over is not a claim");
    assert_eq!(stack.db.count("SELECT count(*) AS n FROM ingest.files WHERE state = 'indexed'").await, 150);
    assert_eq!(stack.db.count("SELECT count(*) AS n FROM ingest.job_files WHERE outcome = 'new'").await, 150);
    assert_eq!(org.search("token3").await, ["notes/note-0003.txt"]);
    assert_eq!(org.search("token149").await, ["notes/note-0149.txt"]);
}

#[tokio::test]
async fn two_replicas_share_the_work_without_running_one_job_twice() {
    let stack = Stack::spawn().await;
    let _replica = stack.replica();
    let acme = stack.org("acme").await;
    let globex = stack.org("globex").await;
    many_files(&acme, 60).await;
    many_files(&globex, 60).await;
    acme.start().await;
    globex.start().await;
    for org in [&acme, &globex] {
        let status = org.wait().await;
        assert_eq!(counters(&status), [60, 60, 0, 0, 0], "{status}");
    }
    assert_eq!(stack.db.count("SELECT count(*) AS n FROM ingest.jobs WHERE claims <> 1").await, 0);
    assert_eq!(stack.db.count("SELECT count(*) AS n FROM ingest.job_files WHERE outcome = 'new'").await, 120);
    // Whichever replica ran a job, either answers queries.
    assert_eq!(acme.search("token7").await, ["notes/note-0007.txt"]);
}

#[tokio::test]
async fn a_job_that_cannot_list_its_files_fails_with_the_reason() {
    // dokko-ingest cannot reach dokko-api.
    let stack = Stack::spawn_with(|env| env.with("DOKKO_API_URL", "http://127.0.0.1:9")).await;
    let org = stack.org("acme").await;
    org.start().await;
    let status = org.wait().await;
    assert_eq!(status["status"], "FAILED", "{status}");
    let reason = status["failureReasons"][0].as_str().unwrap_or_default();
    assert!(reason.starts_with("cannot list the document source's files"), "{reason}");
    // A failed job does not block the next one.
    let res = org.client.post(&format!("/api/v1/document-sources/{}/process", org.source_id)).await;
    assert_eq!(res.status, 202, "{}", res.text);
}

#[tokio::test]
async fn a_job_that_keeps_killing_its_runner_ends_failed() {
    let mut stack = Stack::spawn_with(|env| env.with("JOB_WORKERS", "0")).await;
    let org = stack.org("acme").await;
    org.start().await;
    // As if three runners had taken it and died.
    stack.db.execute("UPDATE ingest.jobs SET claims = 3, lease_until = now() - interval '1 second'").await;
    stack.stop_ingest();
    stack.start_ingest(false, |settings| settings.job_workers = 1);
    let status = org.wait().await;
    assert_eq!(status["status"], "FAILED", "{status}");
    assert!(status["failureReasons"][0].as_str().unwrap_or_default().contains("interrupted 3 times"), "{status}");
}
