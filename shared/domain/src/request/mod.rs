//! Turning untrusted request bodies into validated commands: one reader for every body.
//!
//! A body is read as a JSON value and each field parsed on its own by [`Fields`], so a wrong type
//! names its field by its path (`lines[2].quantity: must be a whole number from 1 to 999`)
//! instead of failing the whole body on the first serde error, every bad field is reported at
//! once, and a field the command does not know is refused the same way everywhere (`is not a
//! known field`). The OpenAPI document can then say it once: every body is closed
//! (`additionalProperties: false`) and every error is `errors: [{field, message}]`.
//!
//! - [`order`]: `POST /orders`.
//! - [`returns`]: `POST /orders/{id}/returns` and `POST /returns/{id}/receive`.
//! - [`fulfillment`]: the warehouse's `pack` and `ship`, and the carriers' webhook.
//! - [`inventory`]: `PUT /inventory/{sku}` and `POST /inventory/{sku}/adjustments`.
//! - [`location`]: `PUT /locations/{id}`.
//! - [`payments`]: the payment service provider's webhook.
//! - [`staff`]: the small bodies of staff and customer actions (a reason, a note).
//!
//! Addresses, contacts and notification preferences parse through the same reader beside their
//! types ([`crate::contact`], [`crate::notifications`]).

use std::fmt::Display;
use std::ops::RangeInclusive;

use serde_json::{Map, Value};

use crate::validation::ValidationErrors;

mod contact;
pub mod fulfillment;
pub mod inventory;
pub mod location;
pub mod order;
pub mod payments;
pub mod returns;
pub mod staff;
pub mod stripe;

pub use order::{OrderRequest, RequestedLine};

/// A JSON object read field by field. Every problem is recorded in the caller's
/// [`ValidationErrors`] under the field's path; a reader method that found a problem answers
/// `None`, so a command is built only when every part of it parsed.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    path: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// The request body: a JSON object whose keys are all `known`.
    pub fn body(errors: &mut ValidationErrors, body: &'a Value, known: &[&str]) -> Option<Self> {
        match body {
            Value::Object(map) => Some(Self::checked(errors, "", map, known)),
            _ => {
                errors.add("", "the body must be a JSON object");
                None
            }
        }
    }

    /// A body from a third party, read open: fields it does not know are ignored, not refused.
    pub fn open_body(errors: &mut ValidationErrors, body: &'a Value) -> Option<Self> {
        match body {
            Value::Object(map) => Some(Self { path: "", map }),
            _ => {
                errors.add("", "the body must be a JSON object");
                None
            }
        }
    }

    /// The object at `path` (required), whose keys are all `known`.
    pub fn object_at(
        errors: &mut ValidationErrors,
        path: &'a str,
        value: Option<&'a Value>,
        known: &[&str],
    ) -> Option<Self> {
        match value {
            None | Some(Value::Null) => {
                errors.add(path, "is required");
                None
            }
            Some(Value::Object(map)) => Some(Self::checked(errors, path, map, known)),
            Some(_) => {
                errors.add(path, "must be an object");
                None
            }
        }
    }

    fn checked(
        errors: &mut ValidationErrors,
        path: &'a str,
        map: &'a Map<String, Value>,
        known: &[&str],
    ) -> Self {
        let fields = Self { path, map };
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            errors.add(fields.path_of(key), "is not a known field");
        }
        fields
    }

    /// The path of one of this object's fields: `name` at the root, `lines[2].name` below it.
    pub fn path_of(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// The field's value; `null` counts as absent.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// Whether the field is present (and not `null`).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A required field, parsed by `parse`.
    pub fn required<T, E: Display>(
        &self,
        errors: &mut ValidationErrors,
        name: &str,
        parse: impl FnOnce(&'a Value) -> Result<T, E>,
    ) -> Option<T> {
        match self.get(name) {
            None => {
                errors.add(self.path_of(name), "is required");
                None
            }
            Some(value) => errors.check(self.path_of(name), parse(value)),
        }
    }

    /// An optional field, parsed by `parse` when present.
    pub fn optional<T, E: Display>(
        &self,
        errors: &mut ValidationErrors,
        name: &str,
        parse: impl FnOnce(&'a Value) -> Result<T, E>,
    ) -> Option<T> {
        let value = self.get(name)?;
        errors.check(self.path_of(name), parse(value))
    }

    /// Optional free text (a note, a comment): trimmed, at most `max` characters, lines and
    /// tabs allowed but no other control or bidirectional-override character; blank is the same
    /// as absent.
    pub fn note(&self, errors: &mut ValidationErrors, name: &str, max: usize) -> Option<String> {
        self.optional(errors, name, |v| match v {
            Value::String(s) if s.trim().is_empty() && s.chars().count() <= max => {
                Ok::<_, String>(None)
            }
            Value::String(s) => {
                // Line breaks and tabs are text in a note; checked as spaces.
                let flat: String = s
                    .chars()
                    .map(|c| {
                        if matches!(c, '\n' | '\r' | '\t') {
                            ' '
                        } else {
                            c
                        }
                    })
                    .collect();
                text(max)(&Value::String(flat)).map(|_| Some(s.trim().to_owned()))
            }
            _ => text(max)(v).map(Some),
        })
        .flatten()
    }

    /// A required array of 1 to `max` items, each handed to `item` with its path (`name[i]`).
    /// `None` if the array itself is wrong; items that fail record their own errors.
    pub fn array<T>(
        &self,
        errors: &mut ValidationErrors,
        name: &str,
        max: usize,
        mut item: impl FnMut(&mut ValidationErrors, String, &'a Value) -> Option<T>,
    ) -> Option<Vec<T>> {
        let path = self.path_of(name);
        let items = match self.get(name) {
            None => {
                errors.add(path, "is required");
                return None;
            }
            Some(Value::Array(items)) => items,
            Some(_) => {
                errors.add(path, "must be an array");
                return None;
            }
        };
        if items.is_empty() || items.len() > max {
            errors.add(path, format!("must have 1 to {max} items"));
            return None;
        }
        let before = errors.0.len();
        let parsed: Vec<T> = items
            .iter()
            .enumerate()
            .filter_map(|(index, value)| item(errors, format!("{path}[{index}]"), value))
            .collect();
        (errors.0.len() == before).then_some(parsed)
    }

    /// A required array of 1 to `max` objects whose keys are all `known`, each read by `read`.
    pub fn objects<T>(
        &self,
        errors: &mut ValidationErrors,
        name: &str,
        max: usize,
        known: &[&str],
        mut read: impl FnMut(&mut ValidationErrors, Fields<'_>) -> Option<T>,
    ) -> Option<Vec<T>> {
        self.array(errors, name, max, |errors, path, value| {
            let item = Fields::object_at(errors, &path, Some(value), known)?;
            read(errors, item)
        })
    }
}

impl<'a> Fields<'a> {
    /// The body's `lines`, at most [`crate::MAX_ORDER_LINES`]: objects of a `sku`, a `quantity`
    /// and the `other` fields, each read by `read` given its SKU and quantity (where those
    /// parsed), so every bad field of every line is named.
    pub fn sku_lines<T>(
        &self,
        errors: &mut ValidationErrors,
        other: &[&str],
        mut read: impl FnMut(
            &mut ValidationErrors,
            &Fields<'_>,
            Option<crate::ids::Sku>,
            Option<crate::quantity::Quantity>,
        ) -> Option<T>,
    ) -> Option<Vec<T>> {
        let known: Vec<&str> = ["sku", "quantity"]
            .into_iter()
            .chain(other.iter().copied())
            .collect();
        let max = crate::MAX_ORDER_LINES;
        self.objects(errors, "lines", max, &known, |errors, line| {
            let (sku, quantity) = sku_and_quantity(errors, &line);
            read(errors, &line, sku, quantity)
        })
    }
}

/// A line's `sku` and `quantity`, the two fields every kind of line has.
pub fn sku_and_quantity(
    errors: &mut ValidationErrors,
    line: &Fields<'_>,
) -> (Option<crate::ids::Sku>, Option<crate::quantity::Quantity>) {
    let sku = line.required(errors, "sku", string(crate::ids::Sku::parse));
    let quantity = line.required(errors, "quantity", crate::quantity::Quantity::from_json);
    (sku, quantity)
}

/// Whether no two `lines` name the same SKU; each repeat is named (`lines[3].sku`).
pub fn one_per_sku<T>(
    errors: &mut ValidationErrors,
    lines: &[T],
    sku: impl Fn(&T) -> &crate::ids::Sku,
) -> bool {
    let before = errors.0.len();
    for (index, line) in lines.iter().enumerate() {
        if lines[..index].iter().any(|l| sku(l) == sku(line)) {
            errors.add(
                format!("lines[{index}].sku"),
                format!("'{}' appears on more than one line", sku(line)),
            );
        }
    }
    errors.0.len() == before
}

/// A string, parsed by `parse` (a value type's constructor).
pub fn string<'v, T, E: Display>(
    parse: impl FnOnce(&'v str) -> Result<T, E>,
) -> impl FnOnce(&'v Value) -> Result<T, String> {
    move |value| match value {
        Value::String(s) => parse(s).map_err(|e| e.to_string()),
        _ => Err("must be a string".to_owned()),
    }
}

/// Text: trimmed, non-empty, at most `max` characters, no control characters.
pub fn text(max: usize) -> impl Fn(&Value) -> Result<String, String> {
    move |value| match value {
        Value::String(s) => {
            let trimmed = s.trim();
            // The limit counts what was sent, white space around it included, as the OpenAPI
            // document's `maxLength` does.
            if s.chars().count() > max {
                Err(format!("must be at most {max} characters"))
            } else if trimmed.is_empty() {
                Err("must not be empty".to_owned())
            } else if trimmed
                .chars()
                .any(|c| c.is_control() || is_bidi_control(c))
            {
                Err("must not contain control or bidirectional-override characters".to_owned())
            } else {
                Ok(trimmed.to_owned())
            }
        }
        _ => Err("must be a string".to_owned()),
    }
}

/// The Unicode characters that reorder text as it is shown (embeddings, overrides, isolates and
/// marks): in a name or a note they can make what staff read differ from what was written.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A whole number in `range`.
pub fn whole(range: RangeInclusive<u32>) -> impl Fn(&Value) -> Result<u32, String> {
    move |value| {
        value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                format!(
                    "must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                )
            })
    }
}

/// `true` or `false`.
pub fn boolean(value: &Value) -> Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| "must be true or false".to_owned())
}

/// One of a closed set of names, such as an enum's `as_str` values.
pub fn one_of<T: Copy>(
    all: &[T],
    name: fn(&T) -> &'static str,
) -> impl Fn(&Value) -> Result<T, String> + '_ {
    move |value| {
        value
            .as_str()
            .and_then(|s| all.iter().find(|t| name(t) == s).copied())
            .ok_or_else(|| {
                let names: Vec<_> = all.iter().map(name).collect();
                format!("must be one of {}", names.join(", "))
            })
    }
}

/// The paths of the fields a parse refused, in the order it named them.
#[cfg(test)]
pub(crate) fn refused_fields<T: std::fmt::Debug>(
    result: Result<T, ValidationErrors>,
) -> Vec<String> {
    result.unwrap_err().0.into_iter().map(|e| e.field).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields_of(errors: ValidationErrors) -> Vec<(String, String)> {
        errors.0.into_iter().map(|e| (e.field, e.message)).collect()
    }

    #[test]
    fn unknown_fields_are_named_by_their_path_at_every_depth() {
        let body = json!({"a": {"b": 1, "x": 2}, "y": 3, "list": [{"c": 1, "z": 4}]});
        let mut errors = ValidationErrors::default();
        let root = Fields::body(&mut errors, &body, &["a", "list"]).unwrap();
        Fields::object_at(&mut errors, "a", root.get("a"), &["b"]).unwrap();
        root.objects(&mut errors, "list", 5, &["c"], |_, _| Some(()));
        let paths: Vec<_> = fields_of(errors).into_iter().map(|(f, _)| f).collect();
        assert_eq!(paths, ["y", "a.x", "list[0].z"]);
    }

    #[test]
    fn required_optional_and_null() {
        let body = json!({"n": 3, "s": null, "t": "  hi  ", "bad": 7});
        let mut errors = ValidationErrors::default();
        let root = Fields::body(&mut errors, &body, &["n", "s", "t", "bad", "missing"]).unwrap();
        assert_eq!(root.required(&mut errors, "n", whole(1..=5)), Some(3));
        assert_eq!(root.required(&mut errors, "s", text(5)), None);
        assert_eq!(root.optional(&mut errors, "missing", text(5)), None);
        assert_eq!(root.note(&mut errors, "t", 10), Some("hi".to_owned()));
        let lines = json!({"n": "two\nlines"});
        let fields = Fields::body(&mut errors, &lines, &["n"]).unwrap();
        assert_eq!(
            fields.note(&mut errors, "n", 20),
            Some("two\nlines".to_owned())
        );
        assert_eq!(root.optional(&mut errors, "bad", text(5)), None);
        assert_eq!(
            fields_of(errors),
            [
                ("s".to_owned(), "is required".to_owned()),
                ("bad".to_owned(), "must be a string".to_owned())
            ]
        );
    }

    #[test]
    fn arrays_are_bounded_and_every_item_reports() {
        let body = json!({"xs": [1, 0, 9, "a"]});
        let mut errors = ValidationErrors::default();
        let root = Fields::body(&mut errors, &body, &["xs", "ys"]).unwrap();
        let parsed = root.array(&mut errors, "xs", 10, |errors, path, v| {
            errors.check(path, whole(1..=5)(v))
        });
        assert_eq!(parsed, None);
        let paths: Vec<_> = fields_of(errors).into_iter().map(|(f, _)| f).collect();
        assert_eq!(paths, ["xs[1]", "xs[2]", "xs[3]"]);

        let mut errors = ValidationErrors::default();
        let body = json!({"xs": []});
        let root = Fields::body(&mut errors, &body, &["xs"]).unwrap();
        assert_eq!(root.array(&mut errors, "xs", 3, |_, _, _| Some(())), None);
        assert_eq!(fields_of(errors)[0].1, "must have 1 to 3 items");
    }

    #[test]
    fn text_refuses_blank_long_and_control_characters() {
        let t = text(3);
        assert_eq!(text(4)(&json!(" ab ")), Ok("ab".to_owned()));
        assert!(
            t(&json!(" ab ")).is_err(),
            "the limit counts the white space sent"
        );
        assert!(t(&json!("   ")).is_err());
        assert!(t(&json!("abcd")).is_err());
        assert!(t(&json!("a\u{7}b")).is_err());
        let long = text(100);
        assert_eq!(
            long(&json!("invoice\u{202E}fdp.exe")),
            Err("must not contain control or bidirectional-override characters".to_owned()),
            "a right-to-left override"
        );
        assert!(long(&json!("Zoë Ångström")).is_ok());
        assert!(t(&json!(1)).is_err());
    }

    #[test]
    fn a_body_that_is_not_an_object_is_one_error() {
        let mut errors = ValidationErrors::default();
        assert!(Fields::body(&mut errors, &json!([1]), &[]).is_none());
        assert_eq!(
            fields_of(errors),
            [("".to_owned(), "the body must be a JSON object".to_owned())]
        );
    }
}
