//! Role administration: role CRUD and assigning roles to users. Built-in roles
//! (`anonymous`, `user`) can be edited but never renamed or deleted. Every change is
//! written to the database, then published on the change feed so every instance's
//! permission check answers from it within a second.

use serde::Serialize;

use super::authz::{self, USER, UserAuthz};
use super::{FieldError, ServiceError, feed};
use crate::AppState;
use crate::clock::rfc3339;
use crate::store::{RoleChange, RoleRecord, StoreError};

/// Longest role description.
const MAX_DESCRIPTION: usize = 1024;
/// Most permissions on one role.
const MAX_PERMISSIONS: usize = 256;

/// A role as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RoleView {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Permissions, sorted.
    pub permissions: Vec<String>,
    /// Built in: never renamed or deleted.
    pub builtin: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl RoleView {
    fn of(r: RoleRecord) -> Self {
        Self {
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            id: r.id,
            name: r.name,
            description: r.description,
            permissions: r.permissions,
            builtin: r.builtin,
        }
    }
}

/// A role create or change; `None` keeps the current value.
#[derive(Debug, Default)]
pub struct RoleInput {
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Permissions (the whole set).
    pub permissions: Option<Vec<String>>,
}

/// The rule errors of a role input.
pub fn check_role_input(input: &RoleInput) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(name) = &input.name {
        errors.extend(authz::check_role_name("name", name));
    }
    if let Some(d) = &input.description
        && d.chars().count() > MAX_DESCRIPTION
    {
        errors.push(FieldError::new(
            "description",
            "too_long",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    if let Some(perms) = &input.permissions {
        if perms.len() > MAX_PERMISSIONS {
            errors.push(FieldError::new(
                "permissions",
                "too_long",
                format!("at most {MAX_PERMISSIONS} permissions"),
            ));
        }
        for (i, p) in perms.iter().enumerate() {
            errors.extend(authz::check_permission(&format!("permissions[{i}]"), p));
        }
    }
    errors
}

fn normalized(perms: Vec<String>) -> Vec<String> {
    let mut perms = perms;
    perms.sort();
    perms.dedup();
    perms
}

/// 403 when a role's permissions go beyond what its creator or editor holds.
const GRANT_NOT_HELD: &str = "a role can only be given permissions that you hold";
/// 403 when a role holding more than the caller holds is assigned, taken away, deleted,
/// renamed or given other permissions.
const ROLE_NOT_HELD: &str = "this role holds a permission that you do not hold";

/// 404 `role_not_found`.
pub fn role_not_found() -> ServiceError {
    ServiceError::not_found("role_not_found", "no role with this id")
}

fn name_taken(e: StoreError) -> ServiceError {
    match e {
        StoreError::Conflict { .. } => {
            ServiceError::conflict("role_name_taken", "a role with this name exists")
        }
        other => other.into(),
    }
}

/// Every role.
pub async fn list(app: &AppState) -> Result<Vec<RoleView>, ServiceError> {
    Ok(app
        .store
        .list_roles()
        .await?
        .into_iter()
        .map(RoleView::of)
        .collect())
}

/// One role.
pub async fn get(app: &AppState, id: &str) -> Result<RoleView, ServiceError> {
    app.store
        .find_role(id)
        .await?
        .map(RoleView::of)
        .ok_or_else(role_not_found)
}

/// Creates a role. 409 `role_name_taken`; 403 `permission_not_held` when the caller,
/// not a superuser, lacks one of its permissions.
pub async fn create(
    app: &AppState,
    caller: &UserAuthz,
    input: RoleInput,
) -> Result<RoleView, ServiceError> {
    let mut errors = check_role_input(&input);
    if input.name.is_none() {
        errors.insert(0, FieldError::new("name", "required", "is required"));
    }
    if input.permissions.is_none() {
        errors.push(FieldError::new("permissions", "required", "is required"));
    }
    if !errors.is_empty() {
        return Err(ServiceError::Validation(errors));
    }
    authz::require_held(
        app,
        caller,
        input.permissions.iter().flatten(),
        GRANT_NOT_HELD,
    )?;
    let now = app.clock.now();
    let role = RoleRecord {
        id: uuid::Uuid::new_v4().to_string(),
        name: input.name.unwrap_or_default(),
        description: input.description.unwrap_or_default(),
        builtin: false,
        permissions: normalized(input.permissions.unwrap_or_default()),
        created_at: now,
        updated_at: now,
    };
    let change = app.store.insert_role(&role).await.map_err(name_taken)?;
    feed::publish(app, std::slice::from_ref(&change)).await;
    tracing::info!(role = %role.name, "role created");
    Ok(RoleView::of(role))
}

/// Changes the supplied members of a role. Renaming a built-in role is 409
/// `builtin_role`. Unless the caller is the superuser, changing the name or the
/// permissions of a role that holds a permission the caller lacks, or giving it one, is
/// 403 `permission_not_held`: otherwise a role admin could strip a role they could not
/// grant, or free its name (which offline verifiers trust) for a role of their own. The
/// description alone may always be changed.
pub async fn update(
    app: &AppState,
    caller: &UserAuthz,
    id: &str,
    input: RoleInput,
) -> Result<RoleView, ServiceError> {
    let errors = check_role_input(&input);
    if !errors.is_empty() {
        return Err(ServiceError::Validation(errors));
    }
    // The built-in flag, the name and the permissions held now are read here; a
    // concurrent change was itself checked against its author's permissions.
    let current = app.store.find_role(id).await?.ok_or_else(role_not_found)?;
    if let Some(name) = &input.name
        && current.builtin
        && *name != current.name
    {
        return Err(ServiceError::conflict(
            "builtin_role",
            "a built-in role cannot be renamed",
        ));
    }
    authz::require_held(
        app,
        caller,
        input.permissions.iter().flatten(),
        GRANT_NOT_HELD,
    )?;
    if input.permissions.is_some() || input.name.as_ref().is_some_and(|n| *n != current.name) {
        authz::require_held(app, caller, &current.permissions, ROLE_NOT_HELD)?;
    }
    let change = RoleChange {
        name: input.name,
        description: input.description,
        permissions: input.permissions.map(normalized),
    };
    let (role, entry) = app
        .store
        .update_role(id, &change, app.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => role_not_found(),
            other => name_taken(other),
        })?;
    feed::publish(app, std::slice::from_ref(&entry)).await;
    tracing::info!(role = %role.name, "role updated");
    Ok(RoleView::of(role))
}

/// Deletes a role and removes it from every user. 409 `builtin_role`; 403
/// `permission_not_held` when it holds a permission the caller (not a superuser) lacks
/// (deleting takes it away from every holder).
pub async fn delete(app: &AppState, caller: &UserAuthz, id: &str) -> Result<(), ServiceError> {
    let role = app.store.find_role(id).await?.ok_or_else(role_not_found)?;
    if role.builtin {
        return Err(ServiceError::conflict(
            "builtin_role",
            "a built-in role cannot be deleted",
        ));
    }
    authz::require_held(app, caller, &role.permissions, ROLE_NOT_HELD)?;
    let change = app
        .store
        .delete_role(id, app.clock.now())
        .await?
        .ok_or_else(role_not_found)?;
    feed::publish(app, std::slice::from_ref(&change)).await;
    tracing::info!(role = %role.name, "role deleted");
    Ok(())
}

/// One role of a user's list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserRoleView {
    /// Role id.
    pub id: String,
    /// Role name.
    pub name: String,
    /// True for `user`, held by every user without assignment.
    pub implicit: bool,
}

/// 404 `user_not_found`.
pub fn user_not_found() -> ServiceError {
    ServiceError::not_found("user_not_found", "no user with this id")
}

/// A user's roles: the implicit `user` first, then the assigned ones by name.
pub async fn user_roles(app: &AppState, user_id: &str) -> Result<Vec<UserRoleView>, ServiceError> {
    app.store
        .find_user(user_id)
        .await?
        .ok_or_else(user_not_found)?;
    let roles = app.store.list_roles().await?;
    let assigned = app.store.user_role_ids(user_id).await?;
    let mut items: Vec<UserRoleView> = roles
        .iter()
        .filter(|r| r.builtin && r.name == USER)
        .map(|r| UserRoleView {
            id: r.id.clone(),
            name: r.name.clone(),
            implicit: true,
        })
        .collect();
    items.extend(
        roles
            .into_iter()
            .filter(|r| assigned.contains(&r.id) && !(r.builtin && r.name == USER))
            .map(|r| UserRoleView {
                id: r.id,
                name: r.name,
                implicit: false,
            }),
    );
    Ok(items)
}

async fn user_and_role(
    app: &AppState,
    user_id: &str,
    role_id: &str,
) -> Result<RoleRecord, ServiceError> {
    app.store
        .find_user(user_id)
        .await?
        .ok_or_else(user_not_found)?;
    app.store
        .find_role(role_id)
        .await?
        .ok_or_else(role_not_found)
}

/// Assigns a role (idempotent). Assigning `user` changes nothing: every user holds it.
/// 403 `permission_not_held` when the role holds a permission the caller (not a
/// superuser) lacks.
pub async fn assign(
    app: &AppState,
    caller: &UserAuthz,
    user_id: &str,
    role_id: &str,
) -> Result<(), ServiceError> {
    let role = user_and_role(app, user_id, role_id).await?;
    authz::require_held(app, caller, &role.permissions, ROLE_NOT_HELD)?;
    if role.builtin && role.name == USER {
        return Ok(());
    }
    let change = app
        .store
        .assign_role(user_id, role_id, app.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => role_not_found(),
            other => other.into(),
        })?;
    app.authz.forget_user(user_id);
    feed::publish(app, std::slice::from_ref(&change)).await;
    tracing::info!(user_id, role = %role.name, "role assigned");
    Ok(())
}

/// Takes a role away (idempotent). The implicit `user` role cannot be taken away (409).
/// 403 `permission_not_held` when the role holds a permission the caller (not a
/// superuser) lacks.
pub async fn unassign(
    app: &AppState,
    caller: &UserAuthz,
    user_id: &str,
    role_id: &str,
) -> Result<(), ServiceError> {
    let role = user_and_role(app, user_id, role_id).await?;
    if role.builtin && role.name == USER {
        return Err(ServiceError::conflict(
            "builtin_role",
            "every user holds the user role",
        ));
    }
    authz::require_held(app, caller, &role.permissions, ROLE_NOT_HELD)?;
    let change = app
        .store
        .unassign_role(user_id, role_id, app.clock.now())
        .await?;
    app.authz.forget_user(user_id);
    feed::publish(app, std::slice::from_ref(&change)).await;
    tracing::info!(user_id, role = %role.name, "role taken away");
    Ok(())
}
