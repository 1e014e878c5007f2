//! `scim_filter`: any text through `Filter::parse` for Users and Groups. For every
//! filter that parses:
//! - its canonical text (`Display`) parses back to an equal filter;
//! - the SQL translation never panics, and its `$n` placeholders are exactly
//!   `$2 ..= $(params + 1)`, each used (values travel only as parameters);
//! - evaluation never panics on the samples or on malformed JSON, and `not (f)` is
//!   the negation of `f` (the evaluator has no "unknown").

use shared::scim::definitions::{GROUP, USER};
use shared::scim::filter::{Filter, FilterOptions};
use shared::scim::filter_eval::matches;
use shared::scim::filter_sql::{GROUPS, TableMapping, USERS, to_sql};
use shared::scim::schema::ResourceType;

use crate::samples;

/// `$1` is the caller's `team_id`, as in the worker.
const FIRST_PARAM: usize = 2;

/// Runs every check on `data` read as UTF-8 (other bytes are not a filter).
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_for(text, &USER, &USERS, samples::user());
    check_for(text, &GROUP, &GROUPS, samples::group());
}

fn check_for(
    text: &str,
    rt: &'static ResourceType,
    mapping: &TableMapping,
    sample: serde_json::Value,
) {
    let Ok(filter) = Filter::parse(text, rt) else {
        return;
    };
    round_trips(&filter, rt);
    translates(&filter, mapping);
    let negated = Filter::Not(Box::new(filter.clone()));
    for resource in std::iter::once(sample).chain(samples::malformed()) {
        assert_eq!(
            matches(&negated, &resource),
            !matches(&filter, &resource),
            "not ({filter}) is not the negation on {resource}"
        );
    }
}

/// The canonical text parses back to the same filter. It may be longer and nest
/// deeper than the input (URN-qualified names, explicit parentheses around `and`
/// inside `or`), so the limits are lifted for the re-parse: they bound input, and the
/// text here is ours.
fn round_trips(filter: &Filter, rt: &'static ResourceType) {
    let canonical = filter.to_string();
    let unlimited = FilterOptions {
        max_len: usize::MAX,
        max_depth: usize::MAX,
        ..FilterOptions::default()
    };
    match Filter::parse_with(&canonical, rt, unlimited) {
        Ok(again) => assert_eq!(
            &again, filter,
            "canonical text {canonical:?} parses to a different filter"
        ),
        Err(e) => panic!("canonical text {canonical:?} does not parse: {e:?}"),
    }
}

/// The SQL translation, when there is one, numbers its placeholders densely. `$`
/// inside a quoted literal (the JSON key `'$ref'`) is not a placeholder.
fn translates(filter: &Filter, mapping: &TableMapping) {
    let Ok(sql) = to_sql(filter, mapping, "r", FIRST_PARAM) else {
        return;
    };
    let mut used = vec![false; sql.params.len()];
    let mut quoted = false;
    let mut chars = sql.sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '\'' => quoted = !quoted,
            '$' if !quoted => {
                let mut n = 0usize;
                let mut digits = 0;
                while let Some(d) = chars.peek().and_then(|(_, d)| d.to_digit(10)) {
                    n = n * 10 + d as usize;
                    digits += 1;
                    chars.next();
                }
                assert!(digits > 0, "'$' without a number in {}", sql.sql);
                let slot = n
                    .checked_sub(FIRST_PARAM)
                    .filter(|&k| k < used.len())
                    .unwrap_or_else(|| {
                        panic!("${n} out of range in {} ({:?})", sql.sql, sql.params)
                    });
                used[slot] = true;
            }
            _ => {}
        }
    }
    assert!(!quoted, "unterminated literal in {}", sql.sql);
    assert!(
        used.iter().all(|&u| u),
        "unused parameter in {} ({:?})",
        sql.sql,
        sql.params
    );
}
