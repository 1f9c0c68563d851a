//! `deploy/recipes/cognito.md` says what the code does: its policy is the one the tests run
//! under, and its configuration parses as the adapter's settings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use ssobridge_adapter_cognito::CognitoSettings;

fn read(relative: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)).unwrap()
}

/// The body of the first fenced block of `language` in the recipe.
fn block(recipe: &str, language: &str) -> String {
    let fence = format!("```{language}\n");
    let start = recipe.find(&fence).unwrap_or_else(|| panic!("no {language} block")) + fence.len();
    let end = recipe[start..].find("```").unwrap() + start;
    recipe[start..end].to_owned()
}

#[test]
fn the_recipe_shows_the_policy_the_tests_use() {
    let recipe = read("../../deploy/recipes/cognito.md");
    assert_eq!(block(&recipe, "json").trim(), read("iam-policy.json").trim());
}

#[test]
fn the_recipe_configuration_is_what_the_adapter_reads() {
    let recipe = read("../../deploy/recipes/cognito.md");
    let config: toml::Table = toml::from_str(&block(&recipe, "toml")).unwrap();
    let client = &config["clients"].as_array().unwrap()[0];
    assert_eq!(client["adapter"].as_str(), Some("cognito"));
    let settings: CognitoSettings = client["cognito"].clone().try_into().unwrap();
    assert_eq!(settings.identity_provider_name, "ssobridge");
    let redirect = client["redirect_uris"].as_array().unwrap()[0].as_str().unwrap();
    assert!(redirect.ends_with(".amazoncognito.com/oauth2/idpresponse"), "{redirect}");
}
