//! Which credentials fetch which Tweet.
//!
//! Owned metrics need the owning account's user context; public metrics of any public Tweet need only
//! the bearer token. Rules (README "Accounts"):
//! - `--auth bearer`: everything through the bearer token (`/totals` only);
//! - an ID whose owner (CSV `account` column or `--account`) is a configured account: that account;
//! - an ID of unknown owner when exactly one account is configured: that account;
//! - otherwise (unknown or unconfigured owner): the bearer token on `/totals`, public metrics only; on
//!   `/28hr` and `/historical`, which need the owner, the ID ends `forbidden` without a request.
//! - A `Forbidden to access tweets` answer for user context sends the listed IDs once more through the
//!   bearer token where it can serve (`/totals` with a bearer token), else they end `forbidden`.

use engagement_api::auth::{BearerToken, Credentials, UserCredentials};
use engagement_api::{AuthKind, Endpoint};

/// Where a batch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// The user context of the configured account at this index.
    User(usize),
    /// The bearer token.
    Bearer,
    /// Nothing can serve it (a time-series endpoint and no owner account).
    NoOwner,
}

/// The credentials of a run.
#[derive(Clone)]
pub struct Routes {
    /// Endpoint (decides whether the bearer token can serve).
    pub endpoint: Endpoint,
    /// Configured accounts, by name, with their user-context credentials.
    pub accounts: Vec<(String, Credentials)>,
    /// The bearer token, if any.
    pub bearer: Option<Credentials>,
    /// `--auth bearer`: use the bearer token for everything.
    pub bearer_only: bool,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("endpoint", &self.endpoint)
            .field(
                "accounts",
                &self.accounts.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("bearer", &self.bearer.is_some())
            .field("bearer_only", &self.bearer_only)
            .finish()
    }
}

impl Routes {
    /// One user-context account (the `ENGAGE_*` variables alone).
    pub fn single_user(endpoint: Endpoint, name: &str, creds: UserCredentials) -> Routes {
        Routes {
            endpoint,
            accounts: vec![(name.to_string(), Credentials::User(creds))],
            bearer: None,
            bearer_only: false,
        }
    }

    /// The bearer token only.
    pub fn bearer_only(endpoint: Endpoint, token: BearerToken) -> Routes {
        Routes {
            endpoint,
            accounts: Vec::new(),
            bearer: Some(Credentials::Bearer(token)),
            bearer_only: true,
        }
    }

    /// The authentication that decides the run's metrics: user context when any account can serve.
    pub fn kind(&self) -> AuthKind {
        if self.bearer_only || self.accounts.is_empty() {
            AuthKind::Bearer
        } else {
            AuthKind::User
        }
    }

    fn bearer_serves(&self) -> bool {
        self.bearer.is_some() && self.endpoint.allows_auth(AuthKind::Bearer)
    }

    /// The route of an ID whose owner is `owner` (None: unknown).
    pub fn route(&self, owner: Option<&str>) -> Route {
        if self.bearer_only {
            return Route::Bearer;
        }
        let named = owner.and_then(|o| self.accounts.iter().position(|(n, _)| n == o));
        match (named, owner) {
            (Some(i), _) => Route::User(i),
            (None, None) if self.accounts.len() == 1 => Route::User(0),
            _ if self.bearer_serves() => Route::Bearer,
            _ => Route::NoOwner,
        }
    }

    /// Where IDs refused with 403 through `route` go next, if anywhere.
    pub fn after_forbidden(&self, route: Route) -> Option<Route> {
        match route {
            Route::User(_) if self.bearer_serves() => Some(Route::Bearer),
            _ => None,
        }
    }

    /// The credentials of a route.
    pub fn credentials(&self, route: Route) -> Option<&Credentials> {
        match route {
            Route::User(i) => self.accounts.get(i).map(|(_, c)| c),
            Route::Bearer => self.bearer.as_ref(),
            Route::NoOwner => None,
        }
    }

    /// The name recorded for IDs fetched through a route: the account's name, or `bearer`.
    pub fn via(&self, route: Route) -> &str {
        match route {
            Route::User(i) => self.accounts.get(i).map(|(n, _)| n.as_str()).unwrap_or("?"),
            Route::Bearer => "bearer",
            Route::NoOwner => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: &str) -> (String, Credentials) {
        (
            n.to_string(),
            Credentials::User(UserCredentials {
                consumer_key: "k".into(),
                consumer_secret: "s".into(),
                access_token: format!("{n}-t"),
                access_token_secret: format!("{n}-s"),
            }),
        )
    }

    fn routes(endpoint: Endpoint, accounts: &[&str], bearer: bool) -> Routes {
        Routes {
            endpoint,
            accounts: accounts.iter().map(|n| user(n)).collect(),
            bearer: bearer.then(|| Credentials::Bearer(BearerToken("b".into()))),
            bearer_only: false,
        }
    }

    #[test]
    fn one_account_owns_unknown_ids() {
        let r = routes(Endpoint::Totals, &["a"], true);
        assert_eq!(r.route(None), Route::User(0));
        assert_eq!(r.route(Some("a")), Route::User(0));
        assert_eq!(r.route(Some("stranger")), Route::Bearer);
    }

    #[test]
    fn several_accounts_send_unknown_owners_to_the_bearer_token_on_totals_only() {
        let r = routes(Endpoint::Totals, &["a", "b"], true);
        assert_eq!(r.route(Some("b")), Route::User(1));
        assert_eq!(r.route(None), Route::Bearer);
        assert_eq!(r.after_forbidden(Route::User(1)), Some(Route::Bearer));
        let r = routes(Endpoint::Historical, &["a", "b"], true);
        assert_eq!(r.route(None), Route::NoOwner);
        assert_eq!(r.after_forbidden(Route::User(0)), None);
        let r = routes(Endpoint::Totals, &["a", "b"], false);
        assert_eq!(r.route(None), Route::NoOwner);
    }
}
