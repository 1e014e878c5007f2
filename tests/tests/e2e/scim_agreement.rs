//! The two SCIM filter back ends agree on real Postgres: for generated Users stored
//! the way the worker stores them, and generated filters, the SQL translation
//! (`filter_sql::to_sql`, bound as the worker binds it) selects exactly the users
//! whose rendered JSON the in-memory evaluator (`filter_eval::matches`) accepts.
//!
//! `GET /Users?filter=` answers with the SQL; PATCH paths and every other in-memory
//! use answer with the evaluator. A disagreement is a user who is listed but does not
//! match, or who matches but is never listed.
//!
//! One workspace (with the generator's role and group ids) is made once. Each
//! proptest case stores ~30 users in a transaction, compares a few filters and rolls
//! back, so cases never see each other's users.

use std::cell::Cell;
use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;

use closedloop_tests::harness::{fresh_database, pg_connect};
use proptest::collection::vec;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use region_worker::routes::scim::io::etag;
use region_worker::store::users::{UserColumns, bind};
use serde_json::{Map, Value, json};
use shared::ids::TeamId;
use shared::scim::definitions::{GROUP_URN, USER, USER_URN};
use shared::scim::filter::Filter;
use shared::scim::filter_eval::matches;
use shared::scim::filter_sql::{SqlFilter, USERS, to_sql};
use shared::scim::testing::{UUIDS, filter_text, user, user_row};
use shared::scim::value::canonicalize_resource;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// Proptest cases, each a fresh population of users.
const CASES: u32 = 64;
/// Users generated per case (a few are refused, as the worker would refuse them).
const USERS_PER_CASE: usize = 30;
/// Filters compared per case.
const FILTERS_PER_CASE: usize = 4;
/// Fixed so the suite is deterministic; change it locally to explore other cases.
const SEED: u64 = 0x5c1a_a9ee;

/// The workspace's roles, given the generator's ids so `roles[value eq …]` can hit.
const ROLE_KEYS: [&str; 3] = ["admin", "member", "viewer"];

/// Counts over the run, to show the comparisons were not vacuous.
#[derive(Default)]
struct Tally {
    /// Users stored.
    stored: Cell<usize>,
    /// Filters compared on both back ends.
    compared: Cell<usize>,
    /// Compared filters that some, but not all, users of their case matched.
    discriminating: Cell<usize>,
    /// Filters the SQL back end declined (`400`), skipped.
    untranslatable: Cell<usize>,
}

fn bump(c: &Cell<usize>) {
    c.set(c.get() + 1);
}

fn fail(what: &str, e: impl std::fmt::Debug) -> TestCaseError {
    TestCaseError::fail(format!("{what}: {e:?}"))
}

#[test]
fn filter_sql_selects_what_filter_eval_matches() {
    // Proptest calls the case synchronously; each case blocks on its database work.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (client, team) = rt.block_on(async {
        let db = fresh_database().await.expect("fresh database");
        let client = pg_connect(&db.url).await.expect("connect");
        let team = new_workspace(&client).await.expect("workspace");
        (client, team)
    });
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(SEED),
        // Every shrink step stores a population again; bound the time a failure takes.
        max_shrink_iters: 128,
        ..Config::default()
    });
    let tally = Tally::default();
    let strategy = (
        vec(user(), USERS_PER_CASE),
        vec(filter_text(), FILTERS_PER_CASE),
    );
    let result = runner.run(&strategy, |(generated, filters)| {
        rt.block_on(async {
            client
                .batch_execute("BEGIN")
                .await
                .map_err(|e| fail("BEGIN", e))?;
            let outcome = check_case(&client, team, &generated, &filters, &tally).await;
            // Nothing a case stored outlives it, whatever happened.
            client
                .batch_execute("ROLLBACK")
                .await
                .map_err(|e| fail("ROLLBACK", e))?;
            outcome
        })
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, (generated, filters))) => panic!(
            "{reason}\nminimal case: {} generated users, filters {filters:#?}",
            generated.len()
        ),
        Err(TestError::Abort(reason)) => panic!("aborted: {reason}"),
    }
    eprintln!(
        "scim_agreement: {CASES} cases, {} users stored, {} filters compared ({} discriminating), {} untranslatable",
        tally.stored.get(),
        tally.compared.get(),
        tally.discriminating.get(),
        tally.untranslatable.get(),
    );
    // Guards against a generator or set-up change that makes the test vacuous: most
    // filters must translate, and many must tell the users of their case apart.
    let generated = CASES as usize * FILTERS_PER_CASE;
    assert!(
        tally.compared.get() * 10 >= generated * 9,
        "only {} of {generated} filters compared",
        tally.compared.get()
    );
    assert!(
        tally.discriminating.get() * 3 >= tally.compared.get(),
        "only {} of {} filters told users apart",
        tally.discriminating.get(),
        tally.compared.get()
    );
}

/// Stores `generated`, then compares every filter of `filters` on both back ends.
async fn check_case(
    client: &Client,
    team: TeamId,
    generated: &[Value],
    filters: &[String],
    tally: &Tally,
) -> Result<(), TestCaseError> {
    store(client, team, generated, tally).await?;
    let rendered = rendered_users(client, team).await?;
    for text in filters {
        let filter = Filter::parse(text, &USER)
            .map_err(|e| fail(&format!("the generator's filter {text:?} is refused"), e))?;
        let Ok(sql) = to_sql(&filter, &USERS, "r", 2) else {
            bump(&tally.untranslatable);
            continue;
        };
        let in_db = select_ids(client, team, &sql)
            .await
            .map_err(|e| fail(&format!("filter {text:?} as SQL {}", sql.sql), e))?;
        let in_memory: BTreeSet<Uuid> = rendered
            .iter()
            .filter(|u| matches(&filter, u))
            .map(id_of)
            .collect();
        bump(&tally.compared);
        if !in_memory.is_empty() && in_memory.len() < rendered.len() {
            bump(&tally.discriminating);
        }
        if in_db != in_memory {
            return Err(TestCaseError::fail(disagreement(
                text, &filter, &sql, &rendered, &in_db, &in_memory,
            )));
        }
    }
    Ok(())
}

/// Stores the users as `POST /Users` would (canonical JSON, the worker's extracted
/// columns), with the generated timestamps, roles and group memberships. Users the
/// worker would refuse (a blank `userName`) are skipped. The generator's `userName`s
/// come from a tiny alphabet, so case-insensitive duplicates, which a workspace
/// cannot hold, are common: a duplicate gets a suffix.
async fn store(
    client: &Client,
    team: TeamId,
    generated: &[Value],
    tally: &Tally,
) -> Result<(), TestCaseError> {
    let mut taken = HashSet::new();
    for (i, body) in generated.iter().enumerate() {
        let Ok(mut resource) = canonicalize_resource(body, &USER) else {
            continue;
        };
        let Some(obj) = resource.as_object_mut() else {
            continue;
        };
        // Roles live in `user_roles`, never in `resource` (the worker's `take_roles`).
        obj.remove("roles");
        let Some(mut cols) = UserColumns::of(&resource) else {
            continue;
        };
        if !taken.insert(cols.user_name.to_lowercase()) {
            resource["userName"] = json!(format!("{}~{i}", cols.user_name));
            cols = UserColumns::of(&resource).expect("a longer userName");
        }
        let row = user_row(body);
        let id = user_id(i);
        client
            .execute(
                // The worker's `users::insert`, with the generated timestamps.
                "INSERT INTO users (team_id, id, user_name, external_id, active, email, display_name,
                                    given_name, family_name, resource, source, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'scim',
                         $11::text::timestamptz, $12::text::timestamptz)",
                &[
                    &team.as_uuid(),
                    &id,
                    &cols.user_name,
                    &cols.external_id,
                    &cols.active,
                    &cols.email,
                    &cols.display_name,
                    &cols.given_name,
                    &cols.family_name,
                    &resource,
                    &row.created_at,
                    &row.updated_at,
                ],
            )
            .await
            .map_err(|e| fail("insert user", e))?;
        let (roles, groups) = (parse_ids(&row.role_ids)?, parse_ids(&row.group_ids)?);
        client
            .execute(
                "INSERT INTO user_roles (team_id, user_id, role_id) SELECT $1, $2, unnest($3::uuid[])",
                &[&team.as_uuid(), &id, &roles],
            )
            .await
            .map_err(|e| fail("insert roles", e))?;
        client
            .execute(
                "INSERT INTO group_members (team_id, group_id, user_id) SELECT $1, unnest($3::uuid[]), $2",
                &[&team.as_uuid(), &id, &groups],
            )
            .await
            .map_err(|e| fail("insert memberships", e))?;
        bump(&tally.stored);
    }
    Ok(())
}

/// Distinct per case; the first few are the generator's, so `id eq "…"` can match.
fn user_id(i: usize) -> Uuid {
    match UUIDS.get(i) {
        Some(id) => Uuid::parse_str(id).expect("generator UUID"),
        None => Uuid::from_u128(0x0a1b_2c3d_0000_4000_8000_0000_0000_1000 + i as u128),
    }
}

fn parse_ids(ids: &[String]) -> Result<Vec<Uuid>, TestCaseError> {
    ids.iter()
        .map(|s| Uuid::parse_str(s).map_err(|e| fail(s, e)))
        .collect()
}

/// A workspace with three roles and three groups whose ids are the generator's, so
/// generated `roles` and `groups` can be stored.
async fn new_workspace(client: &Client) -> Result<TeamId, tokio_postgres::Error> {
    let team = TeamId::from(Uuid::new_v4());
    client
        .execute(
            "INSERT INTO workspaces (team_id, name, region) VALUES ($1, 'Agreement', 'us')",
            &[&team.as_uuid()],
        )
        .await?;
    for (key, id) in ROLE_KEYS.iter().zip(UUIDS) {
        let id = Uuid::parse_str(id).expect("generator UUID");
        client
            .execute(
                "INSERT INTO roles (team_id, id, key, display_name, description)
                 VALUES ($1, $2, $3, initcap($3), 'agreement test')",
                &[&team.as_uuid(), &id, key],
            )
            .await?;
    }
    for (n, id) in UUIDS.iter().enumerate() {
        let id = Uuid::parse_str(id).expect("generator UUID");
        let name = format!("Group {n}");
        let resource = json!({ "schemas": [GROUP_URN], "displayName": name });
        client
            .execute(
                "INSERT INTO groups (team_id, id, display_name, resource) VALUES ($1, $2, $3, $4)",
                &[&team.as_uuid(), &id, &name, &resource],
            )
            .await?;
    }
    Ok(team)
}

/// The workspace's users read back and rendered as `GET /Users` renders them: the
/// stored `resource` plus what `routes::scim::users::render` adds (`id`, `active`
/// from its column, `schemas` when missing, `roles`, `groups` and `meta`). Postgres
/// formats the timestamps, in UTC to the microsecond: the instants `render` writes,
/// which is what a filter compares.
async fn rendered_users(client: &Client, team: TeamId) -> Result<Vec<Value>, TestCaseError> {
    const TIME: &str = r#"'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"#;
    let rows = client
        .query(
            &format!(
                "SELECT u.id, u.resource, u.active, u.version,
                        to_char(u.created_at AT TIME ZONE 'UTC', {TIME}),
                        to_char(u.updated_at AT TIME ZONE 'UTC', {TIME}),
                        (SELECT jsonb_agg(jsonb_build_object('value', r.id, 'display', r.display_name)
                                          ORDER BY r.seq)
                           FROM user_roles ur JOIN roles r ON r.team_id = ur.team_id AND r.id = ur.role_id
                          WHERE ur.team_id = u.team_id AND ur.user_id = u.id),
                        (SELECT jsonb_agg(jsonb_build_object('value', g.id, 'display', g.display_name)
                                          ORDER BY g.seq)
                           FROM group_members m JOIN groups g ON g.team_id = m.team_id AND g.id = m.group_id
                          WHERE m.team_id = u.team_id AND m.user_id = u.id)
                   FROM users u WHERE u.team_id = $1 ORDER BY u.seq"
            ),
            &[&team.as_uuid()],
        )
        .await
        .map_err(|e| fail("read users back", e))?;
    let base = format!("https://api.agreement.test/api/scim/v2/{team}");
    Ok(rows
        .iter()
        .map(|row| {
            let id: Uuid = row.get(0);
            let mut v = match row.get::<_, Value>(1) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            v.insert("id".into(), json!(id));
            v.insert("active".into(), json!(row.get::<_, bool>(2)));
            v.entry("schemas").or_insert_with(|| json!([USER_URN]));
            if let Some(roles) = row.get::<_, Option<Value>>(6) {
                v.insert("roles".into(), roles);
            }
            if let Some(Value::Array(mut groups)) = row.get::<_, Option<Value>>(7) {
                for g in &mut groups {
                    let group_id = g["value"].as_str().unwrap_or_default().to_owned();
                    g["$ref"] = json!(format!("{base}/Groups/{group_id}"));
                    g["type"] = json!("direct");
                }
                v.insert("groups".into(), Value::Array(groups));
            }
            v.insert(
                "meta".into(),
                json!({
                    "resourceType": "User",
                    "created": row.get::<_, String>(4),
                    "lastModified": row.get::<_, String>(5),
                    "location": format!("{base}/Users/{id}"),
                    "version": etag(row.get(3)),
                }),
            );
            Value::Object(v)
        })
        .collect())
}

/// The ids the SQL selects, bound exactly as the worker binds a filter.
async fn select_ids(
    client: &Client,
    team: TeamId,
    sql: &SqlFilter,
) -> Result<BTreeSet<Uuid>, tokio_postgres::Error> {
    let team = team.as_uuid();
    let bound = bind(&sql.params);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&team];
    params.extend(bound.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)));
    let query = format!(
        "SELECT r.id FROM users r WHERE r.team_id = $1 AND {}",
        sql.sql
    );
    let rows = client.query(&query, &params).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

fn id_of(rendered: &Value) -> Uuid {
    rendered["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .expect("rendered with its id")
}

/// Everything needed to reproduce a disagreement by hand.
fn disagreement(
    text: &str,
    filter: &Filter,
    sql: &SqlFilter,
    rendered: &[Value],
    in_db: &BTreeSet<Uuid>,
    in_memory: &BTreeSet<Uuid>,
) -> String {
    let mut out = format!(
        "the back ends disagree\n  filter:    {text}\n  canonical: {filter}\n  sql:       {}\n  params:    {:?}\n",
        sql.sql, sql.params
    );
    for u in rendered {
        let id = id_of(u);
        if in_db.contains(&id) != in_memory.contains(&id) {
            let _ = writeln!(
                out,
                "  selected by SQL: {}, matched in memory: {}\n    {u}",
                in_db.contains(&id),
                in_memory.contains(&id)
            );
        }
    }
    out
}
