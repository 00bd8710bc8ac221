//! Authorization: the permission model and its in-process view.
//!
//! Role definitions (few) are held whole in memory; a user's roles and flags are loaded
//! on first use and kept until the change feed says they changed. The permission check,
//! the admin guard and introspection read only this view: no database round trip in
//! steady state. Every change goes to the database first, then through the change feed
//! ([`super::feed`]) to every instance's view.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::cache::GuardedCache;
use super::feed::ROLES_CHANGED;
use super::{AccessClaims, FieldError, ServiceError};
use crate::AppState;
use crate::store::{ChangeRecord, RoleRecord, Store, StoreError};

/// Name of the built-in role of requests without a token.
pub const ANONYMOUS: &str = "anonymous";
/// Name of the built-in role every user holds implicitly.
pub const USER: &str = "user";
/// Permission guarding roles, assignments and users.
pub const ROLES_MANAGE: &str = "roles:manage";
/// Permission guarding client registration.
pub const CLIENTS_MANAGE: &str = "clients:manage";
/// Users whose authorization data is kept in memory.
const USER_CACHE_SIZE: u64 = 200_000;

/// Checks a permission string: `resource:action`, each 1–64 of `[a-z0-9_.-]`.
pub fn check_permission(field: &str, p: &str) -> Option<FieldError> {
    let part_ok = |s: &str| {
        (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
    };
    match p.split_once(':') {
        Some((resource, action)) if part_ok(resource) && part_ok(action) => None,
        _ => Some(FieldError::new(
            field,
            "format",
            "must be resource:action of lowercase letters, digits, '_', '.', '-'",
        )),
    }
}

/// Checks a role name: 1–64 of `[a-z0-9_.-]`.
pub fn check_role_name(field: &str, name: &str) -> Option<FieldError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    (!ok).then(|| {
        FieldError::new(
            field,
            "format",
            "must be 1 to 64 lowercase letters, digits, '_', '.', '-'",
        )
    })
}

/// A role as the view holds it.
#[derive(Debug, Clone)]
pub struct RoleDef {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Permissions.
    pub permissions: HashSet<String>,
}

#[derive(Debug, Default)]
struct RoleTable {
    by_id: HashMap<String, RoleDef>,
    anonymous: HashSet<String>,
    user: HashSet<String>,
}

impl RoleTable {
    fn from_records(records: Vec<RoleRecord>) -> Self {
        let mut table = Self::default();
        for r in records {
            let perms: HashSet<String> = r.permissions.into_iter().collect();
            if r.builtin && r.name == ANONYMOUS {
                table.anonymous = perms.clone();
            }
            if r.builtin && r.name == USER {
                table.user = perms.clone();
            }
            table.by_id.insert(
                r.id.clone(),
                RoleDef {
                    id: r.id,
                    name: r.name,
                    permissions: perms,
                },
            );
        }
        table
    }
}

/// What the view knows of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAuthz {
    /// User id.
    pub user_id: String,
    /// Login (introspection's `username`).
    pub login: String,
    /// Allowed everything.
    pub superuser: bool,
    /// Blocked.
    pub blocked: bool,
    /// Assigned role ids (not the implicit `user`).
    pub role_ids: Vec<String>,
}

/// The in-process authorization view.
pub struct AuthzView {
    roles: RwLock<Arc<RoleTable>>,
    /// Users' flags and assignments; a load that raced an invalidation is not kept.
    users: GuardedCache<Arc<UserAuthz>>,
    /// Set by a feed entry, cleared by a successful reload only.
    roles_stale: AtomicBool,
    /// One reload at a time, in order: an older read never replaces a newer one.
    reload: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for AuthzView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthzView")
            .field("users", &self.users.entry_count())
            .finish_non_exhaustive()
    }
}

impl Default for AuthzView {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthzView {
    /// An empty view; call [`AuthzView::reload_roles`] before use.
    pub fn new() -> Self {
        Self {
            roles: RwLock::new(Arc::new(RoleTable::default())),
            users: GuardedCache::new(USER_CACHE_SIZE),
            roles_stale: AtomicBool::new(false),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    fn table(&self) -> Arc<RoleTable> {
        self.roles
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Re-reads every role definition from the database. On failure the definitions
    /// stay marked stale, so the next feed entry or periodic sync tries again.
    pub async fn reload_roles(&self, store: &dyn Store) -> Result<(), StoreError> {
        let _one_at_a_time = self.reload.lock().await;
        // Cleared before the read: an entry arriving during it marks them stale again.
        self.roles_stale.store(false, Ordering::SeqCst);
        let records = match store.list_roles().await {
            Ok(records) => records,
            Err(e) => {
                self.roles_stale.store(true, Ordering::SeqCst);
                return Err(e);
            }
        };
        let table = RoleTable::from_records(records);
        *self
            .roles
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(table);
        Ok(())
    }

    /// Applies a feed entry: a user's entry is dropped; a role change marks the
    /// definitions stale (reloaded by [`AuthzView::refresh_if_stale`]).
    pub fn on_change(&self, change: &ChangeRecord) {
        if change.kind == super::feed::ROLE_CREATED {
            self.roles_stale.store(true, Ordering::SeqCst);
            return;
        }
        if change.kind != ROLES_CHANGED {
            return;
        }
        match &change.sub {
            Some(user) => self.users.invalidate(user),
            None => self.roles_stale.store(true, Ordering::SeqCst),
        }
    }

    /// True when a feed entry said role definitions changed and no reload has
    /// succeeded since.
    pub fn roles_stale(&self) -> bool {
        self.roles_stale.load(Ordering::SeqCst)
    }

    /// Reloads role definitions if a feed entry said they changed.
    pub async fn refresh_if_stale(&self, store: &dyn Store) -> Result<(), StoreError> {
        if self.roles_stale.load(Ordering::SeqCst) {
            self.reload_roles(store).await?;
        }
        Ok(())
    }

    /// The user's authorization data: from memory, or loaded once from the database.
    pub async fn user(
        &self,
        store: &dyn Store,
        user_id: &str,
    ) -> Result<Option<Arc<UserAuthz>>, StoreError> {
        self.users
            .get_or_load(user_id, || async {
                let Some(user) = store.find_user(user_id).await? else {
                    return Ok(None);
                };
                let role_ids = store.user_role_ids(user_id).await?;
                Ok(Some(Arc::new(UserAuthz {
                    user_id: user.id,
                    login: user.login,
                    superuser: user.superuser,
                    blocked: user.blocked,
                    role_ids,
                })))
            })
            .await
    }

    /// Drops a user's entry (after a local change).
    pub fn forget_user(&self, user_id: &str) {
        self.users.invalidate(user_id);
    }

    /// Drops every user's entry and marks the role definitions stale (after a feed lag
    /// that may have lost entries).
    pub fn forget_everything(&self) {
        self.users.invalidate_all();
        self.roles_stale.store(true, Ordering::SeqCst);
    }

    /// Role names of a user: `user` first, then assigned roles by name.
    pub fn role_names(&self, user: &UserAuthz) -> Vec<String> {
        let table = self.table();
        let mut names: Vec<String> = user
            .role_ids
            .iter()
            .filter_map(|id| table.by_id.get(id))
            .map(|r| r.name.clone())
            .filter(|n| n != USER)
            .collect();
        names.sort();
        names.insert(0, USER.to_owned());
        names
    }

    /// True when the user holds `permission` now (superusers hold everything; every user
    /// also holds what `user` and `anonymous` hold).
    pub fn user_allows(&self, user: &UserAuthz, permission: &str) -> bool {
        if user.superuser {
            return true;
        }
        let table = self.table();
        table.user.contains(permission)
            || table.anonymous.contains(permission)
            || user
                .role_ids
                .iter()
                .filter_map(|id| table.by_id.get(id))
                .any(|r| r.permissions.contains(permission))
    }

    /// True when a request without a token may do `permission`.
    pub fn anonymous_allows(&self, permission: &str) -> bool {
        self.table().anonymous.contains(permission)
    }

    /// The role with this id, as held in memory.
    pub fn role(&self, id: &str) -> Option<RoleDef> {
        self.table().by_id.get(id).cloned()
    }
}

/// The answer of a permission check.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Decision {
    /// Allowed now.
    pub allowed: bool,
    /// The user id (or the client id of a service token); null for anonymous.
    pub subject: Option<String>,
    /// Role names the decision used.
    pub roles: Vec<String>,
    /// True for a superuser.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub superuser: bool,
}

/// Who is asking: anonymous, a user, or a service client.
enum Subject {
    Anonymous,
    User(Arc<UserAuthz>),
    Client(String),
}

async fn subject(app: &AppState, claims: Option<&AccessClaims>) -> Result<Subject, ServiceError> {
    let Some(claims) = claims else {
        return Ok(Subject::Anonymous);
    };
    if !claims.is_user() {
        return Ok(Subject::Client(claims.client_id.clone()));
    }
    match app.authz.user(app.store.as_ref(), &claims.sub).await? {
        Some(user) if !user.blocked => Ok(Subject::User(user)),
        _ => Err(ServiceError::Unauthenticated(
            super::BearerError::SessionEnded,
        )),
    }
}

/// Checks several permissions for the caller at once (one subject resolution).
pub async fn check_many(
    app: &AppState,
    claims: Option<&AccessClaims>,
    permissions: &[String],
) -> Result<(Vec<bool>, Decision), ServiceError> {
    let subject = subject(app, claims).await?;
    let (results, decision) = match &subject {
        Subject::Anonymous => (
            permissions
                .iter()
                .map(|p| app.authz.anonymous_allows(p))
                .collect(),
            Decision {
                allowed: false,
                subject: None,
                roles: vec![ANONYMOUS.to_owned()],
                superuser: false,
            },
        ),
        Subject::User(user) => (
            permissions
                .iter()
                .map(|p| app.authz.user_allows(user, p))
                .collect(),
            Decision {
                allowed: false,
                subject: Some(user.user_id.clone()),
                roles: app.authz.role_names(user),
                superuser: user.superuser,
            },
        ),
        // A service client holds what anonymous requests hold, nothing more.
        Subject::Client(id) => (
            permissions
                .iter()
                .map(|p| app.authz.anonymous_allows(p))
                .collect(),
            Decision {
                allowed: false,
                subject: Some(id.clone()),
                roles: vec![ANONYMOUS.to_owned()],
                superuser: false,
            },
        ),
    };
    Ok((results, decision))
}

/// Checks one permission for the caller.
pub async fn check(
    app: &AppState,
    claims: Option<&AccessClaims>,
    permission: &str,
) -> Result<Decision, ServiceError> {
    let (results, mut decision) = check_many(app, claims, &[permission.to_owned()]).await?;
    decision.allowed = results[0];
    Ok(decision)
}

/// Lets an admin action through when the caller is a superuser or holds `permission`;
/// 403 otherwise. Service tokens are never admins.
pub async fn require(
    app: &AppState,
    claims: &AccessClaims,
    permission: &'static str,
) -> Result<Arc<UserAuthz>, ServiceError> {
    let forbidden = || {
        ServiceError::forbidden(
            "forbidden",
            format!("this needs the {permission} permission"),
        )
    };
    match subject(app, Some(claims)).await? {
        Subject::User(user) if app.authz.user_allows(&user, permission) => Ok(user),
        _ => Err(forbidden()),
    }
}

/// Lets an administrator hand out, change or take away only what they hold themselves:
/// unless `caller` is a superuser, every one of `permissions` must be allowed to them
/// now, or the answer is 403 `permission_not_held` with `detail`. Without this, a
/// `roles:manage` holder could give themselves any permission through a role.
pub fn require_held<'a>(
    app: &AppState,
    caller: &UserAuthz,
    permissions: impl IntoIterator<Item = &'a String>,
    detail: &'static str,
) -> Result<(), ServiceError> {
    if caller.superuser {
        return Ok(());
    }
    if permissions
        .into_iter()
        .all(|p| app.authz.user_allows(caller, p))
    {
        Ok(())
    } else {
        Err(ServiceError::forbidden("permission_not_held", detail))
    }
}

/// Runs the view's reaction to feed entries and reloads stale definitions; called by
/// the feed task after applying entries.
pub async fn after_changes(app: &AppState) {
    if let Err(e) = app.authz.refresh_if_stale(app.store.as_ref()).await {
        tracing::warn!(error = %e, "cannot reload role definitions");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Permission and role-name grammars accept and refuse what the contract says.
    #[test]
    fn grammars() {
        assert!(check_permission("p", "films:watch_recent").is_none());
        assert!(check_permission("p", "a.b-c_1:x").is_none());
        for bad in [
            "films",
            "films:",
            ":x",
            "a:b:c",
            "Films:watch",
            "films:*",
            "a b:c",
        ] {
            assert!(check_permission("p", bad).is_some(), "{bad}");
        }
        assert!(check_permission("p", &format!("{}:x", "a".repeat(65))).is_some());
        assert!(check_role_name("n", "subscriber").is_none());
        for bad in ["", "Subscriber", "a b", "a:b", &"a".repeat(65)] {
            assert!(check_role_name("n", bad).is_some(), "{bad}");
        }
    }
}
