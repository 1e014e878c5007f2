//! SCIM 2.0 (RFC 7643, RFC 7644) protocol logic: schemas, filters, PATCH, errors and
//! list shapes. Pure: values in, values out.
//!
//! # Layout
//!
//! - [`error`]: `ScimError` and its RFC 7644 §3.12 JSON body.
//! - [`list`]: `startIndex`/`count` paging and the ListResponse body.
//! - [`schema`]: the attribute/schema/resource-type model and name resolution.
//! - [`definitions`]: the User, Enterprise User, Group and Role schemas.
//! - [`discovery`]: the `/Schemas`, `/ResourceTypes` and `/ServiceProviderConfig` bodies.
//! - [`filter`]: the filter grammar parsed into a schema-resolved AST.
//! - [`filter_eval`]: that AST evaluated against a resource in memory.
//! - [`filter_sql`]: that AST translated to a parameterised Postgres `WHERE` fragment.
//! - [`value`]: client values checked against the schema and put in canonical form.
//! - [`path`]: PATCH paths (`emails[type eq "work"].value`).
//! - [`patch`]: the PATCH engine, and the membership plan for Groups.
//! - [`projection`]: `attributes` / `excludedAttributes` applied to output.
//! - `testing` (feature `testing`): proptest strategies of resources and filters.

pub mod definitions;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod filter_eval;
pub mod filter_sql;
pub mod list;
pub mod patch;
pub mod path;
pub mod projection;
pub mod schema;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod value;
