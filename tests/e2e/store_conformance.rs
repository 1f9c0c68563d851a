//! The store conformance suite against both backends: memory, and a real redis-server.

use std::sync::Arc;

use ssobridge::store::{conformance, MemoryStore, RedisStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    conformance::run(Arc::new(MemoryStore::new()), "conformance").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_conforms() {
    let redis = crate::common::Redis::start().await;
    let store = RedisStore::connect(&redis.url(), "conformance:").await.expect("connect");
    conformance::run(Arc::new(store), "suite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_prefixes_separate_deployments() {
    use ssobridge::store::Store;
    let redis = crate::common::Redis::start().await;
    let a = RedisStore::connect(&redis.url(), "tenant-a:").await.expect("connect");
    let b = RedisStore::connect(&redis.url(), "tenant-b:").await.expect("connect");
    a.put("k", b"from a", std::time::Duration::from_secs(60)).await.expect("put");
    assert_eq!(b.get("k").await.expect("get"), None, "prefixes separate deployments");
    assert_eq!(a.get("k").await.expect("get").as_deref(), Some(&b"from a"[..]));
}
