//! The choice among upstreams: least outstanding requests, `prompt_cache_key` affinity,
//! health, failover.

use chorus_engine::{Backend, GenerationStream};

use crate::mock::{CHAT, Mock, until};
use crate::{backend, chat, keyed};

/// Where each of `mocks` has had chat requests.
fn counts(mocks: &[&Mock]) -> Vec<usize> {
    mocks.iter().map(|m| m.state.count(CHAT)).collect()
}

async fn arrived(mocks: &[&Mock], n: usize) {
    until(&format!("{n} requests arrive"), || counts(mocks).iter().sum::<usize>() == n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_where_fewest_are_outstanding() {
    let slow = Mock::start().await;
    let fast = Mock::start().await;
    slow.state.open(false);
    let backend = backend(&[&slow.url, &fast.url]);
    let mut held: Vec<GenerationStream> = Vec::new();
    for i in 0..6 {
        let stream = backend.generate(chat(&backend, "hi")).unwrap();
        arrived(&[&slow, &fast], i + 1).await;
        if fast.state.count(CHAT) + held.len() == i + 1 {
            // It went to the fast one: its answer ends, and its request is counted out then.
            assert_eq!(stream.collect().await.unwrap().text, "Hello world");
        } else {
            held.push(stream);
        }
    }
    // Round robin would have sent every other request to the slow upstream.
    assert_eq!(counts(&[&slow, &fast]), [1, 5]);
    assert_eq!(backend.stats().slots_busy, 1);
    slow.state.open(true);
    for stream in held {
        assert_eq!(stream.collect().await.unwrap().text, "Hello world");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_spread_evenly() {
    let a = Mock::start().await;
    let b = Mock::start().await;
    a.state.open(false);
    b.state.open(false);
    let backend = backend(&[&a.url, &b.url]);
    let streams: Vec<_> = (0..4).map(|_| backend.generate(chat(&backend, "hi")).unwrap()).collect();
    arrived(&[&a, &b], 4).await;
    assert_eq!(counts(&[&a, &b]), [2, 2]);
    assert_eq!(backend.stats().slots_busy, 4);
    let status = backend.upstreams();
    assert_eq!((status[0].outstanding, status[1].outstanding), (2, 2));
    a.state.open(true);
    b.state.open(true);
    for stream in streams {
        stream.collect().await.unwrap();
    }
    until("every request is counted out", || backend.stats().slots_busy == 0).await;
}

/// Index of the mock that had `before + 1` requests: where the last one went.
fn home(mocks: &[&Mock]) -> usize {
    let c = counts(mocks);
    usize::from(c[1] > c[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_stays_on_its_url_and_moves_when_the_url_goes_down() {
    let a = Mock::start().await;
    let b = Mock::start().await;
    let mocks = [&a, &b];
    let backend = backend(&[&a.url, &b.url]);
    backend.generate(keyed(&backend, "session/s1")).unwrap().collect().await.unwrap();
    let first = home(&mocks);
    let (x, y) = (mocks[first], mocks[1 - first]);
    // The key's URL is busy, the other idle: the key stays all the same.
    x.state.open(false);
    let held = backend.generate(keyed(&backend, "session/s1")).unwrap();
    arrived(&mocks, 2).await;
    let again = backend.generate(keyed(&backend, "session/s1")).unwrap();
    arrived(&mocks, 3).await;
    assert_eq!((x.state.count(CHAT), y.state.count(CHAT)), (3, 0));
    // A request without a key goes to the idle one.
    backend.generate(chat(&backend, "hi")).unwrap().collect().await.unwrap();
    assert_eq!(y.state.count(CHAT), 1);
    x.state.open(true);
    held.collect().await.unwrap();
    again.collect().await.unwrap();

    // The key's URL fails its health checks: the key moves, and stays moved.
    x.state.set_health(503);
    until("the url is seen down", || !backend.upstreams()[first].healthy).await;
    backend.generate(keyed(&backend, "session/s1")).unwrap().collect().await.unwrap();
    assert_eq!((x.state.count(CHAT), y.state.count(CHAT)), (3, 2));
    x.state.set_health(200);
    until("the url is seen up", || backend.upstreams()[first].healthy).await;
    for _ in 0..3 {
        backend.generate(keyed(&backend, "session/s1")).unwrap().collect().await.unwrap();
    }
    assert_eq!((x.state.count(CHAT), y.state.count(CHAT)), (3, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_moves_the_request_and_its_key_to_another_url() {
    let a = Mock::start().await;
    let b = Mock::start().await;
    let (a_url, b_url) = (a.url.clone(), b.url.clone());
    // Checks far apart: only the failed connection tells the backend.
    let backend = crate::backend_with(&[&a_url, &b_url], |c| c.health_interval = std::time::Duration::from_secs(3600));
    backend.generate(keyed(&backend, "session/s2")).unwrap().collect().await.unwrap();
    let first = home(&[&a, &b]);
    let (x, y) = if first == 0 { (a, b) } else { (b, a) };
    x.stop().await;
    let answer = backend.generate(keyed(&backend, "session/s2")).unwrap().collect().await.unwrap();
    assert_eq!(answer.text, "Hello world");
    assert_eq!(y.state.count(CHAT), 1);
    assert!(!backend.upstreams()[first].healthy);
    backend.generate(keyed(&backend, "session/s2")).unwrap().collect().await.unwrap();
    assert_eq!(y.state.count(CHAT), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_healthy_url_requests_are_tried_all_the_same() {
    let a = Mock::start().await;
    a.state.set_health(503);
    let backend = backend(&[&a.url]);
    until("the url is seen down", || !backend.upstreams()[0].healthy).await;
    let answer = backend.generate(chat(&backend, "hi")).unwrap().collect().await.unwrap();
    assert_eq!(answer.text, "Hello world");
}
