//! The business's locations: the list with what each can do, and (for administrators) a form to
//! change each and one to add a location.

use super::*;
use oms_domain::location::{Location, LocationKind};

/// Every location, each with its edit form for administrators, and the form for a new one.
pub(super) async fn locations<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    staff: Holding<AdminOrWarehouse>,
) -> Result<Response, PageError> {
    // Read fresh: the forms carry the list's version, which must be the list's, not a cache's.
    let here = app.locations.fresh(&app.store).await?;
    let default = &here.default_location().id;
    let rows: Vec<_> = here
        .all()
        .iter()
        .map(|l| json!({"location": l, "default": &l.id == default, "kind": kind_name(l.kind)}))
        .collect();
    let zones: Vec<String> = app.shipping.zone_names().map(str::to_owned).collect();
    staff.page(
        &app,
        "locations.html",
        context! {
            locations => ser(&rows),
            version => here.version(),
            zones => zones,
        },
    )
}

fn kind_name(kind: LocationKind) -> &'static str {
    match kind {
        LocationKind::Warehouse => "WAREHOUSE",
        LocationKind::Store => "STORE",
    }
}

/// A location's form, as the JSON API's `PUT /locations/{id}` body: numbers as typed (the
/// request reader names what is wrong), the capabilities as the checkboxes left them.
fn location_body(fields: &Fields) -> serde_json::Value {
    let text = |name: &str| json!(fields.get(name).unwrap_or_default());
    let checked = |name: &str| fields.get(name) == Some("on");
    json!({
        "name": text("name"),
        "kind": text("kind"),
        "country": text("country"),
        "postalCode": text("postalCode"),
        "zone": text("zone"),
        "handlingDays": fields.number("handlingDays"),
        "cutoffHourUtc": fields.number("cutoffHourUtc"),
        "priority": fields.number("priority"),
        "capabilities": {
            "ships": checked("ships"),
            "pickup": checked("pickup"),
            "returns": checked("returns"),
        },
    })
}

/// Saves one location (`id` from the path for a change, from the form for a new one) on the
/// list's version the page showed: a page older than another change is refused, not applied.
async fn save<S: Store, K: SecretSource>(
    app: &Console<S, K>,
    id: &str,
    form: &StaffForm,
) -> Result<Location, PageError> {
    let staff = form.require(SCOPE_ADMIN)?;
    let version = form.version()?;
    let body = location_body(&form.fields);
    let saved = oms_domain::app::locations::put_location(
        &app.store,
        &app.locations,
        &staff.caller,
        id,
        &body,
        Some(version),
        Utc::now(),
    )
    .await?;
    tracing::info!(location = %id, created = saved.created, "console: location saved");
    saved
        .locations
        .get(id)
        .cloned()
        .ok_or_else(|| PageError::Internal("the saved location is not in the list".into()))
}

/// A change to a listed location.
pub(super) async fn update_location<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    Path(id): Path<String>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let location = save(&app, &id, &form).await?;
    Ok(done(
        &format!("/console/locations#location-{}", location.id),
        "location-saved",
    ))
}

/// A new location, its id typed in the form (upper-cased: ids are upper-case).
pub(super) async fn add_location<S: Store, K: SecretSource>(
    State(app): State<App<S, K>>,
    form: StaffForm,
) -> Result<Response, PageError> {
    let id = form
        .fields
        .text("id")
        .unwrap_or_default()
        .to_ascii_uppercase();
    let location = save(&app, &id, &form).await?;
    Ok(done(
        &format!("/console/locations#location-{}", location.id),
        "location-added",
    ))
}
