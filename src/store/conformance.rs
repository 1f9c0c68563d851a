#![allow(clippy::expect_used, clippy::panic)] // test support: failing loudly is the point
//! The behaviour every [`Store`] backend must have, as one suite each backend's tests run.
//! A failure panics with the operation that misbehaved.

use std::sync::Arc;
use std::time::Duration;

use super::{Redeemed, Store};

/// Runs every check against a fresh store. Keys are namespaced by `ns` so that backends shared
/// between tests (one Redis) do not interfere.
pub async fn run<S: Store + 'static>(store: Arc<S>, ns: &str) {
    put_get_take(&*store, ns).await;
    put_new_is_exclusive(&*store, ns).await;
    ttl_expires(&*store, ns).await;
    counters(&*store, ns).await;
    redeem_takes_marks_and_copies(&*store, ns).await;
    set_and_scan(&*store, ns).await;
    compare_and_set(&*store, ns).await;
    concurrent_take_has_one_winner(store.clone(), ns).await;
    concurrent_put_new_has_one_winner(store.clone(), ns).await;
    concurrent_redeem_has_one_winner(store.clone(), ns).await;
    log_appends_trims_and_pages(&*store, ns).await;
}

async fn log_appends_trims_and_pages<S: Store>(store: &S, ns: &str) {
    let key = format!("{ns}:log");
    let first = store.log_append(&key, &[b"a".to_vec(), b"b".to_vec()], 1000, 0).await.expect("append");
    let second = store.log_append(&key, &[b"c".to_vec()], 1000, 0).await.expect("append");
    assert_eq!((first.len(), second.len()), (2, 1), "one id per entry");
    let all = store.log_range(&key, None, 0, 10).await.expect("range");
    let values: Vec<&[u8]> = all.iter().map(|(_, v)| v.as_slice()).collect();
    assert_eq!(values, [&b"c"[..], b"b", b"a"], "newest first");
    assert_eq!(all[0].0, second[0], "ids as appended");
    let page = store.log_range(&key, Some(&all[0].0), 0, 1).await.expect("range");
    assert_eq!(page, [all[1].clone()], "before is exclusive, count bounds the page");
    let (newest_ms, _) = super::parse_log_id(&all[0].0).expect("an id of milliseconds and a sequence");
    assert!(store.log_range(&key, None, newest_ms + 1, 10).await.expect("range").is_empty(), "since bounds by time");
    // Trimmed by age: everything older than now goes with the next append.
    let now_ms = newest_ms + 60_000;
    store.log_append(&key, &[b"d".to_vec()], 1000, now_ms).await.expect("append");
    let kept = store.log_range(&key, None, 0, 10).await.expect("range");
    assert!(kept.len() <= 1, "entries older than keep_since are trimmed: {kept:?}");
    store.delete(&key).await.expect("delete");
    // Trimmed by count: Redis trims approximately (whole nodes of 100), so write well past it.
    for _ in 0..30 {
        let batch: Vec<Vec<u8>> = (0..100).map(|i| format!("{i}").into_bytes()).collect();
        store.log_append(&key, &batch, 200, 0).await.expect("append");
    }
    let kept = store.log_range(&key, None, 0, 10_000).await.expect("range");
    assert!((200..=400).contains(&kept.len()), "about max_len kept of 3000: {}", kept.len());
    store.delete(&key).await.expect("delete");
}

async fn put_get_take<S: Store>(store: &S, ns: &str) {
    let key = format!("{ns}:a");
    assert_eq!(store.get(&key).await.expect("get"), None, "absent key reads as None");
    store.put(&key, b"one", Duration::from_secs(60)).await.expect("put");
    assert_eq!(store.get(&key).await.expect("get").as_deref(), Some(&b"one"[..]));
    store.put(&key, b"two", Duration::from_secs(60)).await.expect("put overwrites");
    assert_eq!(store.get(&key).await.expect("get").as_deref(), Some(&b"two"[..]));
    assert_eq!(store.take(&key).await.expect("take").as_deref(), Some(&b"two"[..]));
    assert_eq!(store.take(&key).await.expect("take"), None, "take is single use");
    assert_eq!(store.get(&key).await.expect("get"), None, "take deletes");
    store.put(&key, b"three", Duration::from_secs(60)).await.expect("put");
    store.delete(&key).await.expect("delete");
    assert_eq!(store.get(&key).await.expect("get"), None, "delete deletes");
    store.delete(&key).await.expect("deleting an absent key is fine");
}

async fn put_new_is_exclusive<S: Store>(store: &S, ns: &str) {
    let key = format!("{ns}:new");
    assert!(store.put_new(&key, b"first", Duration::from_secs(60)).await.expect("put_new"));
    assert!(!store.put_new(&key, b"second", Duration::from_secs(60)).await.expect("put_new"));
    assert_eq!(store.get(&key).await.expect("get").as_deref(), Some(&b"first"[..]), "the first value stays");
}

async fn ttl_expires<S: Store>(store: &S, ns: &str) {
    let key = format!("{ns}:ttl");
    let new_key = format!("{ns}:ttl-new");
    store.put(&key, b"short", Duration::from_millis(150)).await.expect("put");
    assert!(store.put_new(&new_key, b"short", Duration::from_millis(150)).await.expect("put_new"));
    assert!(store.get(&key).await.expect("get").is_some(), "alive before its TTL");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.get(&key).await.expect("get"), None, "gone after its TTL");
    assert_eq!(store.take(&key).await.expect("take"), None, "an expired value cannot be taken");
    assert!(
        store.put_new(&new_key, b"again", Duration::from_secs(60)).await.expect("put_new"),
        "an expired key is free again"
    );
}

async fn counters<S: Store>(store: &S, ns: &str) {
    let key = format!("{ns}:counter");
    assert_eq!(store.incr(&key, 1, Duration::from_millis(300)).await.expect("incr"), 1);
    assert_eq!(store.incr(&key, 1, Duration::from_millis(300)).await.expect("incr"), 2);
    assert_eq!(store.incr(&key, 5, Duration::from_millis(300)).await.expect("incr by 5"), 7);
    assert_eq!(store.incr(&key, -3, Duration::from_millis(300)).await.expect("incr by -3"), 4, "counts down too");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        store.incr(&key, 1, Duration::from_secs(60)).await.expect("incr"),
        1,
        "a counter restarts after its TTL"
    );
    let batched = format!("{ns}:counter-batched");
    assert_eq!(store.incr(&batched, 3, Duration::from_millis(300)).await.expect("incr"), 3, "a new counter by 3");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.incr(&batched, 2, Duration::from_secs(60)).await.expect("incr"), 2, "and it expires too");
}

async fn redeem_takes_marks_and_copies<S: Store>(store: &S, ns: &str) {
    // One hash tag for the three keys, as redeem requires (one slot in a Redis Cluster).
    let (key, marker_key, copy_key) =
        (format!("grant:{{{ns}}}"), format!("grant-used:{{{ns}}}"), format!("grant-copy:{{{ns}}}"));
    let ttl = Duration::from_millis(300);
    assert_eq!(
        store.redeem(&key, &marker_key, b"m", &copy_key, ttl).await.expect("redeem"),
        Redeemed::Missing { marker: None },
        "nothing to redeem, no marker"
    );
    assert_eq!(store.get(&marker_key).await.expect("get"), None, "a failed redemption writes nothing");
    assert_eq!(store.get(&copy_key).await.expect("get"), None, "a failed redemption writes nothing");
    store.put(&key, b"grant", Duration::from_secs(60)).await.expect("put");
    assert_eq!(
        store.redeem(&key, &marker_key, b"m", &copy_key, ttl).await.expect("redeem"),
        Redeemed::Taken(b"grant".to_vec())
    );
    assert_eq!(store.get(&key).await.expect("get"), None, "redeemed means taken");
    assert_eq!(store.get(&marker_key).await.expect("get").as_deref(), Some(&b"m"[..]), "the marker is left");
    assert_eq!(store.get(&copy_key).await.expect("get").as_deref(), Some(&b"grant"[..]), "the copy is kept");
    assert_eq!(
        store.redeem(&key, &marker_key, b"other", &copy_key, ttl).await.expect("redeem"),
        Redeemed::Missing { marker: Some(b"m".to_vec()) },
        "a second redemption finds the first one's marker, and changes nothing"
    );
    assert_eq!(store.get(&marker_key).await.expect("get").as_deref(), Some(&b"m"[..]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.get(&marker_key).await.expect("get"), None, "the marker lives ttl");
    assert_eq!(store.get(&copy_key).await.expect("get"), None, "the copy lives ttl");
}

async fn set_and_scan<S: Store>(store: &S, ns: &str) {
    // Listed keys live in a collection (one hash slot in a Redis Cluster); `ns` namespaces them.
    let cfg = format!("{}{ns}:", super::keys::ROUTES);
    store.set(&format!("{cfg}a"), b"1").await.expect("set");
    store.set(&format!("{cfg}b"), b"2").await.expect("set");
    store.put(&format!("{cfg}gone"), b"3", Duration::from_millis(1)).await.expect("put");
    store.set(&format!("{ns}:other"), b"4").await.expect("set");
    store.set(&format!("{}{ns}:other", super::keys::CLIENTS), b"5").await.expect("set");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut found = store.scan_prefix(&cfg).await.expect("scan");
    found.sort();
    assert_eq!(
        found,
        vec![(format!("{cfg}a"), b"1".to_vec()), (format!("{cfg}b"), b"2".to_vec())],
        "scan finds live keys under the prefix, keys without the deployment prefix"
    );
    let clients = store.scan_prefix(super::keys::CLIENTS).await.expect("scan a whole collection");
    assert!(clients.contains(&(format!("{}{ns}:other", super::keys::CLIENTS), b"5".to_vec())), "{clients:?}");
    assert!(clients.iter().all(|(k, _)| k.starts_with(super::keys::CLIENTS)), "only that collection: {clients:?}");
    store.set(&format!("{cfg}a"), b"changed").await.expect("set overwrites");
    assert_eq!(store.get(&format!("{cfg}a")).await.expect("get").as_deref(), Some(&b"changed"[..]));
    assert_eq!(store.get(&format!("{ns}:other")).await.expect("get").as_deref(), Some(&b"4"[..]));
    assert!(
        matches!(store.scan_prefix(&format!("{ns}:")).await, Err(super::StoreError::NotListable(_))),
        "a prefix outside the collections is refused (it could not be listed in one slot of a cluster)"
    );
}

async fn compare_and_set<S: Store>(store: &S, ns: &str) {
    let key = format!("{ns}:cas");
    assert!(store.replace(&key, None, b"v1").await.expect("create"), "absent key: created");
    assert!(!store.replace(&key, None, b"again").await.expect("create"), "present key: not created again");
    assert!(!store.replace(&key, Some(b"stale"), b"v2").await.expect("cas"), "stale expectation: refused");
    assert_eq!(store.get(&key).await.expect("get").as_deref(), Some(&b"v1"[..]), "a refused replace changes nothing");
    assert!(store.replace(&key, Some(b"v1"), b"v2").await.expect("cas"), "current expectation: replaced");
    assert_eq!(store.get(&key).await.expect("get").as_deref(), Some(&b"v2"[..]));
}

async fn concurrent_take_has_one_winner<S: Store + 'static>(store: Arc<S>, ns: &str) {
    for round in 0..20 {
        let key = format!("{ns}:race:{round}");
        store.put(&key, b"prize", Duration::from_secs(60)).await.expect("put");
        let takers: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move { store.take(&key).await.expect("take") })
            })
            .collect();
        let mut winners = 0;
        for taker in takers {
            if taker.await.expect("task").is_some() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "exactly one concurrent take wins (round {round})");
    }
}

async fn concurrent_put_new_has_one_winner<S: Store + 'static>(store: Arc<S>, ns: &str) {
    let key = format!("{ns}:claim");
    let claimers: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move {
                store.put_new(&key, format!("{i}").as_bytes(), Duration::from_secs(60)).await.expect("put_new")
            })
        })
        .collect();
    let mut winners = 0;
    for claimer in claimers {
        if claimer.await.expect("task") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one concurrent put_new wins");
}

async fn concurrent_redeem_has_one_winner<S: Store + 'static>(store: Arc<S>, ns: &str) {
    for round in 0..10 {
        let key = format!("redeem-race:{{{ns}:{round}}}");
        store.put(&key, b"prize", Duration::from_secs(60)).await.expect("put");
        let redeemers: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    let marker = format!("{i}");
                    let copy = format!("{key}:copy:{i}");
                    (
                        i,
                        store
                            .redeem(&key, &format!("{key}:used"), marker.as_bytes(), &copy, Duration::from_secs(60))
                            .await,
                    )
                })
            })
            .collect();
        let mut winners = Vec::new();
        for redeemer in redeemers {
            let (i, outcome) = redeemer.await.expect("task");
            if let Redeemed::Taken(value) = outcome.expect("redeem") {
                assert_eq!(value, b"prize");
                winners.push(i);
            }
        }
        assert_eq!(winners.len(), 1, "exactly one concurrent redemption wins (round {round})");
        let marker = store.get(&format!("{key}:used")).await.expect("get");
        assert_eq!(marker, Some(winners[0].to_string().into_bytes()), "the winner's marker stays");
    }
}
