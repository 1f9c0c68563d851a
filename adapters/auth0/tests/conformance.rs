//! The shared adapter conformance suite against the fake tenant (see common::LoginThroughAuth0
//! for how a sign-in is modelled, and why).

mod common;

use std::sync::Arc;

use common::tenant::FakeTenant;
use common::TenantHarness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_against_the_fake_tenant() {
    let tenant = Arc::new(FakeTenant::start().await);
    let harness = TenantHarness::new(tenant.clone(), &tenant.base).await;
    ssobridge_adapter_core::conformance::run(&harness, &common::run_id()).await;
}
