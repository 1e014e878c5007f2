//! A parsed [`Filter`] translated into a parameterised Postgres `WHERE` fragment, so
//! every filter runs as an indexed query instead of a scan in memory.
//!
//! Safety: values only ever travel as bound parameters (`$n`); every identifier and
//! JSON key in the SQL comes from the static [`TableMapping`] or the static schema
//! definitions the parser resolved names to, never from the filter text, so the
//! output cannot be steered into injection.
//!
//! Semantics are those of [`filter_eval`](super::filter_eval), exactly:
//! - Postgres's three-valued logic is confined: a missing value yields NULL, which
//!   `AND`/`OR` treat like false, and `not` is written `(x) IS NOT TRUE` so NULL
//!   becomes true under negation just as "false" does in memory.
//! - JSON values are read through `jsonb_typeof` guards, so a wrongly typed value is
//!   NULL (no match) rather than a cast error, as in memory.
//! - Case-insensitive comparison is `lower(x) = lower($n)` (the form the
//!   `lower(user_name)` and `lower(display_name)` indexes serve); ordering uses
//!   `COLLATE "C"` (code point order, as Rust compares strings); `co`/`sw`/`ew` are
//!   `LIKE … ESCAPE '\'` with `\`, `%`, `_` escaped in the parameter (this assumes
//!   `standard_conforming_strings`, on by default since Postgres 9.1).
//!
//! Not translatable (a `400 invalidFilter`, though the evaluator could answer):
//! attributes kept neither in a column nor in `resource` (`meta.version`,
//! `meta.location`, `meta.resourceType`, `meta` itself), sub-attributes of
//! join-table attributes other than `value` (`groups.display`), and dateTime
//! attributes stored in JSON (no schema has one today).

use std::fmt::Write as _;

use time::OffsetDateTime;
use uuid::Uuid;

use super::definitions::{GROUP, USER};
use super::error::{ScimError, ScimType};
use super::filter::{CompValue, CompareOp, Filter, FilterAttr};
use super::schema::{AttrRef, AttrType, AttributeDef, ResourceType};

/// A bound parameter of a [`SqlFilter`], in `$n` order. Each variant binds directly
/// with tokio-postgres (`Uuid` needs its `with-uuid-1` feature, `Timestamp` its
/// `with-time-0_3`).
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    /// A `text` value.
    Text(String),
    /// A `boolean` value.
    Bool(bool),
    /// A `float8` value.
    Float(f64),
    /// A `timestamptz` value.
    Timestamp(OffsetDateTime),
    /// A `uuid` value (an `id` compared exactly, so the primary key index serves it).
    Uuid(Uuid),
}

/// A `WHERE` fragment and its parameters. The fragment is parenthesised, so it can
/// be joined with `AND` as is.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFilter {
    /// The boolean SQL expression, with `$n` placeholders.
    pub sql: String,
    /// The values of the placeholders, the first one being `$first_param`.
    pub params: Vec<SqlParam>,
}

/// The SQL type of a mapped column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `text`.
    Text,
    /// `uuid`, compared as its lower-case hyphenated text (or as a `uuid` when exact).
    Uuid,
    /// `boolean`.
    Boolean,
    /// `timestamptz`.
    Timestamp,
}

/// An attribute kept in a real column of the resource's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnMapping {
    /// The canonical attribute path (`userName`, `meta.created`).
    pub attribute: &'static str,
    /// The column name.
    pub column: &'static str,
    /// The column's SQL type.
    pub kind: ColumnKind,
}

/// A multi-valued attribute kept as rows of a join table, whose `value` is a uuid
/// column there (`User.groups` → `group_members.group_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinMapping {
    /// The (top-level, core) attribute name.
    pub attribute: &'static str,
    /// The join table.
    pub table: &'static str,
    /// The join table's column referencing the resource's `id`.
    pub owner_column: &'static str,
    /// The join table's uuid column holding the attribute's `value`.
    pub value_column: &'static str,
}

/// Where a resource type's attributes live in its table. Every table has `team_id`
/// and `id` columns; the join tables have `team_id` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableMapping {
    /// The resource type filters on this table are parsed against.
    pub resource_type: &'static ResourceType,
    /// The `jsonb` column with the canonical resource JSON (minus `id`, `meta` and
    /// join-table attributes): every attribute not mapped otherwise is read here.
    pub resource_column: &'static str,
    /// Attributes with their own column.
    pub columns: &'static [ColumnMapping],
    /// Multi-valued attributes kept in join tables.
    pub joins: &'static [JoinMapping],
    /// Attributes kept nowhere filterable (filtering on them is refused).
    pub unstored: &'static [&'static str],
}

const META_COLUMNS: [ColumnMapping; 2] = [
    ColumnMapping {
        attribute: "meta.created",
        column: "created_at",
        kind: ColumnKind::Timestamp,
    },
    ColumnMapping {
        attribute: "meta.lastModified",
        column: "updated_at",
        kind: ColumnKind::Timestamp,
    },
];

/// The `users` table.
pub static USERS: TableMapping = TableMapping {
    resource_type: &USER,
    resource_column: "resource",
    columns: &[
        ColumnMapping {
            attribute: "id",
            column: "id",
            kind: ColumnKind::Uuid,
        },
        ColumnMapping {
            attribute: "userName",
            column: "user_name",
            kind: ColumnKind::Text,
        },
        ColumnMapping {
            attribute: "externalId",
            column: "external_id",
            kind: ColumnKind::Text,
        },
        ColumnMapping {
            attribute: "active",
            column: "active",
            kind: ColumnKind::Boolean,
        },
        META_COLUMNS[0],
        META_COLUMNS[1],
    ],
    joins: &[
        JoinMapping {
            attribute: "groups",
            table: "group_members",
            owner_column: "user_id",
            value_column: "group_id",
        },
        JoinMapping {
            attribute: "roles",
            table: "user_roles",
            owner_column: "user_id",
            value_column: "role_id",
        },
    ],
    unstored: &["meta"],
};

/// The `groups` table.
pub static GROUPS: TableMapping = TableMapping {
    resource_type: &GROUP,
    resource_column: "resource",
    columns: &[
        ColumnMapping {
            attribute: "id",
            column: "id",
            kind: ColumnKind::Uuid,
        },
        ColumnMapping {
            attribute: "displayName",
            column: "display_name",
            kind: ColumnKind::Text,
        },
        ColumnMapping {
            attribute: "externalId",
            column: "external_id",
            kind: ColumnKind::Text,
        },
        META_COLUMNS[0],
        META_COLUMNS[1],
    ],
    joins: &[JoinMapping {
        attribute: "members",
        table: "group_members",
        owner_column: "group_id",
        value_column: "user_id",
    }],
    unstored: &["meta"],
};

/// Translates `filter` for the table `mapping` describes, aliased `alias` in the
/// caller's query (`FROM users r` → `"r"`), numbering placeholders from
/// `first_param` (e.g. 2 when `$1` is the `team_id`).
///
/// Errors: `400 invalidFilter` for what cannot be translated (see the module docs),
/// `500` if `alias` is not a plain SQL identifier or `first_param` is 0 (caller bugs),
/// or if the filter was parsed for another resource type.
pub fn to_sql(
    filter: &Filter,
    mapping: &TableMapping,
    alias: &str,
    first_param: usize,
) -> Result<SqlFilter, ScimError> {
    let plain_identifier = !alias.is_empty()
        && alias.len() <= 63
        && alias
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && alias
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !plain_identifier || first_param == 0 {
        return Err(ScimError::internal());
    }
    let mut g = Gen {
        mapping,
        alias,
        first_param,
        params: Vec::new(),
        subqueries: 0,
    };
    let sql = g.node(filter, &Scope::Row)?;
    Ok(SqlFilter {
        sql: parenthesise(sql),
        params: g.params,
    })
}

fn parenthesise(sql: String) -> String {
    if sql.starts_with('(') && sql.ends_with(')') && balanced_outer(&sql) {
        sql
    } else {
        format!("({sql})")
    }
}

/// Whether the first `(` of `sql` closes at its last byte (so it wraps everything).
/// Quotes are ignored safely: generated SQL holds only static string literals without
/// parentheses.
fn balanced_outer(sql: &str) -> bool {
    let mut depth = 0usize;
    for (i, b) in sql.bytes().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1 == sql.len();
                }
            }
            _ => {}
        }
    }
    false
}

/// A quoted SQL string literal of a static key.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `LIKE` metacharacters escaped with `\`.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Where terms are evaluated: on the row, on one element of a JSON array (or the
/// single complex value) named by a jsonb expression, or on one join-table row.
enum Scope<'m> {
    Row,
    Json(String),
    Join(&'m JoinMapping, String),
}

/// Where one attribute's values are, as SQL.
enum Located<'m> {
    /// A scalar SQL expression of the given column kind.
    Column(String, ColumnKind),
    /// A single jsonb value.
    Json(String),
    /// The elements of a jsonb array, optionally their sub-attribute.
    JsonArray {
        array: String,
        sub: Option<&'static AttributeDef>,
    },
    /// Rows of a join table (only `value` or no sub-attribute).
    Join(&'m JoinMapping),
}

/// Builds the condition on one join-table row, given the row's alias.
type RowPredicate<'f, 'm> = &'f dyn Fn(&mut Gen<'m>, String) -> Result<String, ScimError>;

struct Gen<'m> {
    mapping: &'m TableMapping,
    alias: &'m str,
    first_param: usize,
    params: Vec<SqlParam>,
    subqueries: usize,
}

impl<'m> Gen<'m> {
    fn param(&mut self, p: SqlParam) -> String {
        self.params.push(p);
        format!("${}", self.first_param + self.params.len() - 1)
    }

    fn unsupported(a: &AttrRef) -> ScimError {
        ScimError::bad_request(
            ScimType::InvalidFilter,
            format!("filtering on '{a}' is not supported"),
        )
    }

    fn node(&mut self, f: &Filter, scope: &Scope<'m>) -> Result<String, ScimError> {
        match f {
            Filter::And(terms) | Filter::Or(terms) => {
                let word = if matches!(f, Filter::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let mut parts = Vec::with_capacity(terms.len());
                for t in terms {
                    parts.push(self.node(t, scope)?);
                }
                Ok(format!("({})", parts.join(word)))
            }
            Filter::Not(inner) => Ok(format!(
                "({} IS NOT TRUE)",
                parenthesise(self.node(inner, scope)?)
            )),
            Filter::Present(FilterAttr::Known(a)) => {
                let loc = self.locate(a, scope)?;
                self.present(a, loc)
            }
            Filter::Compare(FilterAttr::Known(a), op, v) => {
                let loc = self.locate(a, scope)?;
                self.compare(a, loc, *op, v)
            }
            Filter::ValuePath(FilterAttr::Known(a), inner) => self.value_path(a, inner, scope),
            Filter::Present(FilterAttr::Unknown(_))
            | Filter::Compare(FilterAttr::Unknown(_), _, _)
            | Filter::ValuePath(FilterAttr::Unknown(_), _) => Ok("FALSE".into()),
        }
    }

    /// The jsonb expression of a top-level attribute inside `resource`.
    fn json_attr(&self, a: &AttrRef) -> String {
        let mut s = format!("{}.{}", self.alias, self.mapping.resource_column);
        if let Some(ext) = a.extension {
            let _ = write!(s, "->{}", lit(ext.id));
        }
        let _ = write!(s, "->{}", lit(a.attr.name));
        s
    }

    fn locate(&self, a: &AttrRef, scope: &Scope<'m>) -> Result<Located<'m>, ScimError> {
        match scope {
            Scope::Json(elem) => match a.sub {
                Some(sub) => Ok(Located::Json(format!("{elem}->{}", lit(sub.name)))),
                None => Err(Self::unsupported(a)),
            },
            Scope::Join(j, row) => match a.sub {
                Some(sub) if sub.name == "value" => Ok(Located::Column(
                    format!("{row}.{}", j.value_column),
                    ColumnKind::Uuid,
                )),
                _ => Err(Self::unsupported(a)),
            },
            Scope::Row => {
                let path = a.to_string();
                if let Some(c) = self.mapping.columns.iter().find(|c| c.attribute == path) {
                    return Ok(Located::Column(
                        format!("{}.{}", self.alias, c.column),
                        c.kind,
                    ));
                }
                if a.extension.is_none() {
                    if let Some(j) = self
                        .mapping
                        .joins
                        .iter()
                        .find(|j| j.attribute == a.attr.name)
                    {
                        return match a.sub {
                            None => Ok(Located::Join(j)),
                            Some(s) if s.name == "value" => Ok(Located::Join(j)),
                            Some(_) => Err(Self::unsupported(a)),
                        };
                    }
                    if self.mapping.unstored.contains(&a.attr.name) {
                        return Err(Self::unsupported(a));
                    }
                }
                let json = self.json_attr(a);
                Ok(match (a.attr.multi_valued, a.sub) {
                    (true, sub) => Located::JsonArray { array: json, sub },
                    (false, Some(sub)) => Located::Json(format!("{json}->{}", lit(sub.name))),
                    (false, None) => Located::Json(json),
                })
            }
        }
    }

    fn next_alias(&mut self, prefix: &str) -> String {
        self.subqueries += 1;
        format!("scim_{prefix}{}", self.subqueries)
    }

    /// `EXISTS` over a jsonb array's elements, aliased `e(v)`, with `pred(e.v)`.
    fn exists_in_array(
        &mut self,
        array: &str,
        pred: impl FnOnce(&mut Self, String) -> Result<String, ScimError>,
    ) -> Result<String, ScimError> {
        let e = self.next_alias("e");
        let cond = pred(self, format!("{e}.v"))?;
        Ok(format!(
            "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof({array}) = 'array' \
             THEN {array} ELSE '[]'::jsonb END) AS {e}(v) WHERE {cond})"
        ))
    }

    /// `EXISTS` over the join table's rows of this resource, with `pred(row alias)`.
    fn exists_in_join(
        &mut self,
        j: &'m JoinMapping,
        pred: Option<RowPredicate<'_, 'm>>,
    ) -> Result<String, ScimError> {
        let m = self.next_alias("m");
        let r = self.alias;
        let mut sql = format!(
            "EXISTS (SELECT 1 FROM {t} {m} WHERE {m}.team_id = {r}.team_id AND {m}.{o} = {r}.id",
            t = j.table,
            o = j.owner_column
        );
        if let Some(pred) = pred {
            let cond = pred(self, m)?;
            let _ = write!(sql, " AND {cond}");
        }
        sql.push(')');
        Ok(sql)
    }

    fn value_path(
        &mut self,
        a: &AttrRef,
        inner: &Filter,
        scope: &Scope<'m>,
    ) -> Result<String, ScimError> {
        let Scope::Row = scope else {
            return Err(Self::unsupported(a));
        };
        match self.locate(&a.with_sub(None), scope)? {
            Located::Join(j) => self.exists_in_join(
                j,
                Some(&|g: &mut Self, m: String| g.node(inner, &Scope::Join(j, m))),
            ),
            Located::JsonArray { array, .. } => {
                self.exists_in_array(&array, |g, v| g.node(inner, &Scope::Json(v)))
            }
            Located::Json(json) => {
                let cond = self.node(inner, &Scope::Json(json.clone()))?;
                Ok(format!("({json} IS NOT NULL AND {cond})"))
            }
            Located::Column(..) => Err(Self::unsupported(a)),
        }
    }

    /// The typed scalar SQL of a single jsonb value: NULL unless of the JSON type the
    /// attribute has, so a wrongly typed value never matches (nor fails a cast).
    fn typed_json(a: &AttrRef, json: &str) -> Result<String, ScimError> {
        let (json_type, cast) = match a.leaf().ty {
            AttrType::String | AttrType::Reference | AttrType::Binary => {
                return Ok(format!(
                    "(CASE WHEN jsonb_typeof({json}) = 'string' THEN {json} #>> '{{}}' END)"
                ));
            }
            AttrType::Boolean => ("boolean", "boolean"),
            AttrType::Integer | AttrType::Decimal => ("number", "float8"),
            AttrType::DateTime | AttrType::Complex => return Err(Self::unsupported(a)),
        };
        Ok(format!(
            "(CASE WHEN jsonb_typeof({json}) = '{json_type}' THEN ({json})::{cast} END)"
        ))
    }

    fn present(&mut self, a: &AttrRef, loc: Located<'m>) -> Result<String, ScimError> {
        match loc {
            Located::Column(expr, ColumnKind::Text) => Ok(format!("({expr} <> '')")),
            Located::Column(expr, _) => Ok(format!("({expr} IS NOT NULL)")),
            Located::Json(json) => Self::json_present(a, &json),
            Located::JsonArray { array, sub } => {
                let elem = a.with_sub(sub);
                self.exists_in_array(&array, |_, v| match sub {
                    Some(s) => Self::json_present(&elem, &format!("{v}->{}", lit(s.name))),
                    None => Self::json_present(&elem, &v),
                })
            }
            Located::Join(j) => self.exists_in_join(j, None),
        }
    }

    fn json_present(a: &AttrRef, json: &str) -> Result<String, ScimError> {
        match a.leaf().ty {
            AttrType::Complex => Ok(format!(
                "(jsonb_typeof({json}) = 'object' AND {json} <> '{{}}'::jsonb)"
            )),
            AttrType::String | AttrType::Reference | AttrType::Binary => {
                Ok(format!("({} <> '')", Self::typed_json(a, json)?))
            }
            _ => Ok(format!("({} IS NOT NULL)", Self::typed_json(a, json)?)),
        }
    }

    fn compare(
        &mut self,
        a: &AttrRef,
        loc: Located<'m>,
        op: CompareOp,
        v: &CompValue,
    ) -> Result<String, ScimError> {
        let leaf = a.leaf();
        match loc {
            Located::Column(expr, kind) => self.compare_scalar(&expr, kind, leaf, op, v),
            Located::Json(json) => {
                let expr = Self::typed_json(a, &json)?;
                self.compare_scalar(&expr, ColumnKind::Text, leaf, op, v)
            }
            Located::JsonArray { array, sub } => {
                let elem = a.with_sub(sub);
                self.exists_in_array(&array, |g, e| {
                    let json = match sub {
                        Some(s) => format!("{e}->{}", lit(s.name)),
                        None => e,
                    };
                    let expr = Self::typed_json(&elem, &json)?;
                    g.compare_scalar(&expr, ColumnKind::Text, leaf, op, v)
                })
            }
            Located::Join(j) => self.exists_in_join(
                j,
                Some(&|g: &mut Self, m: String| {
                    g.compare_scalar(
                        &format!("{m}.{}", j.value_column),
                        ColumnKind::Uuid,
                        leaf,
                        op,
                        v,
                    )
                }),
            ),
        }
    }

    /// `expr op $n` for one scalar of the given kind, honouring `caseExact`.
    fn compare_scalar(
        &mut self,
        expr: &str,
        kind: ColumnKind,
        leaf: &AttributeDef,
        op: CompareOp,
        v: &CompValue,
    ) -> Result<String, ScimError> {
        let sym = match op {
            CompareOp::Eq => "=",
            CompareOp::Ne => "<>",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Co | CompareOp::Sw | CompareOp::Ew => "LIKE",
        };
        match v {
            CompValue::String(s) => {
                if kind == ColumnKind::Uuid && matches!(op, CompareOp::Eq | CompareOp::Ne) {
                    // An exact uuid comparison lets the index serve `id eq "…"`; it is
                    // equivalent because a uuid's text is its lower-case hyphenated form.
                    let candidate = if leaf.case_exact {
                        s.clone()
                    } else {
                        s.to_lowercase()
                    };
                    if let Ok(u) = Uuid::try_parse(&candidate)
                        && u.hyphenated().to_string() == candidate
                    {
                        let p = self.param(SqlParam::Uuid(u));
                        return Ok(format!("({expr} {sym} {p})"));
                    }
                }
                let expr = if kind == ColumnKind::Uuid {
                    format!("{expr}::text")
                } else {
                    expr.to_owned()
                };
                let value = match op {
                    CompareOp::Co => format!("%{}%", like_escape(s)),
                    CompareOp::Sw => format!("{}%", like_escape(s)),
                    CompareOp::Ew => format!("%{}", like_escape(s)),
                    _ => s.clone(),
                };
                let p = self.param(SqlParam::Text(value));
                let (lhs, rhs) = if leaf.case_exact {
                    (expr, p)
                } else {
                    (format!("lower({expr})"), format!("lower({p})"))
                };
                Ok(if op.is_substring() {
                    format!("({lhs} LIKE {rhs} ESCAPE '\\')")
                } else if op.is_ordering() {
                    format!("({lhs} COLLATE \"C\" {sym} {rhs})")
                } else {
                    format!("({lhs} {sym} {rhs})")
                })
            }
            CompValue::Boolean(b) => {
                let p = self.param(SqlParam::Bool(*b));
                Ok(format!("({expr} {sym} {p})"))
            }
            CompValue::Number(n) => {
                let Some(f) = n.as_f64() else {
                    return Err(ScimError::bad_request(
                        ScimType::InvalidFilter,
                        format!("number {n} is out of range"),
                    ));
                };
                let p = self.param(SqlParam::Float(f));
                Ok(format!("({expr} {sym} {p})"))
            }
            CompValue::DateTime(t) => {
                let p = self.param(SqlParam::Timestamp(*t));
                Ok(format!("({expr} {sym} {p})"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::definitions::{GROUP, USER};

    fn users(filter: &str) -> SqlFilter {
        let f = Filter::parse(filter, &USER).unwrap();
        to_sql(&f, &USERS, "r", 2).unwrap_or_else(|e| panic!("{filter}: {e}"))
    }

    fn groups(filter: &str) -> SqlFilter {
        let f = Filter::parse(filter, &GROUP).unwrap();
        to_sql(&f, &GROUPS, "g", 1).unwrap()
    }

    fn text(s: &str) -> SqlParam {
        SqlParam::Text(s.into())
    }

    #[test]
    fn okta_user_name_lookup_uses_the_lower_index() {
        let q = users(r#"userName eq "Bjensen@Example.com""#);
        assert_eq!(q.sql, "(lower(r.user_name) = lower($2))");
        assert_eq!(q.params, [text("Bjensen@Example.com")]);
    }

    #[test]
    fn columns() {
        assert_eq!(users(r#"externalId eq "00u1""#).sql, "(r.external_id = $2)");
        assert_eq!(users("active eq false").sql, "(r.active = $2)");
        assert_eq!(users("active eq false").params, [SqlParam::Bool(false)]);
        assert_eq!(users("active pr").sql, "(r.active IS NOT NULL)");
        assert_eq!(users("externalId pr").sql, "(r.external_id <> '')");
        let q = users(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#);
        assert_eq!(q.sql, "(r.updated_at > $2)");
        assert!(matches!(q.params[0], SqlParam::Timestamp(_)));
        assert_eq!(
            groups(r#"displayName eq "Eng""#).sql,
            "(lower(g.display_name) = lower($1))"
        );
    }

    #[test]
    fn ids_compare_as_uuids_when_exact() {
        let id = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
        let q = users(&format!(r#"id eq "{id}""#));
        assert_eq!(q.sql, "(r.id = $2)");
        assert_eq!(q.params, [SqlParam::Uuid(Uuid::parse_str(id).unwrap())]);
        // id is caseExact: upper case is not the id's text, so it compares as text.
        let q = users(&format!(r#"id eq "{}""#, id.to_uppercase()));
        assert_eq!(q.sql, "(r.id::text = $2)");
        assert_eq!(
            users(r#"id eq "010101001010101011001010101011""#).sql,
            "(r.id::text = $2)"
        );
        assert_eq!(
            users(r#"id sw "6f96""#).sql,
            "(r.id::text LIKE $2 ESCAPE '\\')"
        );
    }

    #[test]
    fn substring_operators_escape_like_metacharacters() {
        let q = users(r#"userName co "a%b_c\\d""#);
        assert_eq!(q.sql, "(lower(r.user_name) LIKE lower($2) ESCAPE '\\')");
        assert_eq!(q.params, [text("%a\\%b\\_c\\\\d%")]);
        assert_eq!(users(r#"userName sw "x""#).params, [text("x%")]);
        assert_eq!(users(r#"userName ew "x""#).params, [text("%x")]);
        assert_eq!(
            users(r#"externalId co "x""#).sql,
            "(r.external_id LIKE $2 ESCAPE '\\')"
        );
    }

    #[test]
    fn ordering_uses_code_point_collation() {
        assert_eq!(
            users(r#"userName gt "m""#).sql,
            "(lower(r.user_name) COLLATE \"C\" > lower($2))"
        );
        assert_eq!(
            users(r#"externalId le "m""#).sql,
            "(r.external_id COLLATE \"C\" <= $2)"
        );
    }

    #[test]
    fn json_attributes() {
        assert_eq!(
            users(r#"name.givenName eq "Ann""#).sql,
            "(lower((CASE WHEN jsonb_typeof(r.resource->'name'->'givenName') = 'string' \
             THEN r.resource->'name'->'givenName' #>> '{}' END)) = lower($2))"
        );
        assert_eq!(
            users(
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R""#
            )
            .sql,
            "(lower((CASE WHEN jsonb_typeof(r.resource->'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'->'department') = 'string' \
             THEN r.resource->'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'->'department' #>> '{}' END)) = lower($2))"
        );
        assert_eq!(
            users("name pr").sql,
            "(jsonb_typeof(r.resource->'name') = 'object' AND r.resource->'name' <> '{}'::jsonb)"
        );
    }

    #[test]
    fn multi_valued_json() {
        assert_eq!(
            users(r#"emails.value eq "a@b""#).sql,
            "(EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(r.resource->'emails') = 'array' \
             THEN r.resource->'emails' ELSE '[]'::jsonb END) AS scim_e1(v) WHERE \
             (lower((CASE WHEN jsonb_typeof(scim_e1.v->'value') = 'string' THEN scim_e1.v->'value' #>> '{}' END)) = lower($2))))"
        );
        let q = users(r#"emails[type eq "work" and primary eq true]"#);
        assert_eq!(
            q.sql,
            "(EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(r.resource->'emails') = 'array' \
             THEN r.resource->'emails' ELSE '[]'::jsonb END) AS scim_e1(v) WHERE \
             ((lower((CASE WHEN jsonb_typeof(scim_e1.v->'type') = 'string' THEN scim_e1.v->'type' #>> '{}' END)) = lower($2)) \
             AND ((CASE WHEN jsonb_typeof(scim_e1.v->'primary') = 'boolean' THEN (scim_e1.v->'primary')::boolean END) = $3))))"
        );
        assert_eq!(q.params, [text("work"), SqlParam::Bool(true)]);
        assert_eq!(
            users("emails pr").sql,
            "(EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(r.resource->'emails') = 'array' \
             THEN r.resource->'emails' ELSE '[]'::jsonb END) AS scim_e1(v) WHERE \
             (jsonb_typeof(scim_e1.v) = 'object' AND scim_e1.v <> '{}'::jsonb)))"
        );
        assert_eq!(
            users(r#"name[givenName eq "a"]"#).sql,
            "(r.resource->'name' IS NOT NULL AND (lower((CASE WHEN jsonb_typeof(r.resource->'name'->'givenName') = 'string' \
             THEN r.resource->'name'->'givenName' #>> '{}' END)) = lower($2)))"
        );
    }

    #[test]
    fn join_tables() {
        let gid = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
        let q = users(&format!(r#"groups.value eq "{gid}""#));
        assert_eq!(
            q.sql,
            "(EXISTS (SELECT 1 FROM group_members scim_m1 WHERE scim_m1.team_id = r.team_id \
             AND scim_m1.user_id = r.id AND (scim_m1.group_id = $2)))"
        );
        assert_eq!(q.params, [SqlParam::Uuid(Uuid::parse_str(gid).unwrap())]);
        // groups.value is not caseExact: an upper-case uuid is the same uuid.
        assert_eq!(
            users(&format!(r#"groups eq "{}""#, gid.to_uppercase())).params,
            q.params
        );
        assert_eq!(
            users(r#"roles.value co "x""#).sql,
            "(EXISTS (SELECT 1 FROM user_roles scim_m1 WHERE scim_m1.team_id = r.team_id \
             AND scim_m1.user_id = r.id AND (lower(scim_m1.role_id::text) LIKE lower($2) ESCAPE '\\')))"
        );
        assert_eq!(
            users("roles pr").sql,
            "(EXISTS (SELECT 1 FROM user_roles scim_m1 WHERE scim_m1.team_id = r.team_id AND scim_m1.user_id = r.id))"
        );
        let uid = "0a1b2c3d-0000-4000-8000-000000000001";
        let q = groups(&format!(r#"members[value eq "{uid}" or value eq "x"]"#));
        assert_eq!(
            q.sql,
            "(EXISTS (SELECT 1 FROM group_members scim_m1 WHERE scim_m1.team_id = g.team_id \
             AND scim_m1.group_id = g.id AND ((scim_m1.user_id = $1) OR (lower(scim_m1.user_id::text) = lower($2)))))"
        );
    }

    #[test]
    fn logic_and_not() {
        let q = users(r#"not (title eq "x") and (userName sw "a" or active eq true)"#);
        assert_eq!(
            q.sql,
            "(((lower((CASE WHEN jsonb_typeof(r.resource->'title') = 'string' THEN r.resource->'title' #>> '{}' END)) = lower($2)) IS NOT TRUE) \
             AND ((lower(r.user_name) LIKE lower($3) ESCAPE '\\') OR (r.active = $4)))"
        );
        assert_eq!(q.params, [text("x"), text("a%"), SqlParam::Bool(true)]);
        assert_eq!(users("nope pr").sql, "(FALSE)");
        assert_eq!(users("not (nope pr)").sql, "((FALSE) IS NOT TRUE)");
        assert_eq!(users("title eq null").sql.matches("IS NOT TRUE").count(), 1);
    }

    #[test]
    fn untranslatable_attributes_are_refused() {
        for f in [
            r#"meta.version eq "x""#,
            r#"meta.resourceType eq "User""#,
            "meta pr",
            r#"groups.display eq "x""#,
            r#"groups[display eq "x"]"#,
        ] {
            let parsed = Filter::parse(f, &USER).unwrap();
            let e = to_sql(&parsed, &USERS, "r", 1).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some(ScimType::InvalidFilter)),
                "{f}"
            );
        }
    }

    #[test]
    fn caller_mistakes_are_internal_errors() {
        let f = Filter::parse("userName pr", &USER).unwrap();
        for alias in ["", "R", "r;drop", "1r", "r.x"] {
            assert_eq!(
                to_sql(&f, &USERS, alias, 1).unwrap_err().status,
                500,
                "{alias}"
            );
        }
        assert_eq!(to_sql(&f, &USERS, "r", 0).unwrap_err().status, 500);
    }

    #[test]
    fn parenthesise_only_wraps_when_needed() {
        assert_eq!(parenthesise("(a) AND (b)".into()), "((a) AND (b))");
        assert_eq!(parenthesise("(a AND b)".into()), "(a AND b)");
        assert_eq!(parenthesise("FALSE".into()), "(FALSE)");
    }
}
