//! `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9) applied to an output
//! resource, together with the schema's `returned` rules (RFC 7643 §7): `always`
//! attributes (`id`) are returned whatever is asked, `never` ones (`password`) never,
//! `request` ones only when named, `default` ones unless excluded or unless
//! `attributes` names others. `schemas` is always returned.
//!
//! Names are comma-separated, case-insensitive, URN-qualified or not, and may name a
//! sub-attribute (`name.givenName`, `emails.value`) or a whole extension. Names the
//! schema does not define are ignored (an unknown extension URN selects that
//! extension's object as stored); names that are not attribute paths at all are
//! `400 invalidValue`. If both parameters are given, `attributes` selects first and
//! `excludedAttributes` then removes.

use serde_json::{Map, Value};

use super::error::{ScimError, ScimType};
use super::schema::{AttrRef, AttributeDef, RawPath, ResourceType, Returned, Schema};
use super::value::is_extension_key;

/// One name of an `attributes` or `excludedAttributes` list.
#[derive(Debug, Clone, PartialEq)]
enum Selector {
    /// A schema attribute, or one of its sub-attributes.
    Attr(AttrRef),
    /// A whole known extension.
    Extension(&'static Schema),
    /// A whole extension we do not define, by its URN key.
    Foreign(String),
}

/// What a response should contain, parsed once per request.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    resource_type: &'static ResourceType,
    /// `None` when `attributes` was not given: default attributes are returned.
    include: Option<Vec<Selector>>,
    exclude: Vec<Selector>,
}

/// How much of an attribute survives the selection.
enum Keep {
    None,
    Whole,
    /// Only these sub-attributes (by canonical name).
    Subs(Vec<&'static str>),
}

impl Projection {
    /// Everything `default`, nothing `never`: the projection of a request without
    /// either parameter (and of POST/PUT/PATCH responses).
    pub fn default_for(rt: &'static ResourceType) -> Self {
        Self {
            resource_type: rt,
            include: None,
            exclude: Vec::new(),
        }
    }

    /// Parses the query parameters (absent or empty means not given).
    pub fn parse(
        attributes: Option<&str>,
        excluded_attributes: Option<&str>,
        rt: &'static ResourceType,
    ) -> Result<Self, ScimError> {
        let include = match attributes.map(str::trim).filter(|s| !s.is_empty()) {
            Some(list) => Some(parse_list(list, rt)?),
            None => None,
        };
        let exclude = match excluded_attributes {
            Some(list) => parse_list(list, rt)?,
            None => Vec::new(),
        };
        Ok(Self {
            resource_type: rt,
            include,
            exclude,
        })
    }

    /// Whether any part of the top-level attribute `name` (a core or common
    /// attribute, e.g. `members`) will be returned, so the caller can skip loading it.
    pub fn returns(&self, name: &str) -> bool {
        let rt = self.resource_type;
        let Some(a) = rt.resolve(&RawPath {
            urn: None,
            name,
            sub: None,
        }) else {
            return false;
        };
        !matches!(self.keep(&a.with_sub(None)), Keep::None)
    }

    /// The resource with only the selected attributes. A non-object is returned as is.
    pub fn apply(&self, resource: &Value) -> Value {
        let Some(obj) = resource.as_object() else {
            return resource.clone();
        };
        let rt = self.resource_type;
        let mut out = Map::new();
        for (key, v) in obj {
            if key == "schemas" {
                out.insert(key.clone(), v.clone());
            } else if let Some(ext) = rt.extension(key) {
                let Some(fields) = v.as_object() else {
                    continue;
                };
                if self.exclude.contains(&Selector::Extension(ext)) {
                    continue;
                }
                let selected = self
                    .include
                    .as_ref()
                    .is_some_and(|l| l.contains(&Selector::Extension(ext)));
                let mut kept = Map::new();
                for (k, fv) in fields {
                    if let Some(attr) = ext.attribute(k) {
                        let a = AttrRef {
                            extension: Some(ext),
                            attr,
                            sub: None,
                        };
                        if let Some(p) = self.project(&a, fv, selected) {
                            kept.insert(k.clone(), p);
                        }
                    } else if selected || self.include.is_none() {
                        kept.insert(k.clone(), fv.clone());
                    }
                }
                if !kept.is_empty() {
                    out.insert(key.clone(), Value::Object(kept));
                }
            } else if let Some(a) = RawPath::parse(key)
                .filter(|p| p.urn.is_none() && p.sub.is_none())
                .and_then(|p| rt.resolve(&p))
                .filter(|a| a.extension.is_none())
            {
                if let Some(p) = self.project(&a, v, false) {
                    out.insert(key.clone(), p);
                }
            } else if is_extension_key(key, v) {
                let named = |l: &Vec<Selector>| {
                    l.iter()
                        .any(|s| matches!(s, Selector::Foreign(u) if u.eq_ignore_ascii_case(key)))
                };
                if self.include.as_ref().is_none_or(named) && !named(&self.exclude) {
                    out.insert(key.clone(), v.clone());
                }
            } else if self.include.is_none() {
                // Not a schema attribute (stored by an older version, or a client's
                // extra key): returned only by default.
                out.insert(key.clone(), v.clone());
            }
        }
        Value::Object(out)
    }

    /// The projected value of top-level attribute `a` with value `v`, if any.
    /// `extension_selected` is true when the whole extension was named in `attributes`.
    fn project(&self, a: &AttrRef, v: &Value, extension_selected: bool) -> Option<Value> {
        let keep = if extension_selected && a.attr.returned != Returned::Never {
            self.excluded(a)
        } else {
            self.keep(a)
        };
        match keep {
            Keep::None => None,
            Keep::Whole => Some(without_never_subs(a.attr, v)),
            Keep::Subs(subs) => {
                let pick = |item: &Value| -> Value {
                    match item.as_object() {
                        Some(o) => Value::Object(
                            o.iter()
                                .filter(|(k, _)| subs.contains(&k.as_str()))
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                        ),
                        None => item.clone(),
                    }
                };
                match v {
                    Value::Array(items) => Some(Value::Array(items.iter().map(pick).collect())),
                    other => Some(pick(other)),
                }
            }
        }
    }

    /// What the include list and `returned` keep of top-level `a`, before exclusion.
    fn keep(&self, a: &AttrRef) -> Keep {
        let attr = a.attr;
        match attr.returned {
            Returned::Never => return Keep::None,
            Returned::Always => return Keep::Whole,
            Returned::Default | Returned::Request => {}
        }
        let selected = match &self.include {
            None if attr.returned == Returned::Request => return Keep::None,
            None => Keep::Whole,
            Some(list) => {
                let same = |s: &&Selector| matches!(s, Selector::Attr(x) if x.extension == a.extension && x.attr == attr);
                if list
                    .iter()
                    .filter(same)
                    .any(|s| matches!(s, Selector::Attr(x) if x.sub.is_none()))
                {
                    Keep::Whole
                } else {
                    let mut subs: Vec<&'static str> = list
                        .iter()
                        .filter(same)
                        .filter_map(|s| match s {
                            Selector::Attr(x) => x.sub.map(|s| s.name),
                            _ => None,
                        })
                        .collect();
                    if subs.is_empty() {
                        return Keep::None;
                    }
                    subs.extend(
                        attr.sub_attributes
                            .iter()
                            .filter(|s| s.returned == Returned::Always)
                            .map(|s| s.name),
                    );
                    Keep::Subs(subs)
                }
            }
        };
        match selected {
            Keep::Whole => self.excluded(a),
            other => other,
        }
    }

    /// `a` whole, minus what `excludedAttributes` removes.
    fn excluded(&self, a: &AttrRef) -> Keep {
        let attr = a.attr;
        if attr.returned == Returned::Always {
            return Keep::Whole;
        }
        let mut removed_subs = Vec::new();
        for s in &self.exclude {
            match s {
                Selector::Attr(x) if x.extension == a.extension && x.attr == attr => match x.sub {
                    None => return Keep::None,
                    Some(sub) if sub.returned != Returned::Always => removed_subs.push(sub.name),
                    Some(_) => {}
                },
                _ => {}
            }
        }
        if removed_subs.is_empty() {
            return Keep::Whole;
        }
        Keep::Subs(
            attr.sub_attributes
                .iter()
                .map(|s| s.name)
                .filter(|n| !removed_subs.contains(n))
                .collect(),
        )
    }
}

/// `v` without sub-attributes whose `returned` is `never`.
fn without_never_subs(attr: &AttributeDef, v: &Value) -> Value {
    let never: Vec<&str> = attr
        .sub_attributes
        .iter()
        .filter(|s| s.returned == Returned::Never)
        .map(|s| s.name)
        .collect();
    if never.is_empty() {
        return v.clone();
    }
    let strip = |item: &Value| match item.as_object() {
        Some(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| !never.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        None => item.clone(),
    };
    match v {
        Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
        other => strip(other),
    }
}

fn parse_list(list: &str, rt: &'static ResourceType) -> Result<Vec<Selector>, ScimError> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(ext) = rt.extension(name) {
            out.push(Selector::Extension(ext));
            continue;
        }
        let Some(path) = RawPath::parse(name) else {
            return Err(ScimError::bad_request(
                ScimType::InvalidValue,
                format!("{name:?} is not an attribute name"),
            ));
        };
        match rt.resolve(&path) {
            Some(a) => out.push(Selector::Attr(a)),
            None if path.urn.is_some() && rt.extension(path.urn.unwrap_or_default()).is_none() => {
                // `urn:…:CustomExt:2.0:User` splits as URN + "User": it names the whole
                // foreign extension object stored under that key.
                out.push(Selector::Foreign(name.to_owned()));
            }
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::definitions::{ENTERPRISE_USER_URN, GROUP, USER};
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_URN],
            "id": "u1",
            "externalId": "e1",
            "userName": "bjensen",
            "password": "never shown",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "a@b", "type": "work", "primary": true}, {"value": "c@d", "type": "home"}],
            "active": true,
            ENTERPRISE_USER_URN: {"department": "Ops", "costCenter": "C1"},
            "urn:example:custom:1.0:User": {"shoe": 42},
            "meta": {"resourceType": "User", "location": "https://x/Users/u1"}
        })
    }

    fn project(attrs: Option<&str>, excluded: Option<&str>) -> Value {
        Projection::parse(attrs, excluded, &USER)
            .unwrap()
            .apply(&user())
    }

    #[test]
    fn default_drops_only_never() {
        let mut expected = user();
        expected.as_object_mut().unwrap().remove("password");
        assert_eq!(project(None, None), expected);
        assert_eq!(Projection::default_for(&USER).apply(&user()), expected);
        assert_eq!(project(Some(" "), Some("")), expected);
    }

    #[test]
    fn attributes_select_and_keep_always() {
        assert_eq!(
            project(Some("userName,NAME.givenName"), None),
            json!({
                "schemas": user()["schemas"],
                "id": "u1",
                "userName": "bjensen",
                "name": {"givenName": "Barbara"}
            })
        );
        assert_eq!(
            project(Some("emails.value"), None)["emails"],
            json!([{"value": "a@b"}, {"value": "c@d"}])
        );
        assert_eq!(project(Some("password"), None).get("password"), None);
        assert_eq!(
            project(
                Some("urn:ietf:params:scim:schemas:core:2.0:User:userName"),
                None
            )["userName"],
            "bjensen"
        );
    }

    #[test]
    fn extensions() {
        let dept = format!("{ENTERPRISE_USER_URN}:department");
        let p = project(Some(&dept), None);
        assert_eq!(p[ENTERPRISE_USER_URN], json!({"department": "Ops"}));
        assert!(p.get("urn:example:custom:1.0:User").is_none());
        assert_eq!(
            project(Some(ENTERPRISE_USER_URN), None)[ENTERPRISE_USER_URN],
            user()[ENTERPRISE_USER_URN]
        );
        let p = project(None, Some(&dept));
        assert_eq!(p[ENTERPRISE_USER_URN], json!({"costCenter": "C1"}));
        let p = project(None, Some(ENTERPRISE_USER_URN));
        assert!(p.get(ENTERPRISE_USER_URN).is_none());
        let p = project(Some("userName,urn:example:custom:1.0:User"), None);
        assert_eq!(p["urn:example:custom:1.0:User"], json!({"shoe": 42}));
        let p = project(None, Some("urn:example:custom:1.0:User"));
        assert!(p.get("urn:example:custom:1.0:User").is_none());
    }

    #[test]
    fn excluded_attributes() {
        let p = project(None, Some("emails,name.familyName,meta,id"));
        assert!(p.get("emails").is_none());
        assert!(p.get("meta").is_none());
        assert_eq!(p["id"], "u1", "id is always returned");
        assert_eq!(p["name"], json!({"givenName": "Barbara"}));
        assert_eq!(p["userName"], "bjensen");
        let p = project(Some("name,emails"), Some("name.givenName"));
        assert_eq!(p["name"], json!({"familyName": "Jensen"}));
        assert!(p.get("emails").is_some());
        assert!(p.get("userName").is_none());
    }

    #[test]
    fn unknown_and_invalid_names() {
        assert_eq!(project(Some("nope,userName"), None)["userName"], "bjensen");
        let e = Projection::parse(Some("emails[type eq \"work\"]"), None, &USER).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert_eq!(
            Projection::parse(None, None, &USER)
                .unwrap()
                .apply(&json!([1])),
            json!([1])
        );
    }

    #[test]
    fn members_loading_hint() {
        let p = |a, x| Projection::parse(a, x, &GROUP).unwrap();
        assert!(p(None, None).returns("members"));
        assert!(!p(None, Some("members")).returns("members"));
        assert!(!p(None, Some("MEMBERS")).returns("members"));
        assert!(p(None, Some("members.display")).returns("members"));
        assert!(!p(Some("displayName"), None).returns("members"));
        assert!(p(Some("members.value"), None).returns("members"));
        assert!(p(Some("displayName"), None).returns("id"));
        assert!(!p(None, None).returns("nope"));
        let g = json!({"id": "g", "displayName": "Eng", "members": [{"value": "u"}]});
        assert_eq!(
            p(None, Some("members")).apply(&g),
            json!({"id": "g", "displayName": "Eng"})
        );
    }
}
