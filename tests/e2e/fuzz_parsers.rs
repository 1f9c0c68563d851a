//! Property tests of the parsers that see untrusted input: authorize parameters, routing
//! selectors, domains. They must never panic, and what they accept must be well-formed.

use proptest::prelude::*;
use ssobridge::model::normalize_domain;
use ssobridge::oidc::params::{Params, MAX_PARAM_LEN};
use ssobridge::routing::Selectors;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn authorize_parameters_never_panic_and_bound_their_values(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let params = Params::parse(&raw);
        for name in ["client_id", "redirect_uri", "state", "nonce", "scope", "code_challenge", "login_hint"] {
            if let Ok(Some(value)) = params.get(name) {
                prop_assert!(!value.is_empty() && value.len() <= MAX_PARAM_LEN);
            }
        }
        let _ = Selectors::from_params(&params);
    }

    #[test]
    fn repeated_parameters_are_always_refused(name in "[a-z_]{1,12}", a in "[a-z0-9]{1,8}", b in "[a-z0-9]{1,8}") {
        let params = Params::parse(format!("{name}={a}&{name}={b}").as_bytes());
        prop_assert!(params.get(&name).is_err());
    }

    #[test]
    fn normalized_domains_are_ldh_labels_and_stable(raw in "\\PC{0,80}") {
        if let Ok(domain) = normalize_domain(&raw) {
            prop_assert!(domain.contains('.'));
            prop_assert!(domain.split('.').all(|label| !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')));
            prop_assert_eq!(normalize_domain(&domain).ok(), Some(domain.clone()), "normalization is idempotent");
        }
    }

    #[test]
    fn login_hint_domains_route_like_the_domain_itself(local in "[a-z0-9.]{1,10}", domain in "[A-Za-z0-9]{1,10}\\.[A-Za-z]{2,6}") {
        let params = Params::parse(format!("login_hint={local}%40{domain}").as_bytes());
        let selectors = Selectors::from_params(&params).expect("selectors");
        prop_assert_eq!(selectors.login_hint_domain(), Some(domain.as_str()));
    }
}
