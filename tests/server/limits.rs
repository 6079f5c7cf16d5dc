//! The sandbox limits and the instance pool, through real MCP calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::json;
use wasimancer::events::CallStatus;
use wasimancer::runtime::FailureKind;

use crate::common::*;

fn kind(record: &wasimancer::events::CallEvent) -> Option<FailureKind> {
    match &record.status {
        CallStatus::Ok { .. } => None,
        CallStatus::Error { kind, .. } => Some(*kind),
    }
}

#[tokio::test]
async fn a_trap_replaces_the_instance_and_the_next_calls_succeed() {
    let server = TestServer::start(ALL_PLUGINS).await;
    let client = server.client().await;
    let message = error_text(&call(&client, "trap", json!({})).await);
    assert!(message.contains("`trap` crashed"), "{message}");
    assert!(message.contains("unreachable"), "{message}");
    // More calls than instances: every instance, the replaced one included, works.
    for i in 0..8 {
        let text = format!("after trap {i}");
        assert_eq!(
            ok_text(&call(&client, "echo", json!({ "text": text })).await),
            json!({ "text": text }).to_string()
        );
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn an_endless_loop_stops_at_its_timeout_while_other_calls_to_the_plugin_succeed() {
    let server = TestServer::start(ALL_PLUGINS).await;
    let mut events = server.events();
    let client = Arc::new(server.client().await);
    let spinning = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { call(&client, "spin", json!({})).await })
    };
    // Keep the three other instances busy with calls of ~20 ms until the loop
    // has been stopped: they spend most of their time inside the plugin, so
    // some of them are running at the moment it is stopped.
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let client = Arc::clone(&client);
        let stop = Arc::clone(&stop);
        workers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                answers.push(call(&client, "work", json!({"iterations": 10_000_000})).await);
            }
            answers
        }));
    }
    let spin = spinning.await.unwrap();
    stop.store(true, Ordering::SeqCst);
    let message = error_text(&spin);
    assert!(message.contains("stopped after 500 ms"), "{message}");
    assert!(message.contains("timeout_ms"), "{message}");
    let mut work_calls = 0;
    for worker in workers {
        for answer in worker.await.unwrap() {
            let value: u64 = ok_text(&answer).parse().expect("work returns a number");
            assert_ne!(value, 0);
            work_calls += 1;
        }
    }
    // Evidence from the call records that work calls were running when the
    // loop was stopped (without it the test would prove nothing).
    let records = call_events(&mut events, work_calls + 1).await;
    let spin_record = records.iter().find(|r| &*r.tool == "spin").unwrap();
    assert_eq!(kind(spin_record), Some(FailureKind::Timeout));
    let stopped_at = spin_record.started + spin_record.duration;
    let straddling = records
        .iter()
        .filter(|r| &*r.tool == "work")
        .filter(|r| r.started < stopped_at && r.started + r.duration > stopped_at)
        .count();
    assert!(
        straddling > 0,
        "no work call was running when the loop was stopped"
    );
    assert!(
        records
            .iter()
            .filter(|r| &*r.tool == "work")
            .all(|r| kind(r).is_none())
    );
    close(client).await;
}

#[tokio::test]
async fn memory_beyond_the_cap_fails_the_call_and_nothing_else() {
    let server = TestServer::start(ALL_PLUGINS).await;
    let client = server.client().await;
    let message = error_text(&call(&client, "allocate", json!({"mb": 64})).await);
    assert!(message.contains("more than the 32 MiB"), "{message}");
    assert!(message.contains("memory_mb"), "{message}");
    assert_eq!(
        ok_text(&call(&client, "allocate", json!({"mb": 4})).await),
        "allocated 4 MiB"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn outputs_above_the_limit_are_refused_and_below_it_arrive_whole() {
    let server = TestServer::start_with(ALL_PLUGINS, |s| {
        s.registry.runtime.max_output_bytes = 256 * 1024;
    })
    .await;
    let client = server.client().await;
    let message = error_text(&call(&client, "huge_output", json!({"bytes": 1_000_000})).await);
    assert!(
        message.contains("returned 1000000 bytes, more than the 262144 bytes"),
        "{message}"
    );
    let output = ok_text(&call(&client, "huge_output", json!({"bytes": 200_000})).await);
    assert_eq!(output.len(), 200_000);
    assert!(output.bytes().all(|b| b == b'x'));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_long_error_message_is_cut_for_the_caller_and_for_every_record_the_server_keeps() {
    let server = TestServer::start_with(ALL_PLUGINS, |s| {
        s.registry.runtime.max_output_bytes = 64 * 1024;
    })
    .await;
    let mut events = server.events();
    let client = server.client().await;
    // A client can make `fail` return its own text: 300 KiB of it here, and
    // a record of every one of those calls would hold it all.
    let long = "e".repeat(300 * 1024);
    let message = error_text(&call(&client, "fail", json!({ "message": long })).await);
    let said = "(307200 bytes in all)";
    assert!(
        message.starts_with(&"e".repeat(64 * 1024)),
        "the caller gets the start"
    );
    assert!(
        message.len() < 65 * 1024 && message.ends_with(said),
        "{}",
        &message[64 * 1024..]
    );

    let record = call_events(&mut events, 1).await.remove(0);
    let CallStatus::Error { message, .. } = &record.status else {
        panic!("the call failed: {record:?}");
    };
    // The records cut what the caller got (itself cut, and saying so).
    let cut = |text: &str, limit: usize| {
        text.len() < limit && text.starts_with("eeee") && text.ends_with("bytes in all)")
    };
    assert!(cut(message, 2 * 1024), "{message}");
    let detail = server
        .server
        .registry
        .call_detail(record.id)
        .expect("kept for the console");
    let Err(failure) = &detail.output else {
        panic!("the detail keeps the failure");
    };
    assert!(
        cut(&failure.message, 17 * 1024),
        "{}",
        failure.message.len()
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn sixty_four_concurrent_calls_are_all_answered_and_calls_to_one_plugin_overlap() {
    let server = TestServer::start(ALL_PLUGINS).await;
    let mut events = server.events();
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(Arc::new(server.client().await));
    }
    let mut calls = Vec::new();
    for i in 0..64u64 {
        let client = Arc::clone(&clients[i as usize % clients.len()]);
        calls.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let text = ok_text(&call(&client, "add", json!({"left": i, "right": 1000})).await);
                assert_eq!(text, json!({ "result": i + 1000 }).to_string());
            } else {
                let text =
                    ok_text(&call(&client, "work", json!({"iterations": 2_000_000 + i})).await);
                assert!(text.parse::<u64>().is_ok(), "{text}");
            }
        }));
    }
    for task in calls {
        task.await.expect("every call is answered correctly");
    }
    let records = call_events(&mut events, 64).await;
    assert!(records.iter().all(|r| kind(r).is_none()));
    let most = records
        .iter()
        .filter(|r| &*r.plugin == "faults")
        .map(|r| r.overlapping)
        .max()
        .unwrap();
    assert!(
        most > 1,
        "calls to one plugin never ran at the same time (most at once: {most})"
    );
    assert!(
        most <= 4,
        "more calls ran at once than there are instances: {most}"
    );
    for client in clients {
        close(client).await;
    }
}

/// How many plugin calls ran on the thread that received them.
async fn inline_calls(server: &TestServer) -> f64 {
    Scrape::of(&server.base(), Some(ADMIN_TOKEN))
        .await
        .value("wasimancer_plugin_calls_inline_total")
        .unwrap_or(0.0)
}

// Two workers: calls never run inline on a runtime with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_function_runs_inline_and_is_still_stopped_at_its_timeout_when_it_turns_long() {
    // A budget that a short call keeps on a loaded machine in a debug build.
    let server = TestServer::start_with(ALL_PLUGINS, |settings| {
        settings.registry.runtime.inline_budget = Duration::from_millis(100);
    })
    .await;
    let client = Arc::new(server.client().await);
    let short = json!({"iterations": 10});
    // Enough short calls to earn the most credit (64).
    for _ in 0..70 {
        ok_text(&call(&client, "work", short.clone()).await);
    }
    let before = inline_calls(&server).await;
    let answer = ok_text(&call(&client, "work", short.clone()).await);
    assert_eq!(
        inline_calls(&server).await,
        before + 1.0,
        "after 70 short calls, `work` should run inline"
    );
    assert_ne!(answer, "0");
    // Now an input that never finishes in time: the same function, inline.
    let long = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { call(&client, "work", json!({"iterations": u64::MAX})).await })
    };
    // While it holds one worker thread, the other serves other calls.
    let faults = server
        .server
        .registry
        .snapshot()
        .plugin("faults")
        .unwrap()
        .serving
        .clone()
        .unwrap();
    let deadline = SystemTime::now() + Duration::from_secs(10);
    while faults.busy_instances() == 0 {
        assert!(SystemTime::now() < deadline, "the long call never started");
        tokio::task::yield_now().await;
    }
    let answered = ok_text(&call(&client, "echo", json!({"text": "meanwhile"})).await);
    assert!(answered.contains("meanwhile"), "{answered}");
    assert!(
        !long.is_finished(),
        "the echo was answered after the long call ended"
    );
    let message = error_text(&long.await.unwrap());
    assert!(message.contains("stopped after 500 ms"), "{message}");
    // One slow call after many quick ones (as a preempted thread makes on a
    // busy machine) leaves `work` inline...
    let before = inline_calls(&server).await;
    ok_text(&call(&client, "work", short.clone()).await);
    assert_eq!(
        inline_calls(&server).await,
        before + 1.0,
        "one long call after 70 short ones should leave `work` inline"
    );
    // ...a second one sends it back to blocking threads.
    let message = error_text(&call(&client, "work", json!({"iterations": u64::MAX})).await);
    assert!(message.contains("stopped after 500 ms"), "{message}");
    let before = inline_calls(&server).await;
    ok_text(&call(&client, "work", short).await);
    assert_eq!(
        inline_calls(&server).await,
        before,
        "two long calls should send `work` back to blocking threads"
    );
    close(client).await;
}

#[tokio::test]
async fn a_call_that_finds_every_instance_busy_is_refused_after_the_queue_timeout() {
    let yaml = ALL_PLUGINS.replace("instances: 4", "instances: 1");
    let server = TestServer::start_with(&yaml, |s| {
        s.registry.runtime.queue_timeout = Duration::from_millis(100);
    })
    .await;
    let client = Arc::new(server.client().await);
    let spinning = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { call(&client, "spin", json!({})).await })
    };
    // Wait until the only instance is taken.
    let snapshot = server.server.registry.snapshot();
    let faults = snapshot.plugin("faults").unwrap().serving.clone().unwrap();
    let deadline = SystemTime::now() + Duration::from_secs(10);
    while faults.busy_instances() == 0 {
        assert!(SystemTime::now() < deadline, "the spin call never started");
        tokio::task::yield_now().await;
    }
    let message = error_text(&call(&client, "echo", json!({})).await);
    assert!(
        message.contains("all 1 instances of plugin `faults` stayed busy for 100 ms"),
        "{message}"
    );
    assert!(error_text(&spinning.await.unwrap()).contains("stopped after"));
    // Once free, the instance serves again.
    assert_eq!(ok_text(&call(&client, "echo", json!({})).await), "{}");
    close(client).await;
}

/// The sandbox plugin twice: without grants, and with a host and a folder.
const SANDBOX: &str = include_str!("../fixtures/sandbox.yml");

#[tokio::test]
async fn plugins_reach_no_host_and_no_file_unless_granted() {
    let server = TestServer::start_in_copy(SANDBOX, |settings| {
        let data = settings.registry.runtime.plugins_dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("note.txt"), "granted content").unwrap();
    })
    .await;
    // A web server on loopback for the plugin to call.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "pong" }));
        axum::serve(listener, app).await.unwrap();
    });
    let url = format!("http://{web}/");
    let client = server.client().await;

    let refused = error_text(&call(&client, "fetch_closed", json!({ "url": url })).await);
    assert!(refused.contains("is not allowed"), "{refused}");
    assert_eq!(
        ok_text(&call(&client, "fetch_open", json!({ "url": url })).await),
        "200 pong"
    );
    // The grant is for that host only.
    let other = format!("http://localhost:{}/", web.port());
    let refused = error_text(&call(&client, "fetch_open", json!({ "url": other })).await);
    assert!(refused.contains("is not allowed"), "{refused}");

    let refused =
        error_text(&call(&client, "read_closed", json!({"path": "/data/note.txt"})).await);
    assert!(refused.contains("cannot read /data/note.txt"), "{refused}");
    assert_eq!(
        ok_text(&call(&client, "read_open", json!({"path": "/data/note.txt"})).await),
        "granted content"
    );
    // Nothing outside the granted folder is visible.
    let refused = error_text(&call(&client, "read_open", json!({"path": "/etc/passwd"})).await);
    assert!(refused.contains("cannot read /etc/passwd"), "{refused}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_call_its_caller_drops_is_no_longer_counted_in_flight() {
    use std::future::Future;
    use std::task::Poll;
    use wasimancer::events::CallSource;

    let server = TestServer::start(ALL_PLUGINS).await;
    let registry = server.server.registry.clone();
    let in_flight = || registry.metrics().in_flight();
    // Poll the call once: it is counted and waits for its plugin, as a
    // request's future does when its client disconnects.
    let mut spin = Box::pin(registry.call(CallSource::Cli, "spin", None));
    std::future::poll_fn(|cx| {
        assert!(spin.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    assert_eq!(in_flight(), 1);
    drop(spin);
    assert_eq!(in_flight(), 0, "the dropped call is still counted");
}

#[tokio::test]
async fn a_caller_that_stops_waiting_for_an_instance_takes_none_away() {
    use std::future::Future;
    use std::task::Poll;
    use wasimancer::events::CallSource;

    let yaml = ALL_PLUGINS.replace("instances: 4", "instances: 1");
    let server = TestServer::start(&yaml).await;
    let registry = server.server.registry.clone();
    let faults = registry
        .snapshot()
        .plugin("faults")
        .and_then(|p| p.serving.clone())
        .unwrap();
    let spinning = tokio::spawn({
        let registry = registry.clone();
        async move { registry.call(CallSource::Cli, "spin", None).await }
    });
    let deadline = SystemTime::now() + Duration::from_secs(10);
    while faults.busy_instances() == 0 {
        assert!(SystemTime::now() < deadline, "the spin call never started");
        tokio::task::yield_now().await;
    }
    // A second call waits in the queue for the only instance; its caller
    // gives up.
    let mut waiting = Box::pin(registry.call(CallSource::Cli, "echo", None));
    std::future::poll_fn(|cx| {
        assert!(waiting.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    drop(waiting);
    assert!(
        spinning.await.unwrap().is_err(),
        "spin stops at its timeout"
    );
    assert_eq!(faults.busy_instances(), 0);
    let reply = registry.call(CallSource::Cli, "echo", None).await.unwrap();
    assert_eq!(reply.output.readable(), "{}");
    assert_eq!(faults.busy_instances(), 0);
}
