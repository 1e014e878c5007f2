//! The SCIM filter language (RFC 7644 §3.4.2.2) parsed into an AST whose attribute
//! paths are already resolved against a resource type's schema, and whose comparison
//! values are already typed by the attribute they compare. Both back ends
//! ([`filter_eval`](super::filter_eval) in memory, [`filter_sql`](super::filter_sql)
//! in Postgres) therefore see only canonical attribute definitions, never text the
//! client wrote.
//!
//! Accepted: `eq ne co sw ew pr gt ge lt le`, `and` (binding tighter than) `or`,
//! `not (…)`, parentheses, sub-attributes (`name.familyName`), value paths
//! (`emails[type eq "work" and primary eq true]`), URN-qualified names, and literals as
//! JSON strings, numbers, `true`, `false`, `null`. Operators, keywords, literals'
//! `true`/`false`/`null` and attribute names are case-insensitive. Whitespace between
//! tokens is optional where the grammar is unambiguous.
//!
//! Decisions beyond the RFC's text:
//! - Unknown attributes are, by default, attributes no resource has: comparisons on
//!   them are false and `pr` is false (so `not (x eq 1)` is true). Okta sends only
//!   known ones; a client probing an extension we do not store gets an empty result
//!   rather than an error. [`UnknownAttributes::Reject`] turns them into `400`s.
//! - `attr eq null` means `not (attr pr)`; `attr ne null` means `attr pr`; `null` with
//!   any other operator is an error.
//! - A complex attribute compared with a value (`emails eq "a@b"`) means its `value`
//!   sub-attribute; a complex attribute without one (`name eq "x"`) is an error.
//! - Type mismatches are `400 invalidFilter` at parse time, not silent non-matches:
//!   ordering (`gt ge lt le`) on booleans or binary, `co sw ew` on anything but
//!   strings, a number compared with a string attribute. Boolean attributes accept
//!   `"true"`/`"false"` strings (any case), as Entra writes them elsewhere.
//! - `emails[type eq "work"].value` is a PATCH path, not a filter; it is refused with
//!   a hint to write `emails[type eq "work" and value eq …]`.
//! - dateTime literals are truncated to microseconds, the precision Postgres stores.

use std::fmt;

use serde_json::Number;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::{ScimError, ScimType};
use super::schema::{AttrRef, AttrType, RawPath, ResourceType};

/// Longest filter accepted, in bytes; a URL can hardly carry more.
pub const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of parentheses, `not (…)` and value paths accepted. Parsing,
/// evaluation and SQL generation all recurse once per level, so this bounds the stack.
pub const MAX_FILTER_DEPTH: usize = 32;

/// What to do with an attribute the schema does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownAttributes {
    /// Treat it as absent from every resource (the default; see the module docs).
    #[default]
    NeverPresent,
    /// Refuse the filter with `400 invalidFilter`.
    Reject,
}

/// Parser limits and policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterOptions {
    /// What an unknown attribute means.
    pub unknown_attributes: UnknownAttributes,
    /// Longest filter accepted, in bytes.
    pub max_len: usize,
    /// Deepest nesting accepted.
    pub max_depth: usize,
}

impl Default for FilterOptions {
    fn default() -> Self {
        Self {
            unknown_attributes: UnknownAttributes::NeverPresent,
            max_len: MAX_FILTER_LEN,
            max_depth: MAX_FILTER_DEPTH,
        }
    }
}

/// A comparison operator (`pr` is [`Filter::Present`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Contains (strings).
    Co,
    /// Starts with (strings).
    Sw,
    /// Ends with (strings).
    Ew,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
}

impl CompareOp {
    /// Every operator, for parsing and tests.
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// The operator as written in filters (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// The operator spelled `s`, in any case.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether this is `gt`, `ge`, `lt` or `le`.
    pub fn is_ordering(self) -> bool {
        matches!(
            self,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        )
    }

    /// Whether this is `co`, `sw` or `ew`.
    pub fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A comparison value, typed by the attribute it is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    /// For string, reference and binary attributes.
    String(String),
    /// For boolean attributes.
    Boolean(bool),
    /// For integer and decimal attributes.
    Number(Number),
    /// For dateTime attributes, truncated to microseconds.
    DateTime(OffsetDateTime),
}

impl fmt::Display for CompValue {
    /// The value as a filter literal (a JSON string, number or boolean).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            CompValue::Boolean(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::DateTime(t) => {
                let text = t.format(&Rfc3339).unwrap_or_default();
                write!(f, "{}", serde_json::Value::String(text))
            }
        }
    }
}

/// The attribute a filter term tests.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterAttr {
    /// A schema attribute. Inside a value path (`emails[type eq "work"]`) it is the
    /// parent with `sub` set (`emails.type`), and is read from each value.
    Known(AttrRef),
    /// An attribute the schema does not define, as written; never present.
    Unknown(String),
}

impl FilterAttr {
    fn write(&self, f: &mut fmt::Formatter<'_>, in_value_path: bool) -> fmt::Result {
        match self {
            FilterAttr::Known(a) if in_value_path => f.write_str(a.leaf().name),
            FilterAttr::Known(a) => write!(f, "{a}"),
            FilterAttr::Unknown(s) => f.write_str(s),
        }
    }
}

/// A parsed, schema-resolved filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// All must hold (two or more terms).
    And(Vec<Filter>),
    /// At least one must hold (two or more terms).
    Or(Vec<Filter>),
    /// Negation of a definite truth value (there is no "unknown": see
    /// [`filter_eval`](super::filter_eval)).
    Not(Box<Filter>),
    /// `attr pr`: the attribute has a non-empty value.
    Present(FilterAttr),
    /// `attr op value`: some value of the attribute compares true.
    Compare(FilterAttr, CompareOp, CompValue),
    /// `attr[filter]`: some value of the complex attribute satisfies the inner filter,
    /// whose attributes are that value's sub-attributes.
    ValuePath(FilterAttr, Box<Filter>),
}

impl Filter {
    /// Parses `text` against `rt` with the default options.
    pub fn parse(text: &str, rt: &'static ResourceType) -> Result<Self, ScimError> {
        Self::parse_with(text, rt, FilterOptions::default())
    }

    /// Parses `text` against `rt`. Errors are `400 invalidFilter` naming the byte
    /// offset where parsing stopped.
    pub fn parse_with(
        text: &str,
        rt: &'static ResourceType,
        opts: FilterOptions,
    ) -> Result<Self, ScimError> {
        let mut p = Parser::new(text, 0, rt, opts)?;
        let f = p.filter(Scope::Resource)?;
        p.skip_ws();
        if p.pos < p.src.len() {
            return Err(p.error("unexpected input; expected 'and', 'or' or the end"));
        }
        Ok(f)
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, in_value_path: bool) -> fmt::Result {
        let joined = |f: &mut fmt::Formatter<'_>, terms: &[Filter], word: &str| {
            for (i, t) in terms.iter().enumerate() {
                if i > 0 {
                    write!(f, " {word} ")?;
                }
                if matches!(t, Filter::And(_) | Filter::Or(_)) {
                    f.write_str("(")?;
                    t.write(f, in_value_path)?;
                    f.write_str(")")?;
                } else {
                    t.write(f, in_value_path)?;
                }
            }
            Ok(())
        };
        match self {
            Filter::And(terms) => joined(f, terms, "and"),
            Filter::Or(terms) => joined(f, terms, "or"),
            Filter::Not(inner) => {
                f.write_str("not (")?;
                inner.write(f, in_value_path)?;
                f.write_str(")")
            }
            Filter::Present(a) => {
                a.write(f, in_value_path)?;
                f.write_str(" pr")
            }
            Filter::Compare(a, op, v) => {
                a.write(f, in_value_path)?;
                write!(f, " {op} {v}")
            }
            Filter::ValuePath(a, inner) => {
                a.write(f, false)?;
                f.write_str("[")?;
                inner.write(f, true)?;
                f.write_str("]")
            }
        }
    }
}

impl fmt::Display for Filter {
    /// The canonical text of the filter: canonical attribute names, lower-case
    /// operators, JSON literals, explicit parentheses. Parsing it gives back an equal
    /// filter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
    }
}

/// Displays the filter of a value path as written inside its brackets (sub-attribute
/// names only), for PATCH paths.
pub(crate) struct ValueFilterText<'a>(pub(crate) &'a Filter);

impl fmt::Display for ValueFilterText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f, true)
    }
}

/// Parses the `[filter]` of a PATCH path such as `emails[type eq "work"].value`:
/// `open` is the byte offset of `[` in `src`, `parent` the resolved attribute before
/// it (`None` when unknown). Returns the filter and the offset just past `]`.
pub(crate) fn parse_value_filter(
    src: &str,
    open: usize,
    parent: Option<AttrRef>,
    rt: &'static ResourceType,
    opts: FilterOptions,
) -> Result<(Filter, usize), ScimError> {
    let mut p = Parser::new(src, open, rt, opts)?;
    let f = p.bracketed(parent)?;
    Ok((f, p.pos))
}

/// A JSON literal as written, before it is typed by the attribute.
enum Literal {
    String(String),
    Number(Number),
    Bool(bool),
    Null,
}

/// Where attribute names are resolved: against the resource, or as sub-attributes
/// of a value path's parent (`None`: the parent is unknown).
#[derive(Clone, Copy)]
enum Scope {
    Resource,
    Values(Option<AttrRef>),
}

/// A recursive-descent parser over the filter text. Every recursion passes through
/// [`Parser::enter`], which enforces the depth limit.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
    rt: &'static ResourceType,
    opts: FilterOptions,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_:.$".contains(&b)
}

impl<'a> Parser<'a> {
    fn new(
        src: &'a str,
        pos: usize,
        rt: &'static ResourceType,
        opts: FilterOptions,
    ) -> Result<Self, ScimError> {
        if src.len() > opts.max_len {
            return Err(ScimError::bad_request(
                ScimType::InvalidFilter,
                format!("filter is longer than {} bytes", opts.max_len),
            ));
        }
        Ok(Self {
            src,
            pos,
            depth: 0,
            rt,
            opts,
        })
    }

    fn error(&self, what: &str) -> ScimError {
        self.error_at(self.pos, what)
    }

    fn error_at(&self, pos: usize, what: &str) -> ScimError {
        ScimError::bad_request(
            ScimType::InvalidFilter,
            format!("invalid filter at byte {pos}: {what}"),
        )
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The run of name bytes at the cursor (possibly empty), consumed.
    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_name_byte) {
            self.pos += 1;
        }
        &self.src[start..self.pos]
    }

    /// Consumes `kw` (any case) after optional whitespace if it stands there as a
    /// whole word; otherwise consumes nothing.
    fn keyword(&mut self, kw: &str) -> bool {
        let save = self.pos;
        self.skip_ws();
        if self.word().eq_ignore_ascii_case(kw) {
            true
        } else {
            self.pos = save;
            false
        }
    }

    fn enter(&mut self) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > self.opts.max_depth {
            return Err(self.error(&format!(
                "nested deeper than {} levels",
                self.opts.max_depth
            )));
        }
        Ok(())
    }

    fn expect_close(&mut self, close: u8) -> Result<(), ScimError> {
        self.skip_ws();
        if self.eat(close) {
            self.depth -= 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{}'", close as char)))
        }
    }

    /// `filter = term *("or" term)`
    fn filter(&mut self, scope: Scope) -> Result<Filter, ScimError> {
        let mut terms = vec![self.and_term(scope)?];
        while self.keyword("or") {
            terms.push(self.and_term(scope)?);
        }
        Ok(if terms.len() == 1 {
            terms.swap_remove(0)
        } else {
            Filter::Or(terms)
        })
    }

    /// `term = unary *("and" unary)`
    fn and_term(&mut self, scope: Scope) -> Result<Filter, ScimError> {
        let mut terms = vec![self.unary(scope)?];
        while self.keyword("and") {
            terms.push(self.unary(scope)?);
        }
        Ok(if terms.len() == 1 {
            terms.swap_remove(0)
        } else {
            Filter::And(terms)
        })
    }

    /// `unary = "(" filter ")" / "not" "(" filter ")" / attrExp / valuePath`
    fn unary(&mut self, scope: Scope) -> Result<Filter, ScimError> {
        self.skip_ws();
        if self.eat(b'(') {
            self.enter()?;
            let f = self.filter(scope)?;
            self.expect_close(b')')?;
            return Ok(f);
        }
        let save = self.pos;
        if self.word().eq_ignore_ascii_case("not") {
            self.skip_ws();
            if self.eat(b'(') {
                self.enter()?;
                let f = self.filter(scope)?;
                self.expect_close(b')')?;
                return Ok(Filter::Not(Box::new(f)));
            }
        }
        // Not a `not (…)`: an attribute, possibly one named "not".
        self.pos = save;
        self.attr_expr(scope)
    }

    fn attr_expr(&mut self, scope: Scope) -> Result<Filter, ScimError> {
        let start = self.pos;
        let name = self.word();
        if name.is_empty() {
            return Err(self.error("expected an attribute name, 'not' or '('"));
        }
        let attr = self.resolve(scope, name, start)?;
        self.skip_ws();
        if self.peek() == Some(b'[') {
            if let Scope::Values(_) = scope {
                return Err(self.error("value filters cannot be nested"));
            }
            let parent = match &attr {
                FilterAttr::Known(a) if a.sub.is_none() && a.attr.ty == AttrType::Complex => {
                    Some(*a)
                }
                FilterAttr::Known(a) => {
                    return Err(self.error_at(
                        start,
                        &format!("'{a}' is not a complex attribute; it takes no value filter"),
                    ));
                }
                FilterAttr::Unknown(_) => None,
            };
            let inner = self.bracketed(parent)?;
            if self.peek() == Some(b'.') {
                return Err(self.error(
                    "a sub-attribute after a value filter is a PATCH path, not a filter; \
                     write e.g. emails[type eq \"work\" and value eq \"…\"]",
                ));
            }
            return Ok(Filter::ValuePath(attr, Box::new(inner)));
        }
        let op_pos = self.pos;
        let op = self.word();
        if op.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(attr));
        }
        let Some(op) = CompareOp::parse(op) else {
            return Err(self.error_at(
                op_pos,
                "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)",
            ));
        };
        self.skip_ws();
        let value_pos = self.pos;
        let literal = self.literal()?;
        self.compare(attr, op, literal, value_pos)
    }

    /// `"[" filter "]"`, with the cursor on `[`.
    fn bracketed(&mut self, parent: Option<AttrRef>) -> Result<Filter, ScimError> {
        if !self.eat(b'[') {
            return Err(self.error("expected '['"));
        }
        self.enter()?;
        let inner = self.filter(Scope::Values(parent))?;
        self.expect_close(b']')?;
        Ok(inner)
    }

    fn resolve(&self, scope: Scope, name: &str, at: usize) -> Result<FilterAttr, ScimError> {
        let Some(path) = RawPath::parse(name) else {
            return Err(self.error_at(at, &format!("{name:?} is not an attribute path")));
        };
        let known = match scope {
            Scope::Resource => self.rt.resolve(&path),
            Scope::Values(Some(parent)) if path.urn.is_none() && path.sub.is_none() => parent
                .attr
                .sub_attribute(path.name)
                .map(|s| parent.with_sub(Some(s))),
            Scope::Values(_) => None,
        };
        match (known, self.opts.unknown_attributes) {
            (Some(a), _) => Ok(FilterAttr::Known(a)),
            (None, UnknownAttributes::NeverPresent) => Ok(FilterAttr::Unknown(name.to_owned())),
            (None, UnknownAttributes::Reject) => {
                Err(self.error_at(at, &format!("unknown attribute {name:?}")))
            }
        }
    }

    fn literal(&mut self) -> Result<Literal, ScimError> {
        match self.peek() {
            Some(b'"') => {
                let start = self.pos;
                let bytes = self.src.as_bytes();
                let mut i = start + 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(self.error_at(start, "unterminated string")),
                        Some(b'\\') => i += 2,
                        Some(b'"') => break,
                        Some(_) => i += 1,
                    }
                }
                let text = self.src.get(start..=i).unwrap_or_default();
                self.pos = i + 1;
                serde_json::from_str::<String>(text)
                    .map(Literal::String)
                    .map_err(|_| self.error_at(start, "invalid string literal"))
            }
            Some(b) if b == b'-' || b.is_ascii_digit() => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
                {
                    self.pos += 1;
                }
                serde_json::from_str::<Number>(&self.src[start..self.pos])
                    .map(Literal::Number)
                    .map_err(|_| self.error_at(start, "invalid number"))
            }
            _ => {
                let start = self.pos;
                let w = self.word();
                if w.eq_ignore_ascii_case("true") {
                    Ok(Literal::Bool(true))
                } else if w.eq_ignore_ascii_case("false") {
                    Ok(Literal::Bool(false))
                } else if w.eq_ignore_ascii_case("null") {
                    Ok(Literal::Null)
                } else {
                    Err(self.error_at(
                        start,
                        "expected a value: a \"string\", a number, true, false or null",
                    ))
                }
            }
        }
    }

    /// Types the literal by the attribute, rejecting meaningless combinations.
    fn compare(
        &self,
        attr: FilterAttr,
        op: CompareOp,
        literal: Literal,
        at: usize,
    ) -> Result<Filter, ScimError> {
        let fail = |what: String| Err(self.error_at(at, &what));
        let literal = match literal {
            Literal::Null => {
                return match op {
                    CompareOp::Eq => Ok(Filter::Not(Box::new(Filter::Present(attr)))),
                    CompareOp::Ne => Ok(Filter::Present(attr)),
                    _ => fail(format!("null can only be compared with eq or ne, not {op}")),
                };
            }
            l => l,
        };
        let a = match attr {
            FilterAttr::Unknown(_) => {
                let value = match literal {
                    Literal::String(s) => CompValue::String(s),
                    Literal::Number(n) => CompValue::Number(n),
                    Literal::Bool(b) => CompValue::Boolean(b),
                    Literal::Null => return fail("null".into()),
                };
                return Ok(Filter::Compare(attr, op, value));
            }
            FilterAttr::Known(a) => a,
        };
        // `emails eq "x"` compares the `value` sub-attribute.
        let a = match (a.sub, a.attr.ty) {
            (None, AttrType::Complex) => match a.attr.value_sub_attribute() {
                Some(v) => a.with_sub(Some(v)),
                None => {
                    return fail(format!(
                        "'{a}' is complex: compare one of its sub-attributes, e.g. '{a}.{}'",
                        a.attr.sub_attributes.first().map_or("value", |s| s.name)
                    ));
                }
            },
            _ => a,
        };
        let ty = a.leaf().ty;
        let value = match (ty, literal) {
            (AttrType::Binary, _) if op.is_ordering() => {
                return fail(format!("'{a}' is binary: {op} does not apply"));
            }
            (t, Literal::String(s)) if t.is_textual() => CompValue::String(s),
            (t, _) if t.is_textual() => {
                return fail(format!(
                    "'{a}' is a string: compare it with a quoted string"
                ));
            }
            (_, _) if op.is_substring() => {
                return fail(format!("'{a}' is not a string: {op} does not apply"));
            }
            (AttrType::Boolean, _) if op.is_ordering() => {
                return fail(format!("'{a}' is boolean: only eq, ne and pr apply"));
            }
            (AttrType::Boolean, Literal::Bool(b)) => CompValue::Boolean(b),
            (AttrType::Boolean, Literal::String(s)) if s.eq_ignore_ascii_case("true") => {
                CompValue::Boolean(true)
            }
            (AttrType::Boolean, Literal::String(s)) if s.eq_ignore_ascii_case("false") => {
                CompValue::Boolean(false)
            }
            (AttrType::Boolean, _) => {
                return fail(format!("'{a}' is boolean: compare it with true or false"));
            }
            (AttrType::Integer | AttrType::Decimal, Literal::Number(n)) => CompValue::Number(n),
            (AttrType::Integer | AttrType::Decimal, _) => {
                return fail(format!("'{a}' is a number: compare it with a number"));
            }
            (AttrType::DateTime, Literal::String(s)) => match parse_date_time(&s) {
                Some(t) => CompValue::DateTime(t),
                None => {
                    return fail(format!(
                        "'{a}' is a dateTime: {s:?} is not an RFC 3339 timestamp"
                    ));
                }
            },
            (AttrType::DateTime, _) => {
                return fail(format!(
                    "'{a}' is a dateTime: compare it with a quoted RFC 3339 timestamp"
                ));
            }
            (_, _) => return fail(format!("'{a}' cannot be compared with a value")),
        };
        Ok(Filter::Compare(FilterAttr::Known(a), op, value))
    }
}

/// An RFC 3339 timestamp, truncated to microseconds (Postgres's precision) so both
/// filter back ends compare the same instant.
pub(crate) fn parse_date_time(s: &str) -> Option<OffsetDateTime> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    Some(
        t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
            .unwrap_or(t),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::definitions::{GROUP, USER};
    use proptest::prelude::*;

    fn parse(s: &str) -> Filter {
        Filter::parse(s, &USER).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn parse_err(s: &str) -> ScimError {
        let e = Filter::parse(s, &USER).expect_err(s);
        assert_eq!(
            (e.status, e.scim_type),
            (400, Some(ScimType::InvalidFilter)),
            "{s}"
        );
        e
    }

    /// Canonical text after parsing.
    fn canon(s: &str) -> String {
        parse(s).to_string()
    }

    #[test]
    fn okta_user_and_group_lookups() {
        let f = parse(r#"userName eq "x@y.com""#);
        let Filter::Compare(FilterAttr::Known(a), CompareOp::Eq, CompValue::String(v)) = &f else {
            panic!("{f:?}")
        };
        assert_eq!((a.attr.name, v.as_str()), ("userName", "x@y.com"));
        assert_eq!(
            Filter::parse(r#"displayName eq "Engineering""#, &GROUP)
                .unwrap()
                .to_string(),
            r#"displayName eq "Engineering""#
        );
    }

    #[test]
    fn all_operators_any_case() {
        for op in CompareOp::ALL {
            let s = format!("title {} \"x\"", op.as_str().to_uppercase());
            assert_eq!(canon(&s), format!("title {op} \"x\""));
        }
        assert_eq!(canon("title PR"), "title pr");
        assert_eq!(canon(r#"USERNAME Eq "A""#), r#"userName eq "A""#);
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let f = parse(r#"title pr or userName eq "a" and active eq true"#);
        let Filter::Or(terms) = &f else {
            panic!("{f:?}")
        };
        assert!(matches!(terms[1], Filter::And(_)));
        assert_eq!(
            f.to_string(),
            r#"title pr or (userName eq "a" and active eq true)"#
        );
        let g = parse(r#"(title pr or userName eq "a") and active eq true"#);
        assert!(matches!(g, Filter::And(_)));
        assert_eq!(
            canon("a pr and b pr and c pr or d pr"),
            "(a pr and b pr and c pr) or d pr"
        );
    }

    #[test]
    fn not_parentheses_and_keywords() {
        assert_eq!(canon(r#"NOT (title eq "x")"#), r#"not (title eq "x")"#);
        assert_eq!(canon(r#"not(title eq "x")"#), r#"not (title eq "x")"#);
        assert_eq!(canon("((title pr))"), "title pr");
        // An attribute may be called "not" or "and".
        assert_eq!(canon("not pr"), "not pr");
        assert_eq!(canon("and pr and or pr"), "and pr and or pr");
        parse_err("not title pr");
        parse_err("title pr and");
        parse_err("(title pr");
        parse_err("title pr)");
        parse_err("");
        parse_err("   ");
    }

    #[test]
    fn sub_attributes_and_urns() {
        assert_eq!(
            canon(r#"name.FAMILYNAME eq "J""#),
            r#"name.familyName eq "J""#
        );
        assert_eq!(
            canon(r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName sw "B""#),
            r#"name.givenName sw "B""#
        );
        assert_eq!(
            canon(
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D""#
            ),
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D""#
        );
        assert_eq!(
            canon(
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m""#
            ),
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m""#
        );
        assert_eq!(
            canon("meta.lastModified gt \"2011-05-13T04:42:34Z\""),
            "meta.lastModified gt \"2011-05-13T04:42:34Z\""
        );
    }

    #[test]
    fn value_paths() {
        let f = parse(r#"emails[type eq "work" and primary eq TRUE]"#);
        let Filter::ValuePath(FilterAttr::Known(parent), inner) = &f else {
            panic!("{f:?}")
        };
        assert_eq!(parent.to_string(), "emails");
        let Filter::And(terms) = inner.as_ref() else {
            panic!()
        };
        let Filter::Compare(FilterAttr::Known(t), _, _) = &terms[0] else {
            panic!()
        };
        assert_eq!(t.to_string(), "emails.type");
        assert_eq!(
            f.to_string(),
            r#"emails[type eq "work" and primary eq true]"#
        );
        assert_eq!(
            canon(r#"emails[not (value ew ".org")]"#),
            r#"emails[not (value ew ".org")]"#
        );
        assert_eq!(
            canon(r#"name[givenName eq "x"]"#),
            r#"name[givenName eq "x"]"#
        );
        assert_eq!(
            canon(r#"Emails [ type eq "work" ]"#),
            r#"emails[type eq "work"]"#
        );
        let e = parse_err(r#"emails[type eq "work"].value eq "a@b""#);
        assert!(e.detail.contains("PATCH path"), "{}", e.detail);
        parse_err(r#"emails[type[x eq 1] pr]"#);
        parse_err(r#"userName[x eq 1]"#);
        parse_err(r#"name.givenName[x eq 1]"#);
        parse_err(r#"emails[type eq "work""#);
        // Inside a value path, names are the parent's sub-attributes only.
        let u = parse(r#"emails[userName eq "x"]"#);
        let Filter::ValuePath(_, inner) = u else {
            panic!()
        };
        assert!(matches!(
            *inner,
            Filter::Compare(FilterAttr::Unknown(_), _, _)
        ));
    }

    #[test]
    fn literals() {
        assert_eq!(
            canon(r#"title eq "a\"b\\c\u00e9\n""#),
            r#"title eq "a\"b\\cé\n""#
        );
        assert_eq!(canon("active eq FALSE"), "active eq false");
        assert_eq!(canon(r#"active eq "True""#), "active eq true");
        assert_eq!(canon("title eq null"), "not (title pr)");
        assert_eq!(canon("title ne NULL"), "title pr");
        assert_eq!(canon(r#"userName eq"x""#), r#"userName eq "x""#);
        assert_eq!(canon("x eq -1.5e3"), "x eq -1500.0");
        assert_eq!(canon("x gt 10"), "x gt 10");
        parse_err("title gt null");
        parse_err(r#"title eq "unterminated"#);
        parse_err(r#"title eq 'single'"#);
        parse_err("title eq bare");
        parse_err("title eq 01");
        parse_err("title eq 1e999");
        parse_err("title eq \"tab\there\"");
        parse_err("title eq");
        parse_err("title");
        parse_err("title zz \"x\"");
    }

    #[test]
    fn types_are_checked() {
        parse_err("active gt true");
        parse_err(r#"active eq "yes""#);
        parse_err("active eq 1");
        parse_err(r#"active co "t""#);
        parse_err("userName eq 1");
        parse_err("userName eq true");
        parse_err(r#"meta.created co "2020""#);
        parse_err(r#"meta.created gt "yesterday""#);
        parse_err(r#"name eq "x""#);
        parse_err(r#"x509Certificates.value gt "x""#);
        // Complex with a `value` sub-attribute compares it.
        assert_eq!(canon(r#"emails eq "a@b""#), r#"emails.value eq "a@b""#);
        assert_eq!(canon(r#"groups eq "g1""#), r#"groups.value eq "g1""#);
        // Unknown attributes keep the literal as written.
        assert_eq!(canon("foo gt true"), "foo gt true");
    }

    #[test]
    fn date_times_are_parsed_and_truncated() {
        let f = parse(r#"meta.created ge "2024-01-02T03:04:05.123456789+02:00""#);
        let Filter::Compare(_, _, CompValue::DateTime(t)) = &f else {
            panic!()
        };
        assert_eq!(t.nanosecond(), 123_456_000);
        assert_eq!(
            f.to_string(),
            r#"meta.created ge "2024-01-02T03:04:05.123456+02:00""#
        );
    }

    #[test]
    fn unknown_attributes_policy() {
        assert!(matches!(
            parse("nope pr"),
            Filter::Present(FilterAttr::Unknown(_))
        ));
        assert!(matches!(
            parse("name.nope pr"),
            Filter::Present(FilterAttr::Unknown(_))
        ));
        let strict = FilterOptions {
            unknown_attributes: UnknownAttributes::Reject,
            ..Default::default()
        };
        let e = Filter::parse_with("nope pr", &USER, strict).unwrap_err();
        assert!(e.detail.contains("unknown attribute"), "{}", e.detail);
        assert!(Filter::parse_with("userName pr", &USER, strict).is_ok());
        parse_err("1abc pr");
        parse_err("urn:x y pr");
    }

    #[test]
    fn limits() {
        let deep = format!("{}title pr{}", "(".repeat(33), ")".repeat(33));
        assert!(parse_err(&deep).detail.contains("nested deeper"));
        let ok = format!("{}title pr{}", "(".repeat(32), ")".repeat(32));
        parse(&ok);
        let nots = format!("{}title pr{}", "not (".repeat(40), ")".repeat(40));
        parse_err(&nots);
        let long = format!("title eq \"{}\"", "a".repeat(MAX_FILTER_LEN));
        assert!(parse_err(&long).detail.contains("longer than"));
        // Very deep input fails fast without exhausting the stack.
        parse_err(&"(".repeat(100_000));
        parse_err(&"not (".repeat(1_000));
        // A long flat chain is not deep.
        let chain = vec!["title pr"; 300].join(" or ");
        assert!(matches!(parse(&chain), Filter::Or(t) if t.len() == 300));
    }

    #[test]
    fn errors_name_the_position() {
        let e = parse_err(r#"userName xx "a""#);
        assert!(e.detail.contains("byte 9"), "{}", e.detail);
        assert!(e.detail.contains("expected an operator"), "{}", e.detail);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(s in "\\PC{0,200}") {
            let _ = Filter::parse(&s, &USER);
        }

        #[test]
        fn never_panics_on_filter_like_text(s in "[a-zA-Z. \\[\\]()\"\\\\:0-9-]{0,120}") {
            let _ = Filter::parse(&s, &USER);
        }

        #[test]
        fn display_round_trips(f in crate::scim::testing::filter_text()) {
            let parsed = Filter::parse(&f, &USER).unwrap();
            let shown = parsed.to_string();
            let again = Filter::parse(&shown, &USER).unwrap();
            prop_assert_eq!(&parsed, &again, "{} -> {}", f, shown);
            prop_assert_eq!(shown.clone(), again.to_string());
        }
    }
}
