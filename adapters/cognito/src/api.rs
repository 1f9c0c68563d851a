//! The Cognito operations the adapter uses, with their request and answer shapes (API
//! reference): for sign-ins `AdminGetUser`, `ListUsers`, `AdminCreateUser`,
//! `AdminUpdateUserAttributes`, `AdminLinkProviderForUser`, `DescribeUserPool`; for the user's
//! later life `AdminUserGlobalSignOut`, `AdminDisableUser`, `AdminEnableUser`, `AdminDeleteUser`,
//! `AdminListGroupsForUser`, `AdminAddUserToGroup`, `AdminRemoveUserFromGroup`, `CreateGroup`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::client::Client;
use crate::error::CognitoError;

/// `ProviderName` of a user that lives in the pool itself (as a link's destination).
const COGNITO_PROVIDER: &str = "Cognito";
/// For OIDC identity providers this names the `sub` claim of the provider's ID token.
pub(crate) const SUBJECT_ATTRIBUTE: &str = "Cognito_Subject";
/// The user status of a user Cognito made on a federated sign-in (no password of its own).
const EXTERNAL_PROVIDER: &str = "EXTERNAL_PROVIDER";
/// `ListUsers` pages are at most 60 users; an email matching more than this is refused anyway.
const MAX_LIST_PAGES: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Attribute {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

impl Attribute {
    pub(crate) fn new(name: &str, value: &str) -> Attribute {
        Attribute { name: name.to_owned(), value: value.to_owned() }
    }
}

/// A user as `AdminGetUser`, `ListUsers` and `AdminCreateUser` return it.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub username: String,
    pub enabled: bool,
    pub status: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

/// One entry of the `identities` attribute Cognito keeps on a user with linked federated
/// identities: `[{"userId":"…","providerName":"…","providerType":"OIDC",…}]` (a JSON string).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinkedIdentity {
    user_id: Option<String>,
    provider_name: Option<String>,
}

impl User {
    pub(crate) fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// Whether the federated identity (`provider`, `subject`) is linked to this user. Cognito
    /// maintains `identities` itself; users cannot write it, so it proves ownership.
    pub(crate) fn is_linked_to(&self, provider: &str, subject: &str) -> bool {
        let Some(raw) = self.attribute("identities") else { return false };
        let Ok(linked) = serde_json::from_str::<Vec<LinkedIdentity>>(raw) else { return false };
        linked.iter().any(|l| l.provider_name.as_deref() == Some(provider) && l.user_id.as_deref() == Some(subject))
    }

    /// Whether Cognito marks the user's own `email` verified: only then has someone shown they
    /// receive mail there. A sign-up that was never confirmed (or an admin-created user without
    /// `email_verified`) holds an address anyone could have typed.
    pub(crate) fn email_verified(&self) -> bool {
        self.attribute("email_verified") == Some("true")
    }

    /// A user Cognito created for a federated sign-in: it cannot be a link's destination as a
    /// `Cognito` user, so it is never taken over by email.
    pub(crate) fn is_federated(&self) -> bool {
        self.status.as_deref() == Some(EXTERNAL_PROVIDER)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserShape {
    username: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    user_status: Option<String>,
    // `AdminGetUser` calls them `UserAttributes`, `ListUsers` and `AdminCreateUser` `Attributes`.
    #[serde(default, alias = "UserAttributes")]
    attributes: Vec<Attribute>,
}

fn yes() -> bool {
    true
}

impl From<UserShape> for User {
    fn from(shape: UserShape) -> User {
        User {
            username: shape.username,
            enabled: shape.enabled,
            status: shape.user_status,
            attributes: shape.attributes.into_iter().map(|a| (a.name, a.value)).collect(),
        }
    }
}

/// What the adapter needs to know about the pool, from `DescribeUserPool`.
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolFacts {
    /// `UsernameAttributes`: `email` means usernames must be email addresses.
    pub username_attributes: Vec<String>,
    /// Schema attribute name → (mutable, required).
    pub schema: BTreeMap<String, (bool, bool)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SchemaShape {
    name: String,
    #[serde(default = "yes")]
    mutable: bool,
    #[serde(default)]
    required: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PoolRequest<'a> {
    user_pool_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct UserRequest<'a> {
    user_pool_id: &'a str,
    username: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListUsersRequest<'a> {
    user_pool_id: &'a str,
    filter: &'a str,
    limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pagination_token: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateUserRequest<'a> {
    user_pool_id: &'a str,
    username: &'a str,
    user_attributes: &'a [Attribute],
    /// No invitation: the user signs in through ssobridge, never with Cognito's temporary password.
    message_action: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateAttributesRequest<'a> {
    user_pool_id: &'a str,
    username: &'a str,
    user_attributes: &'a [Attribute],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProviderUser<'a> {
    provider_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_attribute_name: Option<&'a str>,
    provider_attribute_value: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LinkRequest<'a> {
    user_pool_id: &'a str,
    destination_user: ProviderUser<'a>,
    source_user: ProviderUser<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GroupsForUserRequest<'a> {
    user_pool_id: &'a str,
    username: &'a str,
    limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MembershipRequest<'a> {
    user_pool_id: &'a str,
    username: &'a str,
    group_name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateGroupRequest<'a> {
    user_pool_id: &'a str,
    group_name: &'a str,
    description: &'a str,
}

#[derive(Deserialize)]
struct Empty {}

/// `AdminListGroupsForUser` pages hold at most 60 groups; a user is in at most 100.
const MAX_GROUP_PAGES: usize = 5;

/// The pool an adapter works on, with the client that reaches it.
#[derive(Debug)]
pub(crate) struct Pool {
    pub client: Client,
    pub id: String,
}

impl Pool {
    pub(crate) async fn describe(&self, deadline: Instant) -> Result<PoolFacts, CognitoError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Answer {
            user_pool: PoolShape,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct PoolShape {
            #[serde(default)]
            username_attributes: Vec<String>,
            #[serde(default)]
            schema_attributes: Vec<SchemaShape>,
        }
        let answer: Answer =
            self.client.call("DescribeUserPool", &PoolRequest { user_pool_id: &self.id }, deadline).await?;
        Ok(PoolFacts {
            username_attributes: answer.user_pool.username_attributes,
            schema: answer.user_pool.schema_attributes.into_iter().map(|s| (s.name, (s.mutable, s.required))).collect(),
        })
    }

    /// The user with this username (or, in a pool that signs in by email, this email), if any.
    pub(crate) async fn get_user(&self, username: &str, deadline: Instant) -> Result<Option<User>, CognitoError> {
        let request = UserRequest { user_pool_id: &self.id, username };
        match self.client.call::<_, UserShape>("AdminGetUser", &request, deadline).await {
            Ok(user) => Ok(Some(user.into())),
            Err(e) if e.is("UserNotFoundException") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every user whose `email` attribute is exactly `email`.
    pub(crate) async fn users_with_email(&self, email: &str, deadline: Instant) -> Result<Vec<User>, CognitoError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Answer {
            #[serde(default)]
            users: Vec<UserShape>,
            #[serde(default)]
            pagination_token: Option<String>,
        }
        let filter = email_filter(email);
        let mut users = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let request = ListUsersRequest {
                user_pool_id: &self.id,
                filter: &filter,
                limit: 60,
                pagination_token: token.as_deref(),
            };
            let answer: Answer = self.client.call("ListUsers", &request, deadline).await?;
            users.extend(answer.users.into_iter().map(User::from));
            match answer.pagination_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        Ok(users)
    }

    pub(crate) async fn create_user(
        &self,
        username: &str,
        attributes: &[Attribute],
        deadline: Instant,
    ) -> Result<User, CognitoError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Answer {
            user: UserShape,
        }
        let request = CreateUserRequest {
            user_pool_id: &self.id,
            username,
            user_attributes: attributes,
            message_action: "SUPPRESS",
        };
        let answer: Answer = self.client.call("AdminCreateUser", &request, deadline).await?;
        Ok(answer.user.into())
    }

    pub(crate) async fn update_attributes(
        &self,
        username: &str,
        attributes: &[Attribute],
        deadline: Instant,
    ) -> Result<(), CognitoError> {
        let request = UpdateAttributesRequest { user_pool_id: &self.id, username, user_attributes: attributes };
        let _: Empty = self.client.call("AdminUpdateUserAttributes", &request, deadline).await?;
        Ok(())
    }

    /// Links the federated identity (`provider`, `subject`) to the pool user `username`, so that
    /// a sign-in through `provider` with that `sub` becomes a sign-in as `username`.
    pub(crate) async fn link_provider(
        &self,
        username: &str,
        provider: &str,
        subject: &str,
        deadline: Instant,
    ) -> Result<(), CognitoError> {
        let request = LinkRequest {
            user_pool_id: &self.id,
            // Cognito ignores the destination's attribute name; the value is the username.
            destination_user: ProviderUser {
                provider_name: COGNITO_PROVIDER,
                provider_attribute_name: None,
                provider_attribute_value: username,
            },
            source_user: ProviderUser {
                provider_name: provider,
                provider_attribute_name: Some(SUBJECT_ATTRIBUTE),
                provider_attribute_value: subject,
            },
        };
        let _: Empty = self.client.call("AdminLinkProviderForUser", &request, deadline).await?;
        Ok(())
    }
}

impl Pool {
    /// One of the operations on a single user that answer nothing (`{}`).
    async fn on_user(&self, action: &'static str, username: &str, deadline: Instant) -> Result<(), CognitoError> {
        let _: Empty = self.client.call(action, &UserRequest { user_pool_id: &self.id, username }, deadline).await?;
        Ok(())
    }

    /// Invalidates the user's ID, access and refresh tokens (not the managed-login cookie).
    pub(crate) async fn global_sign_out(&self, username: &str, deadline: Instant) -> Result<(), CognitoError> {
        self.on_user("AdminUserGlobalSignOut", username, deadline).await
    }

    /// Stops the user signing in and revokes their access tokens.
    pub(crate) async fn disable(&self, username: &str, deadline: Instant) -> Result<(), CognitoError> {
        self.on_user("AdminDisableUser", username, deadline).await
    }

    pub(crate) async fn enable(&self, username: &str, deadline: Instant) -> Result<(), CognitoError> {
        self.on_user("AdminEnableUser", username, deadline).await
    }

    pub(crate) async fn delete(&self, username: &str, deadline: Instant) -> Result<(), CognitoError> {
        self.on_user("AdminDeleteUser", username, deadline).await
    }

    /// The names of the groups the user is in.
    pub(crate) async fn groups_of(&self, username: &str, deadline: Instant) -> Result<Vec<String>, CognitoError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Group {
            group_name: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Answer {
            #[serde(default)]
            groups: Vec<Group>,
            #[serde(default)]
            next_token: Option<String>,
        }
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_GROUP_PAGES {
            let request =
                GroupsForUserRequest { user_pool_id: &self.id, username, limit: 60, next_token: token.as_deref() };
            let answer: Answer = self.client.call("AdminListGroupsForUser", &request, deadline).await?;
            names.extend(answer.groups.into_iter().map(|g| g.group_name));
            match answer.next_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        Ok(names)
    }

    pub(crate) async fn add_to_group(
        &self,
        username: &str,
        group: &str,
        deadline: Instant,
    ) -> Result<(), CognitoError> {
        let request = MembershipRequest { user_pool_id: &self.id, username, group_name: group };
        let _: Empty = self.client.call("AdminAddUserToGroup", &request, deadline).await?;
        Ok(())
    }

    pub(crate) async fn remove_from_group(
        &self,
        username: &str,
        group: &str,
        deadline: Instant,
    ) -> Result<(), CognitoError> {
        let request = MembershipRequest { user_pool_id: &self.id, username, group_name: group };
        let _: Empty = self.client.call("AdminRemoveUserFromGroup", &request, deadline).await?;
        Ok(())
    }

    /// Creates an empty group (no IAM role, no precedence): a name the pool's tokens can carry.
    pub(crate) async fn create_group(&self, group: &str, deadline: Instant) -> Result<(), CognitoError> {
        #[derive(Deserialize)]
        struct Created {}
        let request = CreateGroupRequest {
            user_pool_id: &self.id,
            group_name: group,
            description: "A role managed by ssobridge",
        };
        let _: Created = self.client.call("CreateGroup", &request, deadline).await?;
        Ok(())
    }
}

/// `email = "…"` in ListUsers' filter syntax: quotes and backslashes escaped with a backslash.
pub(crate) fn email_filter(email: &str) -> String {
    let mut filter = String::with_capacity(email.len() + 10);
    filter.push_str("email = \"");
    for c in email.chars() {
        if c == '"' || c == '\\' {
            filter.push('\\');
        }
        filter.push(c);
    }
    filter.push('"');
    filter
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn user(identities: Option<&str>) -> User {
        let mut attributes = BTreeMap::new();
        if let Some(raw) = identities {
            attributes.insert("identities".to_owned(), raw.to_owned());
        }
        User { username: "u".into(), enabled: true, status: Some("CONFIRMED".into()), attributes }
    }

    #[test]
    fn linked_identities_are_read_from_the_identities_attribute() {
        let raw = r#"[{"userId":"sub-1","providerName":"ssobridge","providerType":"OIDC","issuer":null,
            "primary":false,"dateCreated":1701125599632}]"#;
        assert!(user(Some(raw)).is_linked_to("ssobridge", "sub-1"));
        assert!(!user(Some(raw)).is_linked_to("ssobridge", "sub-2"));
        assert!(!user(Some(raw)).is_linked_to("Google", "sub-1"));
        assert!(!user(Some("not json")).is_linked_to("ssobridge", "sub-1"));
        assert!(!user(None).is_linked_to("ssobridge", "sub-1"));
    }

    #[test]
    fn filters_escape_quotes() {
        assert_eq!(email_filter("a@example.com"), r#"email = "a@example.com""#);
        assert_eq!(email_filter(r#""a\b"@example.com"#), r#"email = "\"a\\b\"@example.com""#);
    }

    #[test]
    fn users_parse_from_every_operation() {
        let get = r#"{"Username":"u1","UserAttributes":[{"Name":"email","Value":"a@b"}],"Enabled":false,
            "UserStatus":"CONFIRMED"}"#;
        let listed =
            r#"{"Username":"u2","Attributes":[{"Name":"email","Value":"a@b"}],"UserStatus":"EXTERNAL_PROVIDER"}"#;
        let a: User = serde_json::from_str::<UserShape>(get).unwrap().into();
        let b: User = serde_json::from_str::<UserShape>(listed).unwrap().into();
        assert_eq!((a.username.as_str(), a.enabled, a.attribute("email")), ("u1", false, Some("a@b")));
        assert_eq!((b.username.as_str(), b.enabled, b.is_federated()), ("u2", true, true));
    }

    #[test]
    fn only_a_true_email_verified_attribute_counts() {
        let mut u = user(None);
        assert!(!u.email_verified(), "absent");
        for (value, verified) in [("false", false), ("", false), ("yes", false), ("true", true)] {
            u.attributes.insert("email_verified".to_owned(), value.to_owned());
            assert_eq!(u.email_verified(), verified, "{value:?}");
        }
    }

    #[test]
    fn the_link_request_names_both_users() {
        let request = LinkRequest {
            user_pool_id: "eu-west-1_A",
            destination_user: ProviderUser {
                provider_name: COGNITO_PROVIDER,
                provider_attribute_name: None,
                provider_attribute_value: "ssobridge-abc",
            },
            source_user: ProviderUser {
                provider_name: "ssobridge",
                provider_attribute_name: Some(SUBJECT_ATTRIBUTE),
                provider_attribute_value: "sub-1",
            },
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"UserPoolId":"eu-west-1_A","DestinationUser":{"ProviderName":"Cognito","ProviderAttributeValue":"ssobridge-abc"},"SourceUser":{"ProviderName":"ssobridge","ProviderAttributeName":"Cognito_Subject","ProviderAttributeValue":"sub-1"}}"#
        );
    }
}
