//! The warehouse's `pack`, `ship` and `move` bodies, and the carriers' webhook.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::ids::{ShipmentId, Sku};
use crate::order::fulfillment::{CarrierEventKind, Parcel, Tracking};
use crate::quantity::Quantity;
use crate::request::{one_of, text, whole, Fields};
use crate::validation::ValidationErrors;

/// What a warehouse worker does to a shipment.
#[derive(Debug, Clone)]
pub enum WarehouseAction {
    Pick,
    Pack(Parcel),
    Ship(Tracking),
}

impl WarehouseAction {
    /// Parses the body of `pack` (`{weightGrams, lengthCm, widthCm, heightCm}`).
    pub fn pack(body: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let known = ["weightGrams", "lengthCm", "widthCm", "heightCm"];
        let Some(fields) = Fields::body(&mut errors, body, &known) else {
            return Err(errors);
        };
        let weight_grams = fields.required(&mut errors, "weightGrams", whole(1..=70_000));
        let length_cm = fields.required(&mut errors, "lengthCm", whole(1..=300));
        let width_cm = fields.required(&mut errors, "widthCm", whole(1..=300));
        let height_cm = fields.required(&mut errors, "heightCm", whole(1..=300));
        match (weight_grams, length_cm, width_cm, height_cm) {
            (Some(weight_grams), Some(length_cm), Some(width_cm), Some(height_cm))
                if errors.is_empty() =>
            {
                Ok(Self::Pack(Parcel {
                    weight_grams,
                    length_cm,
                    width_cm,
                    height_cm,
                }))
            }
            _ => Err(errors),
        }
    }

    /// Parses the body of `ship` (`{carrier, trackingNumber, trackingUrl}`).
    pub fn ship(body: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let known = ["carrier", "trackingNumber", "trackingUrl"];
        let Some(fields) = Fields::body(&mut errors, body, &known) else {
            return Err(errors);
        };
        let carrier = fields.required(&mut errors, "carrier", text(50));
        let tracking_number = fields.required(&mut errors, "trackingNumber", text(64));
        let tracking_url = fields.required(&mut errors, "trackingUrl", |v| {
            text(500)(v).and_then(|url| {
                if url.starts_with("https://") {
                    Ok(url)
                } else {
                    Err("must be an https:// URL".to_owned())
                }
            })
        });
        match (carrier, tracking_number, tracking_url) {
            (Some(carrier), Some(tracking_number), Some(tracking_url)) if errors.is_empty() => {
                Ok(Self::Ship(Tracking {
                    carrier,
                    tracking_number,
                    tracking_url,
                }))
            }
            _ => Err(errors),
        }
    }

    /// Whether the action needs the shipment's ETag: packing and shipping do, so two packers
    /// cannot both ship a parcel; picking is safe to repeat against the current version.
    pub fn needs_if_match(&self) -> bool {
        !matches!(self, Self::Pick)
    }
}

/// Staff moving a shipment, or some of its units, to another location before it is picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveShipment {
    /// The location the units go to.
    pub to: String,
    /// The units that move (SKU and how many); absent, the whole shipment.
    pub lines: Option<Vec<(Sku, Quantity)>>,
}

impl MoveShipment {
    /// Parses `{to, lines?: [{sku, quantity}]}`.
    pub fn parse(body: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let Some(fields) = Fields::body(&mut errors, body, &["to", "lines"]) else {
            return Err(errors);
        };
        let to = fields.required(&mut errors, "to", text(32));
        let lines = if fields.get("lines").is_some() {
            fields.sku_lines(&mut errors, &[], |_, _, sku, quantity| {
                Some((sku?, quantity?))
            })
        } else {
            None
        };
        match to {
            Some(to) if errors.is_empty() => Ok(MoveShipment { to, lines }),
            _ => Err(errors),
        }
    }
}

/// A carrier's report about a parcel, as its webhook sends it.
#[derive(Debug, Clone)]
pub struct CarrierEvent {
    pub event_id: String,
    /// The shipment the parcel was sent under: `<order id>-<n>`, or the order id alone (its
    /// first shipment, or whichever of its shipments has the tracking number).
    pub shipment: ShipmentId,
    pub tracking_number: String,
    pub kind: CarrierEventKind,
    pub occurred_at: DateTime<Utc>,
    pub detail: Option<String>,
}

impl CarrierEvent {
    /// Parses `{eventId, shipmentReference, trackingNumber, status, occurredAt, detail?}`;
    /// `shipmentReference` is the shipment id (or the order id) the parcel was shipped under. Unlike the bodies our
    /// own clients send, a carrier's payload is read open: carriers add fields to their webhooks
    /// without notice, and refusing one would stop every parcel's tracking.
    pub fn parse(body: &Value) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let Some(fields) = Fields::open_body(&mut errors, body) else {
            return Err(errors);
        };
        let event_id = fields.required(&mut errors, "eventId", text(128));
        let shipment = fields.required(&mut errors, "shipmentReference", |v| {
            text(29)(v).and_then(|r| ShipmentId::parse(&r).map_err(|e| e.to_string()))
        });
        let tracking_number = fields.required(&mut errors, "trackingNumber", text(64));
        let kind = fields.required(
            &mut errors,
            "status",
            one_of(&CarrierEventKind::ALL, CarrierEventKind::as_str),
        );
        let occurred_at = fields.required(&mut errors, "occurredAt", |v| {
            v.as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .ok_or("must be an RFC 3339 time")
        });
        // Free text from a third party: kept short rather than refused.
        let detail = fields
            .get("detail")
            .and_then(Value::as_str)
            .map(|d| d.chars().filter(|c| !c.is_control()).take(500).collect());
        match (event_id, shipment, tracking_number, kind, occurred_at) {
            (
                Some(event_id),
                Some(shipment),
                Some(tracking_number),
                Some(kind),
                Some(occurred_at),
            ) if errors.is_empty() => Ok(CarrierEvent {
                event_id,
                shipment,
                tracking_number,
                kind,
                occurred_at,
                detail,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::refused_fields;
    use serde_json::json;

    #[test]
    fn pack_and_ship_refuse_unknown_fields_like_every_other_body() {
        let pack = WarehouseAction::pack(&json!({
            "weightGrams": 900, "lengthCm": 30, "widthCm": 20, "heightCm": 10, "fragile": true
        }));
        assert_eq!(refused_fields(pack), ["fragile"]);
        let ship = WarehouseAction::ship(&json!({
            "carrier": "DHL", "trackingNumber": "J1", "trackingUrl": "http://x", "eta": 1
        }));
        assert_eq!(refused_fields(ship), ["eta", "trackingUrl"]);
    }

    #[test]
    fn pack_bounds_every_dimension() {
        let pack =
            WarehouseAction::pack(&json!({"weightGrams": 0, "lengthCm": 301, "widthCm": "2"}));
        assert_eq!(
            refused_fields(pack),
            ["weightGrams", "lengthCm", "widthCm", "heightCm"]
        );
    }

    #[test]
    fn a_carrier_event_tolerates_extra_fields_and_names_bad_ones() {
        let ok = CarrierEvent::parse(&json!({
            "eventId": "e1", "shipmentReference": "01JD0000000000000000000000", "trackingNumber": "J1",
            "status": "DELIVERED", "occurredAt": "2026-11-30T10:00:00Z", "carrierInternal": {"x": 1}
        }));
        assert_eq!(ok.unwrap().kind, CarrierEventKind::Delivered);
        let bad = CarrierEvent::parse(
            &json!({"eventId": "e1", "status": "LOST", "occurredAt": "yesterday"}),
        );
        assert_eq!(
            refused_fields(bad),
            [
                "shipmentReference",
                "trackingNumber",
                "status",
                "occurredAt"
            ]
        );
    }
}
