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
//!
//! With several apps (`[[apps]]`), an account belongs to one app and its batches go through that
//! app's budget; a bearer batch goes through any app with a bearer token (see [`crate::apps`]).

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
    /// The app (index into the run's apps) of each account, in the order of `accounts`; an
    /// account beyond the list belongs to the first app.
    pub account_apps: Vec<usize>,
    /// The bearer tokens, each with its app's index; bearer batches may use any of them.
    pub bearers: Vec<(usize, Credentials)>,
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
            .field("account_apps", &self.account_apps)
            .field(
                "bearer_apps",
                &self.bearers.iter().map(|(a, _)| a).collect::<Vec<_>>(),
            )
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
            account_apps: Vec::new(),
            bearers: Vec::new(),
            bearer_only: false,
        }
    }

    /// The bearer token only.
    pub fn bearer_only(endpoint: Endpoint, token: BearerToken) -> Routes {
        Routes {
            endpoint,
            accounts: Vec::new(),
            account_apps: Vec::new(),
            bearers: vec![(0, Credentials::Bearer(token))],
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
        !self.bearers.is_empty() && self.endpoint.allows_auth(AuthKind::Bearer)
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

    /// Whether any credentials serve a route.
    pub fn serves(&self, route: Route) -> bool {
        match route {
            Route::User(i) => i < self.accounts.len(),
            Route::Bearer => !self.bearers.is_empty(),
            Route::NoOwner => false,
        }
    }

    /// The apps whose budget a route may use: the account's app, or every app with a bearer token.
    pub fn apps(&self, route: Route) -> Vec<usize> {
        match route {
            Route::User(i) => vec![self.account_apps.get(i).copied().unwrap_or(0)],
            Route::Bearer => self.bearers.iter().map(|(a, _)| *a).collect(),
            Route::NoOwner => Vec::new(),
        }
    }

    /// The credentials of a route through app `app` (one of [`Self::apps`]).
    pub fn credentials(&self, route: Route, app: usize) -> Option<&Credentials> {
        match route {
            Route::User(i) => self.accounts.get(i).map(|(_, c)| c),
            Route::Bearer => self.bearers.iter().find(|(a, _)| *a == app).map(|(_, c)| c),
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
            account_apps: Vec::new(),
            bearers: bearer
                .then(|| (0, Credentials::Bearer(BearerToken("b".into()))))
                .into_iter()
                .collect(),
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

    #[test]
    fn an_account_uses_its_apps_budget_and_the_bearer_any_app_with_a_token() {
        let mut r = routes(Endpoint::Totals, &["a", "b"], false);
        r.account_apps = vec![1, 2];
        r.bearers = vec![
            (0, Credentials::Bearer(BearerToken("b0".into()))),
            (2, Credentials::Bearer(BearerToken("b2".into()))),
        ];
        assert_eq!(r.apps(Route::User(0)), [1]);
        assert_eq!(r.apps(Route::User(1)), [2]);
        assert_eq!(r.apps(Route::Bearer), [0, 2]);
        assert!(r.apps(Route::NoOwner).is_empty());
        let token = |c: Option<&Credentials>| match c {
            Some(Credentials::Bearer(t)) => t.0.clone(),
            _ => String::new(),
        };
        assert_eq!(token(r.credentials(Route::Bearer, 2)), "b2");
        assert!(r.credentials(Route::Bearer, 1).is_none());
        // Without a list, every account is the first app's.
        r.account_apps.clear();
        assert_eq!(r.apps(Route::User(1)), [0]);
    }
}
