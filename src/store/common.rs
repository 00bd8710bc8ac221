//! The body of [`super::Store`] shared by both backends. `impl_store!` is expanded once in
//! `sqlite.rs` and once in `postgres.rs`; each of those modules supplies the few
//! non-portable pieces it calls by name: `Db`, `WriteTx` (a write transaction, derefs to
//! the connection), `Self::begin_write`, `Self::write_conn` (a connection for a write
//! outside a transaction), `Self::run_migrations`, `INSERT_SESSION`, `lock_changes` and
//! `map_err`.
//! Every write goes through `begin_write` or `write_conn`, so that on SQLite every
//! writer queues on the store's writer lock.

/// Implements [`super::Store`] for `$name` (a struct with a `pool` field).
macro_rules! impl_store {
    ($name:ident, $backend:literal) => {
        /// Inserts one feed entry inside `tx` (after `lock_changes`, so seq order is commit order).
        async fn insert_change(
            tx: &mut WriteTx,
            kind: &str,
            sid: Option<&str>,
            sub: Option<&str>,
            at: i64,
        ) -> Result<ChangeRecord, StoreError> {
            insert_change_jti(tx, kind, sid, sub, at, None).await
        }

        /// [`insert_change`] with a token id.
        async fn insert_change_jti(
            tx: &mut WriteTx,
            kind: &str,
            sid: Option<&str>,
            sub: Option<&str>,
            at: i64,
            jti: Option<&str>,
        ) -> Result<ChangeRecord, StoreError> {
            lock_changes(tx).await?;
            sqlx::query_as::<_, ChangeRecord>(sql::INSERT_CHANGE)
                .bind(kind)
                .bind(sid)
                .bind(sub)
                .bind(at)
                .bind(jti)
                .fetch_one(&mut **tx)
                .await
                .map_err(map_err)
        }

        /// Loads the permissions of the given role rows.
        fn with_permissions(rows: Vec<RoleRow>, perms: Vec<(String, String)>) -> Vec<RoleRecord> {
            rows.into_iter()
                .map(|r| RoleRecord {
                    permissions: perms
                        .iter()
                        .filter(|(id, _)| *id == r.id)
                        .map(|(_, p)| p.clone())
                        .collect(),
                    id: r.id,
                    name: r.name,
                    description: r.description,
                    builtin: r.builtin,
                    created_at: r.created_at,
                    updated_at: r.updated_at,
                })
                .collect()
        }

        /// Replaces the permissions of `role_id` inside `tx`.
        async fn write_permissions(
            tx: &mut WriteTx,
            role_id: &str,
            permissions: &[String],
        ) -> Result<(), StoreError> {
            sqlx::query(sql::DELETE_ROLE_PERMISSIONS)
                .bind(role_id)
                .execute(&mut **tx)
                .await
                .map_err(map_err)?;
            for p in permissions {
                sqlx::query(sql::INSERT_ROLE_PERMISSION)
                    .bind(role_id)
                    .bind(p)
                    .execute(&mut **tx)
                    .await
                    .map_err(map_err)?;
            }
            Ok(())
        }

        /// Binds every column of a client, in `INSERT_CLIENT` order after the id.
        fn bind_client<'q>(
            q: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>,
            c: &'q ClientRecord,
        ) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>> {
            q.bind(&c.client_id)
                .bind(&c.client_name)
                .bind(&c.secret_hash)
                .bind(&c.token_endpoint_auth_method)
                .bind(&c.grant_types)
                .bind(&c.redirect_uris)
                .bind(&c.post_logout_redirect_uris)
                .bind(&c.scope)
                .bind(c.first_party)
        }

        /// Ends every live session of `user_id` outside the family of `except`, inside `tx`.
        async fn end_sessions_in(
            tx: &mut WriteTx,
            user_id: &str,
            except: Option<&str>,
            reason: &str,
            now: i64,
        ) -> Result<Vec<ChangeRecord>, StoreError> {
            let parent = match except {
                Some(sid) => sqlx::query_as::<_, (Option<String>,)>(sql::SESSION_PARENT)
                    .bind(sid)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(map_err)?
                    .and_then(|(p,)| p),
                None => None,
            };
            let ids: Vec<(String,)> = sqlx::query_as(sql::END_USER_SESSIONS)
                .bind(user_id)
                .bind(except.unwrap_or("!"))
                .bind(now)
                .bind(reason)
                .bind(parent.as_deref().unwrap_or("!"))
                .fetch_all(&mut **tx)
                .await
                .map_err(map_err)?;
            let mut changes = Vec::with_capacity(ids.len());
            for (sid,) in ids {
                changes.push(
                    insert_change(tx, "session_ended", Some(&sid), Some(user_id), now).await?,
                );
            }
            Ok(changes)
        }

        /// Ends the family of `sid` (itself, its parent, its children) inside `tx`.
        async fn end_family_in(
            tx: &mut WriteTx,
            sid: &str,
            reason: &str,
            now: i64,
        ) -> Result<Vec<ChangeRecord>, StoreError> {
            let ended: Vec<(String, String)> = sqlx::query_as(sql::END_SESSION_FAMILY)
                .bind(sid)
                .bind(now)
                .bind(reason)
                .fetch_all(&mut **tx)
                .await
                .map_err(map_err)?;
            let mut changes = Vec::with_capacity(ended.len());
            for (id, user_id) in ended {
                changes.push(
                    insert_change(tx, "session_ended", Some(&id), Some(&user_id), now).await?,
                );
            }
            Ok(changes)
        }

        /// Re-reads, inside `tx`, the user a password login found (see [`LOGIN_USER`]).
        async fn check_login_in(
            tx: &mut WriteTx,
            user_id: &str,
            login: &VerifiedLogin,
        ) -> Result<LoginCheck, StoreError> {
            let row: Option<(bool,)> = sqlx::query_as(LOGIN_USER)
                .bind(user_id)
                .bind(&login.password_hash)
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
            Ok(match row {
                Some((false,)) => LoginCheck::Current,
                Some((true,)) => LoginCheck::Blocked,
                None => LoginCheck::PasswordChanged,
            })
        }

        async fn commit(tx: WriteTx) -> Result<(), StoreError> {
            tx.tx.commit().await.map_err(map_err)
        }

        #[async_trait]
        impl Store for $name {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query(sql::PING)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err(map_err)
            }

            async fn migrate(&self) -> Result<(), StoreError> {
                self.run_migrations().await.map_err(|e| match e {
                    sqlx::migrate::MigrateError::Execute(e) => map_err(e),
                    other => StoreError::Other(other.to_string()),
                })
            }

            async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
                sqlx::query(sql::INSERT_USER)
                    .bind(&user.id)
                    .bind(&user.login)
                    .bind(user.login.to_lowercase())
                    .bind(&user.email)
                    .bind(user.email.as_ref().map(|e| e.to_lowercase()))
                    .bind(&user.password_hash)
                    .bind(user.superuser)
                    .bind(user.blocked)
                    .bind(user.created_at)
                    .bind(user.updated_at)
                    .bind(user.last_login_at)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map(|_| ())
                    .map_err(map_err)
            }

            async fn find_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
                sqlx::query_as::<_, UserRecord>(sql::FIND_USER)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn find_user_by_login(
                &self,
                login: &str,
            ) -> Result<Option<UserRecord>, StoreError> {
                sqlx::query_as::<_, UserRecord>(sql::FIND_USER_BY_LOGIN)
                    .bind(login.to_lowercase())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn update_user_profile(
                &self,
                id: &str,
                login: &str,
                email: Option<&str>,
                now: i64,
            ) -> Result<UserRecord, StoreError> {
                sqlx::query_as::<_, UserRecord>(sql::UPDATE_USER_PROFILE)
                    .bind(id)
                    .bind(login)
                    .bind(login.to_lowercase())
                    .bind(email)
                    .bind(email.map(str::to_lowercase))
                    .bind(now)
                    .fetch_optional(&mut *self.write_conn().await?)
                    .await
                    .map_err(map_err)?
                    .ok_or(StoreError::NotFound)
            }

            async fn set_password(
                &self,
                user_id: &str,
                password_hash: &str,
                keep_sid: Option<&str>,
                now: i64,
            ) -> Result<Vec<ChangeRecord>, StoreError> {
                let mut tx = self.begin_write().await?;
                let updated = sqlx::query(sql::SET_PASSWORD)
                    .bind(user_id)
                    .bind(password_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if updated.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                let changes =
                    end_sessions_in(&mut tx, user_id, keep_sid, "password_change", now).await?;
                commit(tx).await?;
                Ok(changes)
            }

            async fn upsert_superuser(
                &self,
                user: &UserRecord,
                now: i64,
            ) -> Result<(UserRecord, bool, Vec<ChangeRecord>), StoreError> {
                let mut tx = self.begin_write().await?;
                let existing = sqlx::query_as::<_, UserRecord>(sql::FIND_USER_BY_LOGIN)
                    .bind(user.login.to_lowercase())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let result = match existing {
                    Some(found) => {
                        let promoted = sqlx::query_as::<_, UserRecord>(sql::PROMOTE_SUPERUSER)
                            .bind(&found.id)
                            .bind(&user.password_hash)
                            .bind(now)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(map_err)?;
                        let mut changes =
                            end_sessions_in(&mut tx, &found.id, None, "password_change", now)
                                .await?;
                        // Instances that cached the user as an ordinary one must drop it.
                        changes.push(
                            insert_change(&mut tx, "roles_changed", None, Some(&found.id), now)
                                .await?,
                        );
                        (promoted, false, changes)
                    }
                    None => {
                        sqlx::query(sql::INSERT_USER)
                            .bind(&user.id)
                            .bind(&user.login)
                            .bind(user.login.to_lowercase())
                            .bind(&user.email)
                            .bind(user.email.as_ref().map(|e| e.to_lowercase()))
                            .bind(&user.password_hash)
                            .bind(true)
                            .bind(false)
                            .bind(now)
                            .bind(now)
                            .bind(None::<i64>)
                            .execute(&mut *tx)
                            .await
                            .map_err(map_err)?;
                        let mut created = user.clone();
                        created.superuser = true;
                        (created, true, Vec::new())
                    }
                };
                commit(tx).await?;
                Ok(result)
            }

            async fn find_client(
                &self,
                client_id: &str,
            ) -> Result<Option<ClientRecord>, StoreError> {
                sqlx::query_as::<_, ClientRecord>(sql::FIND_CLIENT)
                    .bind(client_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn start_session(
                &self,
                session: &SessionRecord,
                refresh: Option<&RefreshTokenRecord>,
                login: Option<&VerifiedLogin>,
            ) -> Result<LoginCheck, StoreError> {
                let mut tx = self.begin_write().await?;
                if let Some(login) = login {
                    let check = check_login_in(&mut tx, &session.user_id, login).await?;
                    if check != LoginCheck::Current {
                        return Ok(check);
                    }
                }
                sqlx::query(INSERT_SESSION)
                    .bind(&session.id)
                    .bind(&session.user_id)
                    .bind(&session.client_id)
                    .bind(&session.scope)
                    .bind(session.started_at)
                    .bind(session.last_used_at)
                    .bind(session.auth_time)
                    .bind(session.expires_at)
                    .bind(&session.ip)
                    .bind(&session.user_agent)
                    .bind(&session.parent_sid)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if let Some(refresh) = refresh {
                    sqlx::query(sql::INSERT_REFRESH)
                        .bind(&refresh.token_hash)
                        .bind(&session.id)
                        .bind(&refresh.client_id)
                        .bind(refresh.created_at)
                        .bind(refresh.expires_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                if let Some(login) = login {
                    insert_event(&mut *tx, &login.event).await?;
                    sqlx::query(sql::TOUCH_LAST_LOGIN)
                        .bind(&session.user_id)
                        .bind(login.event.at)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                }
                commit(tx).await?;
                Ok(LoginCheck::Current)
            }

            async fn reauthenticate_session(
                &self,
                sid: &str,
                expires_at: i64,
                login: &VerifiedLogin,
            ) -> Result<Option<SessionRecord>, StoreError> {
                let event = &login.event;
                let mut tx = self.begin_write().await?;
                if check_login_in(&mut tx, &event.user_id, login).await? != LoginCheck::Current {
                    return Ok(None);
                }
                let session = sqlx::query_as::<_, SessionRecord>(sql::REAUTHENTICATE_SESSION)
                    .bind(sid)
                    .bind(event.at)
                    .bind(expires_at)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let Some(session) = session else {
                    return Ok(None);
                };
                insert_event(&mut *tx, event).await?;
                sqlx::query(sql::TOUCH_LAST_LOGIN)
                    .bind(&session.user_id)
                    .bind(event.at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                commit(tx).await?;
                Ok(Some(session))
            }

            async fn rotate_refresh_token(
                &self,
                presented: &str,
                client_id: &str,
                next: &RefreshTokenRecord,
                now: i64,
            ) -> Result<Rotation, StoreError> {
                if let Some(row) = self.rotate_fast(presented, client_id, next, now).await? {
                    let (session, user) = row.split();
                    return Ok(Rotation::Rotated { session, user });
                }
                // Not rotated: find out why (reuse ends the session) in a transaction of
                // its own. If the token turned live in between, it is rotated here.
                let mut tx = self.begin_write().await?;
                let marked: Option<(String,)> = sqlx::query_as(sql::MARK_REFRESH_USED)
                    .bind(presented)
                    .bind(client_id)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let Some((sid,)) = marked else {
                    // Lost the race, reused, expired, foreign or unknown.
                    let found = sqlx::query_as::<_, RefreshTokenRecord>(sql::FIND_REFRESH)
                        .bind(presented)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    return match found {
                        Some(rt) if rt.client_id == client_id && rt.used_at.is_some() => {
                            let session = sqlx::query_as::<_, SessionRecord>(sql::FIND_SESSION)
                                .bind(&rt.session_id)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(map_err)?;
                            let mut ended = Vec::new();
                            if let Some(s) = session.filter(|s| s.ended_at.is_none()) {
                                ended = end_family_in(&mut tx, &s.id, "refresh_token_reuse", now)
                                    .await?;
                            }
                            commit(tx).await?;
                            Ok(Rotation::Reused { ended })
                        }
                        _ => Ok(Rotation::Invalid),
                    };
                };
                let row = sqlx::query_as::<_, SessionUserRow>(sql::FIND_SESSION_WITH_USER)
                    .bind(&sid)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let Some((mut session, user)) = row.map(SessionUserRow::split) else {
                    return Ok(Rotation::Invalid);
                };
                if session.ended_at.is_some() || user.blocked {
                    return Ok(Rotation::Invalid);
                }
                sqlx::query(sql::INSERT_REFRESH)
                    .bind(&next.token_hash)
                    .bind(&sid)
                    .bind(client_id)
                    .bind(next.created_at)
                    .bind(next.expires_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query(sql::TOUCH_SESSION)
                    .bind(&sid)
                    .bind(now)
                    .bind(next.expires_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                commit(tx).await?;
                session.last_used_at = now;
                session.expires_at = next.expires_at;
                Ok(Rotation::Rotated { session, user })
            }

            async fn find_refresh_session(
                &self,
                token_hash: &str,
            ) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_as::<_, RefreshTokenRecord>(sql::FIND_REFRESH)
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?
                    .map(|r| r.session_id))
            }

            async fn find_session(&self, sid: &str) -> Result<Option<SessionRecord>, StoreError> {
                sqlx::query_as::<_, SessionRecord>(sql::FIND_SESSION)
                    .bind(sid)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn list_active_sessions(
                &self,
                user_id: &str,
                now: i64,
            ) -> Result<Vec<SessionRecord>, StoreError> {
                sqlx::query_as::<_, SessionRecord>(sql::LIST_ACTIVE_SESSIONS)
                    .bind(user_id)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn end_session(
                &self,
                sid: &str,
                user_id: &str,
                reason: &str,
                now: i64,
            ) -> Result<Vec<ChangeRecord>, StoreError> {
                let mut tx = self.begin_write().await?;
                let owner: Option<(String,)> = sqlx::query_as(sql::LIVE_SESSION_OWNER)
                    .bind(sid)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if owner.is_none_or(|(owner,)| owner != user_id) {
                    return Ok(Vec::new());
                }
                let changes = end_family_in(&mut tx, sid, reason, now).await?;
                commit(tx).await?;
                Ok(changes)
            }

            async fn end_user_sessions(
                &self,
                user_id: &str,
                except: Option<&str>,
                reason: &str,
                now: i64,
            ) -> Result<Vec<ChangeRecord>, StoreError> {
                let mut tx = self.begin_write().await?;
                let changes = end_sessions_in(&mut tx, user_id, except, reason, now).await?;
                commit(tx).await?;
                Ok(changes)
            }

            async fn record_login_event(&self, event: &NewLoginEvent) -> Result<(), StoreError> {
                let mut conn = self.write_conn().await?;
                insert_event(&mut *conn, event).await
            }

            async fn list_login_events(
                &self,
                user_id: &str,
                before: Option<i64>,
                limit: i64,
            ) -> Result<Vec<LoginEventRecord>, StoreError> {
                sqlx::query_as::<_, LoginEventRecord>(sql::LIST_LOGIN_EVENTS)
                    .bind(user_id)
                    .bind(before.unwrap_or(i64::MAX))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn changes_after(
                &self,
                after: i64,
                limit: i64,
            ) -> Result<Vec<ChangeRecord>, StoreError> {
                sqlx::query_as::<_, ChangeRecord>(sql::CHANGES_AFTER)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn changes_since(&self, since: i64) -> Result<Vec<ChangeRecord>, StoreError> {
                sqlx::query_as::<_, ChangeRecord>(sql::CHANGES_SINCE)
                    .bind(since)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn change_seq_high_water(&self) -> Result<i64, StoreError> {
                let (seq,): (i64,) = sqlx::query_as(CHANGE_SEQ_HIGH_WATER)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(seq)
            }

            async fn feed_epoch(&self, candidate: &str) -> Result<String, StoreError> {
                sqlx::query(sql::INSERT_FEED_EPOCH)
                    .bind(candidate)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                let (epoch,): (String,) = sqlx::query_as(sql::FEED_EPOCH)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(epoch)
            }

            async fn last_change_seq(&self) -> Result<i64, StoreError> {
                let (seq,): (i64,) = sqlx::query_as(sql::LAST_CHANGE_SEQ)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(seq)
            }

            async fn list_roles(&self) -> Result<Vec<RoleRecord>, StoreError> {
                let rows = sqlx::query_as::<_, RoleRow>(sql::LIST_ROLES)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
                let perms: Vec<(String, String)> = sqlx::query_as(sql::LIST_ROLE_PERMISSIONS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(with_permissions(rows, perms))
            }

            async fn find_role(&self, id: &str) -> Result<Option<RoleRecord>, StoreError> {
                let Some(row) = sqlx::query_as::<_, RoleRow>(sql::FIND_ROLE)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?
                else {
                    return Ok(None);
                };
                let perms: Vec<(String, String)> = sqlx::query_as(sql::FIND_ROLE_PERMISSIONS)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(with_permissions(vec![row], perms).pop())
            }

            async fn insert_role(&self, role: &RoleRecord) -> Result<ChangeRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(sql::INSERT_ROLE)
                    .bind(&role.id)
                    .bind(&role.name)
                    .bind(&role.description)
                    .bind(role.builtin)
                    .bind(role.created_at)
                    .bind(role.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                write_permissions(&mut tx, &role.id, &role.permissions).await?;
                let change =
                    insert_change(&mut tx, "role_created", None, None, role.updated_at).await?;
                commit(tx).await?;
                Ok(change)
            }

            async fn update_role(
                &self,
                id: &str,
                change: &RoleChange,
                now: i64,
            ) -> Result<(RoleRecord, ChangeRecord), StoreError> {
                let mut tx = self.begin_write().await?;
                // The update locks the row first: a concurrent change of the same role
                // waits for this transaction, so its permissions are written after ours.
                let row = sqlx::query_as::<_, RoleRow>(sql::UPDATE_ROLE)
                    .bind(id)
                    .bind(&change.name)
                    .bind(&change.description)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .ok_or(StoreError::NotFound)?;
                if let Some(permissions) = &change.permissions {
                    write_permissions(&mut tx, id, permissions).await?;
                }
                let perms: Vec<(String, String)> = sqlx::query_as(sql::FIND_ROLE_PERMISSIONS)
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let entry = insert_change(&mut tx, "roles_changed", None, None, now).await?;
                commit(tx).await?;
                let role = with_permissions(vec![row], perms)
                    .pop()
                    .ok_or(StoreError::NotFound)?;
                Ok((role, entry))
            }

            async fn delete_role(
                &self,
                id: &str,
                now: i64,
            ) -> Result<Option<ChangeRecord>, StoreError> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(sql::DELETE_ROLE)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                let change = insert_change(&mut tx, "roles_changed", None, None, now).await?;
                commit(tx).await?;
                Ok(Some(change))
            }

            async fn user_role_ids(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
                let rows: Vec<(String,)> = sqlx::query_as(sql::USER_ROLE_IDS)
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            async fn assign_role(
                &self,
                user_id: &str,
                role_id: &str,
                now: i64,
            ) -> Result<ChangeRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                for (sql_text, id) in [(sql::EXISTS_USER, user_id), (sql::EXISTS_ROLE, role_id)] {
                    let found: Option<(String,)> = sqlx::query_as(sql_text)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    if found.is_none() {
                        return Err(StoreError::NotFound);
                    }
                }
                sqlx::query(sql::ASSIGN_ROLE)
                    .bind(user_id)
                    .bind(role_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let change =
                    insert_change(&mut tx, "roles_changed", None, Some(user_id), now).await?;
                commit(tx).await?;
                Ok(change)
            }

            async fn unassign_role(
                &self,
                user_id: &str,
                role_id: &str,
                now: i64,
            ) -> Result<ChangeRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(sql::UNASSIGN_ROLE)
                    .bind(user_id)
                    .bind(role_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let change =
                    insert_change(&mut tx, "roles_changed", None, Some(user_id), now).await?;
                commit(tx).await?;
                Ok(change)
            }

            async fn list_users(
                &self,
                prefix: &str,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<UserRecord>, StoreError> {
                let prefix = prefix.to_lowercase();
                // Every login key starting with `prefix` sorts below `prefix` + U+10FFFF.
                let upper = format!("{prefix}\u{10FFFF}");
                sqlx::query_as::<_, UserRecord>(sql::LIST_USERS)
                    .bind(&prefix)
                    .bind(&upper)
                    .bind(after.unwrap_or(""))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn set_blocked(
                &self,
                user_id: &str,
                blocked: bool,
                now: i64,
            ) -> Result<BlockOutcome, StoreError> {
                let mut tx = self.begin_write().await?;
                let updated = sqlx::query_as::<_, UserRecord>(sql::SET_BLOCKED)
                    .bind(user_id)
                    .bind(blocked)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let Some(user) = updated else {
                    // No row changed: an unknown user, or a superuser (not blocked).
                    let exists = sqlx::query_as::<_, UserRecord>(sql::FIND_USER)
                        .bind(user_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    return match exists {
                        Some(_) => Ok(BlockOutcome::SuperuserProtected),
                        None => Err(StoreError::NotFound),
                    };
                };
                let mut changes = Vec::new();
                if blocked {
                    let ids: Vec<(String,)> = sqlx::query_as(sql::END_ALL_USER_SESSIONS)
                        .bind(user_id)
                        .bind(now)
                        .bind("blocked")
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    for (sid,) in ids {
                        changes.push(
                            insert_change(&mut tx, "session_ended", Some(&sid), Some(user_id), now)
                                .await?,
                        );
                    }
                }
                changes
                    .push(insert_change(&mut tx, "roles_changed", None, Some(user_id), now).await?);
                commit(tx).await?;
                Ok(BlockOutcome::Set(user, changes))
            }

            async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
                sqlx::query_as::<_, ClientRecord>(sql::LIST_CLIENTS)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
                bind_client(sqlx::query(sql::INSERT_CLIENT), client)
                    .bind(client.builtin)
                    .bind(client.created_at)
                    .bind(client.updated_at)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map(|_| ())
                    .map_err(map_err)
            }

            async fn update_client(
                &self,
                client: &ClientRecord,
            ) -> Result<ChangeRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                let done = bind_client(sqlx::query(sql::UPDATE_CLIENT), client)
                    .bind(client.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                let change = insert_change(
                    &mut tx,
                    "client_changed",
                    None,
                    Some(&client.client_id),
                    client.updated_at,
                )
                .await?;
                commit(tx).await?;
                Ok(change)
            }

            async fn delete_client(
                &self,
                client_id: &str,
                now: i64,
            ) -> Result<Option<Vec<ChangeRecord>>, StoreError> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(sql::DELETE_CLIENT)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                let ended: Vec<(String, String)> = sqlx::query_as(sql::END_CLIENT_SESSIONS)
                    .bind(client_id)
                    .bind(now)
                    .bind("client_deleted")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let mut changes = Vec::with_capacity(ended.len() + 1);
                for (sid, user_id) in ended {
                    changes.push(
                        insert_change(&mut tx, "session_ended", Some(&sid), Some(&user_id), now)
                            .await?,
                    );
                }
                changes.push(
                    insert_change(&mut tx, "client_deleted", None, Some(client_id), now).await?,
                );
                commit(tx).await?;
                Ok(Some(changes))
            }

            async fn revoke_jti(
                &self,
                jti: &str,
                client_id: &str,
                now: i64,
            ) -> Result<ChangeRecord, StoreError> {
                let mut tx = self.begin_write().await?;
                let change = insert_change_jti(
                    &mut tx,
                    "token_revoked",
                    None,
                    Some(client_id),
                    now,
                    Some(jti),
                )
                .await?;
                commit(tx).await?;
                Ok(change)
            }

            async fn end_session_by_id(
                &self,
                sid: &str,
                reason: &str,
                now: i64,
            ) -> Result<Vec<ChangeRecord>, StoreError> {
                let mut tx = self.begin_write().await?;
                let changes = end_family_in(&mut tx, sid, reason, now).await?;
                commit(tx).await?;
                Ok(changes)
            }

            async fn end_session_and_children(
                &self,
                sid: &str,
                reason: &str,
                now: i64,
            ) -> Result<Vec<ChangeRecord>, StoreError> {
                let mut tx = self.begin_write().await?;
                let ended: Vec<(String, String)> = sqlx::query_as(sql::END_SESSION_AND_CHILDREN)
                    .bind(sid)
                    .bind(now)
                    .bind(reason)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let mut changes = Vec::with_capacity(ended.len());
                for (id, user_id) in ended {
                    changes.push(
                        insert_change(&mut tx, "session_ended", Some(&id), Some(&user_id), now)
                            .await?,
                    );
                }
                commit(tx).await?;
                Ok(changes)
            }

            async fn save_browser_session(
                &self,
                id: &str,
                data: &str,
                expires_at: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(sql::UPSERT_BROWSER_SESSION)
                    .bind(id)
                    .bind(data)
                    .bind(expires_at)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map(|_| ())
                    .map_err(map_err)
            }

            async fn create_browser_session(
                &self,
                id: &str,
                data: &str,
                expires_at: i64,
            ) -> Result<bool, StoreError> {
                sqlx::query(sql::INSERT_BROWSER_SESSION)
                    .bind(id)
                    .bind(data)
                    .bind(expires_at)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map(|r| r.rows_affected() == 1)
                    .map_err(map_err)
            }

            async fn load_browser_session(
                &self,
                id: &str,
                now: i64,
            ) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_as::<_, (String,)>(sql::LOAD_BROWSER_SESSION)
                    .bind(id)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?
                    .map(|(d,)| d))
            }

            async fn delete_browser_session(&self, id: &str) -> Result<(), StoreError> {
                sqlx::query(sql::DELETE_BROWSER_SESSION)
                    .bind(id)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map(|_| ())
                    .map_err(map_err)
            }

            async fn find_consent(
                &self,
                user_id: &str,
                client_id: &str,
            ) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_as::<_, (String,)>(sql::FIND_CONSENT)
                    .bind(user_id)
                    .bind(client_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?
                    .map(|(s,)| s))
            }

            async fn save_consent(
                &self,
                user_id: &str,
                client_id: &str,
                scope: &str,
                now: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(sql::UPSERT_CONSENT)
                    .bind(user_id)
                    .bind(client_id)
                    .bind(scope)
                    .bind(now)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map(|_| ())
                    .map_err(map_err)
            }

            async fn list_consents(
                &self,
                user_id: &str,
            ) -> Result<Vec<(String, String, i64)>, StoreError> {
                sqlx::query_as(sql::LIST_CONSENTS)
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn delete_consent(
                &self,
                user_id: &str,
                client_id: &str,
                reason: &str,
                now: i64,
            ) -> Result<Vec<ChangeRecord>, StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(sql::DELETE_CONSENT)
                    .bind(user_id)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let ended: Vec<(String,)> = sqlx::query_as(sql::END_USER_CLIENT_SESSIONS)
                    .bind(user_id)
                    .bind(client_id)
                    .bind(now)
                    .bind(reason)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let mut changes = Vec::with_capacity(ended.len());
                for (sid,) in ended {
                    changes.push(
                        insert_change(&mut tx, "session_ended", Some(&sid), Some(user_id), now)
                            .await?,
                    );
                }
                commit(tx).await?;
                Ok(changes)
            }

            async fn find_refresh(
                &self,
                token_hash: &str,
            ) -> Result<Option<RefreshTokenRecord>, StoreError> {
                sqlx::query_as::<_, RefreshTokenRecord>(sql::FIND_REFRESH)
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)
            }

            async fn prune(&self, now: i64, changes_before: i64) -> Result<(), StoreError> {
                sqlx::query(sql::PRUNE_REFRESH)
                    .bind(now)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err(map_err)?;
                sqlx::query(sql::PRUNE_CHANGES)
                    .bind(changes_before)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err(map_err)?;
                sqlx::query(sql::PRUNE_BROWSER_SESSIONS)
                    .bind(now)
                    .execute(&mut *self.write_conn().await?)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }
        }

        async fn insert_event(
            conn: &mut <Db as sqlx::Database>::Connection,
            event: &NewLoginEvent,
        ) -> Result<(), StoreError> {
            sqlx::query(sql::INSERT_LOGIN_EVENT)
                .bind(&event.user_id)
                .bind(event.at)
                .bind(&event.ip)
                .bind(&event.user_agent)
                .bind(event.method)
                .bind(event.outcome)
                .execute(conn)
                .await
                .map(|_| ())
                .map_err(map_err)
        }
    };
}
