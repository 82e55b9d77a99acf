//! Where an order goes and how to reach its customer. Personal data: never logged.

use serde::{Deserialize, Serialize};

use crate::request::{text, Fields};
use crate::validation::ValidationErrors;

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a two-letter ISO 3166-1 country code")]
pub struct CountryCodeError;

impl CountryCode {
    pub fn parse(value: &str) -> Result<Self, CountryCodeError> {
        if value.len() == 2 && value.chars().all(|c| c.is_ascii_alphabetic()) {
            Ok(Self(value.to_ascii_uppercase()))
        } else {
            Err(CountryCodeError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CountryCode {
    type Error = CountryCodeError;
    fn try_from(value: String) -> Result<Self, CountryCodeError> {
        Self::parse(&value)
    }
}

impl From<CountryCode> for String {
    fn from(value: CountryCode) -> String {
        value.0
    }
}

/// A postal address. Built only by [`Address::parse`], which checks every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    name: String,
    line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    line2: Option<String>,
    city: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    postal_code: String,
    country: CountryCode,
}

/// How the customer is reached about this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    language: Option<String>,
}

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
            text(2)(v).and_then(|c| CountryCode::parse(&c).map_err(|e| e.to_string()))
        });
        if errors.0.len() != before {
            return None;
        }
        Some(Self {
            name: name?,
            line1: line1?,
            line2,
            city: city?,
            region,
            postal_code: postal_code?,
            country: country?,
        })
    }

    /// The recipient's name, as the customer wrote it.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn country(&self) -> &CountryCode {
        &self.country
    }

    pub fn postal_code(&self) -> &str {
        &self.postal_code
    }

    /// The address as it is written on a parcel, one entry per line.
    pub fn postal_lines(&self) -> Vec<String> {
        let mut lines = vec![self.name.clone(), self.line1.clone()];
        lines.extend(self.line2.clone());
        let mut city = format!("{} {}", self.postal_code, self.city);
        if let Some(region) = &self.region {
            city = format!("{city}, {region}");
        }
        lines.push(city);
        lines.push(self.country.as_str().to_owned());
        lines
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
        Some(Self {
            email: email?,
            phone,
            language,
        })
    }

    pub fn email(&self) -> &str {
        &self.email
    }

    pub fn phone(&self) -> Option<&str> {
        self.phone.as_deref()
    }

    pub fn language(&self) -> Option<&str> {
        self.language.as_deref()
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
