//! `PUT /locations/{id}`: a warehouse or store as staff describe it.

use serde_json::Value;

use crate::contact::CountryCode;
use crate::location::{Capabilities, Location, LocationKind};
use crate::request::{boolean, one_of, string, text, whole, Fields};
use crate::shipping::ShippingPolicy;
use crate::validation::ValidationErrors;

/// The kinds a location can be, as the API names them.
const KINDS: [LocationKind; 2] = [LocationKind::Warehouse, LocationKind::Store];

fn kind_name(kind: &LocationKind) -> &'static str {
    match kind {
        LocationKind::Warehouse => "WAREHOUSE",
        LocationKind::Store => "STORE",
    }
}

/// Parses the untrusted body of `PUT /locations/{id}` into the location `id` names. The id is
/// the path's (checked by the caller); its zone must be one of `shipping`'s.
pub fn parse_location(
    id: &str,
    body: &Value,
    shipping: &ShippingPolicy,
) -> Result<Location, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let known = [
        "name",
        "kind",
        "country",
        "postalCode",
        "zone",
        "handlingDays",
        "cutoffHourUtc",
        "capabilities",
        "priority",
    ];
    let Some(fields) = Fields::body(&mut errors, body, &known) else {
        return Err(errors);
    };
    let name = fields.required(&mut errors, "name", text(100));
    let kind = fields.required(&mut errors, "kind", one_of(&KINDS, kind_name));
    let country = fields.required(&mut errors, "country", string(CountryCode::parse));
    let postal_code = fields.required(&mut errors, "postalCode", text(16));
    let zone = fields.required(&mut errors, "zone", |v: &Value| {
        let zones: Vec<&str> = shipping.zone_names().collect();
        v.as_str()
            .filter(|z| zones.contains(z))
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "must be one of the shipping policy's zones: {}",
                    zones.join(", ")
                )
            })
    });
    let handling_days = fields.required(&mut errors, "handlingDays", whole(0..=30));
    let cutoff_hour_utc = fields.required(&mut errors, "cutoffHourUtc", whole(0..=23));
    let priority = fields.required(&mut errors, "priority", whole(0..=1000));
    let capabilities = Fields::object_at(
        &mut errors,
        "capabilities",
        fields.get("capabilities"),
        &["ships", "pickup", "returns"],
    )
    .map(|c| {
        (
            c.required(&mut errors, "ships", boolean),
            c.required(&mut errors, "pickup", boolean),
            c.required(&mut errors, "returns", boolean),
        )
    });
    // Every field read (each refusal recorded) before the location is built from them.
    let built = (|| {
        let (ships, pickup, returns) = capabilities?;
        Some(Location {
            id: id.to_owned(),
            name: name?,
            kind: kind?,
            country: country?,
            postal_code: postal_code?,
            zone: zone?,
            handling_days: handling_days?,
            cutoff_hour_utc: cutoff_hour_utc?,
            capabilities: Capabilities {
                ships: ships?,
                pickup: pickup?,
                returns: returns?,
            },
            priority: priority?,
        })
    })();
    match built {
        Some(location) if errors.is_empty() => Ok(location),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::refused_fields;
    use serde_json::json;

    fn body() -> Value {
        json!({
            "name": "Hamburg warehouse", "kind": "WAREHOUSE", "country": "DE",
            "postalCode": "20457", "zone": "domestic", "handlingDays": 1, "cutoffHourUtc": 15,
            "capabilities": {"ships": true, "pickup": false, "returns": true}, "priority": 4
        })
    }

    #[test]
    fn a_described_location_reads_whole() {
        let policy = ShippingPolicy::default_policy();
        let location = parse_location("HAM-1", &body(), &policy).unwrap();
        assert_eq!(location.id, "HAM-1");
        assert_eq!(location.zone, "domestic");
        assert!(location.capabilities.ships && !location.capabilities.pickup);
        assert_eq!((location.cutoff_hour_utc, location.priority), (15, 4));
    }

    #[test]
    fn every_wrong_field_is_named() {
        let policy = ShippingPolicy::default_policy();
        let mut bad = body();
        bad["zone"] = json!("mars");
        bad["cutoffHourUtc"] = json!(24);
        bad["kind"] = json!("SHED");
        bad["capabilities"] = json!({"ships": "yes", "pickup": false, "returns": true});
        bad["colour"] = json!("red");
        assert_eq!(
            refused_fields(parse_location("HAM-1", &bad, &policy)),
            [
                "colour",
                "kind",
                "zone",
                "cutoffHourUtc",
                "capabilities.ships"
            ]
        );
        let mut missing = body();
        missing.as_object_mut().unwrap().remove("capabilities");
        assert_eq!(
            refused_fields(parse_location("HAM-1", &missing, &policy)),
            ["capabilities"]
        );
    }
}
