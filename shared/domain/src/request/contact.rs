//! Where an order goes and how to reach its customer, read from untrusted JSON: the
//! [`crate::contact`] values, each field checked and named by its path.

use crate::contact::{Address, Contact, CountryCode};
use crate::request::{text, Fields};
use crate::validation::ValidationErrors;

impl Address {
    /// Parses the untrusted JSON at `field`, recording every problem in `errors`.
    pub fn parse(
        errors: &mut ValidationErrors,
        field: &str,
        value: Option<&serde_json::Value>,
    ) -> Option<Self> {
        let known = [
            "name",
            "line1",
            "line2",
            "city",
            "region",
            "postalCode",
            "country",
        ];
        let fields = Fields::object_at(errors, field, value, &known)?;
        let before = errors.0.len();
        let name = fields.required(errors, "name", text(200));
        let line1 = fields.required(errors, "line1", text(200));
        let line2 = fields.optional(errors, "line2", text(200));
        let city = fields.required(errors, "city", text(100));
        let region = fields.optional(errors, "region", text(100));
        let postal_code = fields.required(errors, "postalCode", text(16));
        let country = fields.required(errors, "country", |v| {
            text(64)(v).and_then(|c| CountryCode::parse(&c).map_err(|e| e.to_string()))
        });
        if errors.0.len() != before {
            return None;
        }
        Some(Self::checked(
            name?,
            line1?,
            line2,
            city?,
            region,
            postal_code?,
            country?,
        ))
    }
}

impl Contact {
    /// Parses the untrusted JSON at `field`, recording every problem in `errors`.
    pub fn parse(
        errors: &mut ValidationErrors,
        field: &str,
        value: Option<&serde_json::Value>,
    ) -> Option<Self> {
        let fields = Fields::object_at(errors, field, value, &["email", "phone", "language"])?;
        let before = errors.0.len();
        let email = fields.required(errors, "email", |v| {
            let email = text(254)(v)?;
            match email.parse::<email_address::EmailAddress>() {
                Ok(_) => Ok(email),
                Err(_) => Err("must be an e-mail address".to_owned()),
            }
        });
        let phone = fields.optional(errors, "phone", |v| {
            let phone = text(20)(v)?;
            let digits = phone.strip_prefix('+').unwrap_or(&phone);
            let e164 = phone.starts_with('+')
                && (7..=15).contains(&digits.len())
                && digits.chars().all(|c| c.is_ascii_digit());
            if e164 {
                Ok(phone)
            } else {
                Err("must be an E.164 number such as +4915112345678".to_owned())
            }
        });
        let language = fields.optional(errors, "language", |v| {
            let tag = text(35)(v)?;
            let bcp47 = tag.split('-').all(|part| {
                (1..=8).contains(&part.len()) && part.chars().all(|c| c.is_ascii_alphanumeric())
            });
            if bcp47 {
                Ok(tag)
            } else {
                Err("must be a BCP 47 language tag such as en or de-AT".to_owned())
            }
        });
        if errors.0.len() != before {
            return None;
        }
        Some(Self::checked(email?, phone, language))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_every_bad_address_field() {
        let mut errors = ValidationErrors::default();
        let parsed = Address::parse(
            &mut errors,
            "shippingAddress",
            Some(
                &json!({"name": "", "line1": 5, "city": "Berlin", "postalCode": "10115", "country": "Germany"}),
            ),
        );
        assert!(parsed.is_none());
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "shippingAddress.name",
                "shippingAddress.line1",
                "shippingAddress.country"
            ]
        );
        // Each says what is wrong with it: empty, not a string, not a country code.
        let messages: Vec<_> = errors.0.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "must not be empty",
                "must be a string",
                "must be a two-letter ISO 3166-1 country code"
            ]
        );
    }

    #[test]
    fn parses_a_contact_and_refuses_bad_email_and_phone() {
        let mut errors = ValidationErrors::default();
        let ok = Contact::parse(
            &mut errors,
            "contact",
            Some(&json!({"email": "ada@example.com", "phone": "+4915112345678", "language": "de-AT"})),
        )
        .unwrap();
        assert_eq!(ok.email(), "ada@example.com");
        assert!(errors.is_empty());

        let bad = Contact::parse(
            &mut errors,
            "contact",
            Some(&json!({"email": "nope", "phone": "123"})),
        );
        assert!(bad.is_none());
        assert_eq!(errors.0.len(), 2);
    }
}
