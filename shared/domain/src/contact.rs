//! Where an order goes and how to reach its customer. Personal data: never logged.

use serde::{Deserialize, Serialize};

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

/// A postal address. Built only by the request reader (`Address::parse` in
/// [`crate::request`]), which checks every field.
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
    /// An address from fields the request reader checked ([`crate::request`]).
    pub(crate) fn checked(
        name: String,
        line1: String,
        line2: Option<String>,
        city: String,
        region: Option<String>,
        postal_code: String,
        country: CountryCode,
    ) -> Self {
        Self {
            name,
            line1,
            line2,
            city,
            region,
            postal_code,
            country,
        }
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
    /// Contact details the request reader checked ([`crate::request`]).
    pub(crate) fn checked(email: String, phone: Option<String>, language: Option<String>) -> Self {
        Self {
            email,
            phone,
            language,
        }
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
