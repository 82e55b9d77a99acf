//! The business's locations as staff keep them: `GET /locations`, `PUT /locations/{id}` and the
//! console's locations screen, and the [`LocationDirectory`] every function reads them through.
//!
//! The list is one stored item with a version: a change reads it, replaces or adds one
//! location, checks the whole list again (ids, zones the shipping policy has, the default
//! location still there) and writes it on condition that the version is still the one read, so
//! two staff members' changes never overwrite each other. Until staff first change it, the
//! list is the file's (`locations.json`, version 0). Functions read it through a short cache
//! (`LOCATIONS_CACHE_SECONDS`): a new location is routed to within that time everywhere, at
//! the cost of one `GetItem` per function instance and period.
//!
//! Locations are not deleted: stock and orders name them. A location is retired by turning off
//! what it can do (`ships`, `pickup`, `returns`): the planner then routes nothing to it, and
//! its stock can still be counted and transferred out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::app::retry::{until_written, Attempt, Contended};
use crate::app::Caller;
use crate::location::{LocationError, Locations};
use crate::ports::{LocationStore, StoreError, StoredLocations};
use crate::request::location::parse_location;
use crate::shipping::ShippingPolicy;
use crate::validation::ValidationErrors;

/// The locations as a function reads them: the stored list, read again once `ttl` has passed.
pub struct LocationDirectory {
    file: Arc<Locations>,
    shipping: ShippingPolicy,
    ttl: Duration,
    cached: Mutex<Option<(Instant, Arc<Locations>)>>,
}

impl LocationDirectory {
    /// `file` serves until staff first change the list; `shipping` checks what is stored.
    pub fn new(file: Locations, shipping: ShippingPolicy, ttl: Duration) -> Self {
        Self {
            file: Arc::new(file),
            shipping,
            ttl,
            cached: Mutex::new(None),
        }
    }

    /// The demo's locations under the default shipping policy, read from the store on every
    /// call: what handler tests use.
    pub fn demo() -> Self {
        Self::new(
            Locations::default_locations(),
            ShippingPolicy::default_policy(),
            Duration::ZERO,
        )
    }

    /// The locations now: the cached list while it is younger than the cache's time, else the
    /// stored one (the file's while staff have saved none). When the read fails, or the stored
    /// list no longer checks (a deploy dropped a zone it names), the last good list serves on
    /// and the error is logged; only an instance that never read a good one fails.
    pub async fn current<S: LocationStore>(&self, store: &S) -> Result<Arc<Locations>, StoreError> {
        let cached = self.lock().clone();
        if let Some((read_at, locations)) = &cached {
            if read_at.elapsed() < self.ttl {
                return Ok(locations.clone());
            }
        }
        match (self.fresh(store).await, cached) {
            (Ok(locations), _) => Ok(locations),
            (Err(error), Some((_, last_good))) => {
                tracing::error!(%error, version = last_good.version(), "locations: serving the last good list");
                Ok(last_good)
            }
            (Err(error), None) => Err(error),
        }
    }

    /// The stored list read now (and kept as the current one): what a caller about to change
    /// it must see, so that the version it names is the list's.
    pub async fn fresh<S: LocationStore>(&self, store: &S) -> Result<Arc<Locations>, StoreError> {
        let locations = Arc::new(self.check(self.read(store).await?)?);
        self.remember(locations.clone());
        Ok(locations)
    }

    /// The stored list as it is, unchecked (the file's while staff have saved none).
    async fn read<S: LocationStore>(&self, store: &S) -> Result<StoredLocations, StoreError> {
        Ok(match store.stored_locations().await? {
            Some(stored) => stored,
            None => StoredLocations {
                locations: self.file.all().to_vec(),
                version: 0,
                updated_at: DateTime::<Utc>::UNIX_EPOCH,
                updated_by: String::new(),
            },
        })
    }

    fn check(&self, stored: StoredLocations) -> Result<Locations, StoreError> {
        Locations::from_list(stored.locations, &self.shipping, stored.version)
            .map_err(|e| StoreError::Corrupt(format!("the stored locations: {e}")))
    }

    /// Keeps `locations` as the current list, unless a newer one is kept already (a slow read
    /// that finishes after this function's own change).
    fn remember(&self, locations: Arc<Locations>) {
        let mut cached = self.lock();
        if cached
            .as_ref()
            .is_some_and(|(_, kept)| kept.version() > locations.version())
        {
            return;
        }
        *cached = Some((Instant::now(), locations));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Arc<Locations>)>> {
        self.cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The shipping policy the locations' zones are checked against.
    pub fn shipping(&self) -> &ShippingPolicy {
        &self.shipping
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocationAppError {
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    #[error("the locations changed since the caller read them: their ETag is now \"v{current}\"")]
    PreconditionFailed { current: u64 },
    #[error("{0}")]
    Refused(LocationError),
    #[error("the locations kept changing; try again")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Contended for LocationAppError {
    fn contended() -> Self {
        Self::Contended
    }
}

/// What a saved location came to.
#[derive(Debug, Clone)]
pub struct SavedLocation {
    /// The whole list after the change.
    pub locations: Arc<Locations>,
    /// Whether the location is new.
    pub created: bool,
}

/// Adds the location `id` names, or replaces it, as `body` describes it. With `if_match` (the
/// list's version the caller saw), a list changed since is refused rather than overwritten.
pub async fn put_location<S: LocationStore>(
    store: &S,
    directory: &LocationDirectory,
    caller: &Caller,
    id: &str,
    body: &serde_json::Value,
    if_match: Option<u64>,
    now: DateTime<Utc>,
) -> Result<SavedLocation, LocationAppError> {
    if !Locations::is_id(id) {
        return Err(ValidationErrors::one(
            "id",
            "must be 1 to 32 upper-case letters, digits or '-'",
        )
        .into());
    }
    let location = &parse_location(id, body, directory.shipping())?;
    let saved = until_written(|| async move {
        // The list as stored, unchecked: a list a deploy made invalid (a zone dropped from the
        // rate table) is repaired here, one location at a time, since only the list after the
        // change is checked.
        let before = directory.read(store).await?;
        if if_match.is_some_and(|seen| seen != before.version) {
            return Err(LocationAppError::PreconditionFailed {
                current: before.version,
            });
        }
        let created = !before.locations.iter().any(|l| l.id == id);
        let mut list = before.locations;
        match list.iter_mut().find(|l| l.id == id) {
            Some(listed) => *listed = location.clone(),
            None => list.push(location.clone()),
        }
        let after = Locations::from_list(list, directory.shipping(), before.version + 1)
            .map_err(LocationAppError::Refused)?;
        let list = StoredLocations {
            locations: after.all().to_vec(),
            version: after.version(),
            updated_at: now,
            updated_by: caller.customer_id.as_str().to_owned(),
        };
        let written = store.save_locations(&list).await;
        let saved = SavedLocation {
            locations: Arc::new(after),
            created,
        };
        Attempt::of_write(written, saved)
    })
    .await?;
    directory.remember(saved.locations.clone());
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::InMemoryStore;
    use serde_json::json;

    fn staff() -> Caller {
        Caller {
            customer_id: crate::ids::CustomerId::parse("staff-1").unwrap(),
            scopes: vec![crate::app::caller::SCOPE_ADMIN.into()],
        }
    }

    /// Staff save `body` as location `id`, now.
    async fn put(
        store: &InMemoryStore,
        directory: &LocationDirectory,
        id: &str,
        body: &serde_json::Value,
        if_match: Option<u64>,
    ) -> Result<SavedLocation, LocationAppError> {
        put_location(store, directory, &staff(), id, body, if_match, Utc::now()).await
    }

    fn hamburg() -> serde_json::Value {
        json!({
            "name": "Hamburg warehouse", "kind": "WAREHOUSE", "country": "DE",
            "postalCode": "20457", "zone": "domestic", "handlingDays": 1, "cutoffHourUtc": 15,
            "capabilities": {"ships": true, "pickup": false, "returns": true}, "priority": 4
        })
    }

    #[tokio::test]
    async fn staff_add_a_location_and_every_reader_sees_it_once_its_cache_expires() {
        let store = InMemoryStore::default();
        let writer = LocationDirectory::demo();
        let reader = LocationDirectory::new(
            Locations::default_locations(),
            ShippingPolicy::default_policy(),
            Duration::from_secs(3600),
        );
        assert_eq!(reader.current(&store).await.unwrap().version(), 0);
        let saved = put(&store, &writer, "HAM-1", &hamburg(), None)
            .await
            .unwrap();
        assert!(saved.created);
        assert_eq!(saved.locations.version(), 1);
        assert_eq!(saved.locations.all().len(), 4);
        assert_eq!(store.stored_locations_now().unwrap().updated_by, "staff-1");
        // The writer knows at once; another function's cache until it expires.
        assert!(writer.current(&store).await.unwrap().get("HAM-1").is_some());
        assert!(reader.current(&store).await.unwrap().get("HAM-1").is_none());
        let fresh = LocationDirectory::demo();
        assert!(fresh.current(&store).await.unwrap().get("HAM-1").is_some());

        // Replacing keeps the list's order and moves its version on.
        let mut closed = hamburg();
        closed["capabilities"]["ships"] = json!(false);
        let saved = put(&store, &writer, "HAM-1", &closed, Some(1))
            .await
            .unwrap();
        assert!(!saved.created);
        assert_eq!(saved.locations.version(), 2);
        assert!(!saved.locations.get("HAM-1").unwrap().capabilities.ships);
        assert_eq!(saved.locations.all()[3].id, "HAM-1");
    }

    #[tokio::test]
    async fn a_stale_version_or_a_bad_body_changes_nothing() {
        let store = InMemoryStore::default();
        let directory = LocationDirectory::demo();
        put(&store, &directory, "HAM-1", &hamburg(), None)
            .await
            .unwrap();
        let stale = put(&store, &directory, "BER-1", &hamburg(), Some(0))
            .await
            .unwrap_err();
        assert!(matches!(
            stale,
            LocationAppError::PreconditionFailed { current: 1 }
        ));
        let mut bad = hamburg();
        bad["zone"] = json!("mars");
        let invalid = put(&store, &directory, "HAM-1", &bad, None)
            .await
            .unwrap_err();
        assert!(matches!(invalid, LocationAppError::Invalid(_)));
        let bad_id = put(&store, &directory, "ham 1", &hamburg(), None)
            .await
            .unwrap_err();
        assert!(matches!(bad_id, LocationAppError::Invalid(_)));
        assert_eq!(store.stored_locations_now().unwrap().version, 1);
    }

    #[tokio::test]
    async fn the_list_is_bounded() {
        let store = InMemoryStore::default();
        let directory = LocationDirectory::demo();
        let listed = Locations::default_locations().all().len();
        for n in listed..crate::location::MAX_LOCATIONS {
            let id = format!("W-{n}");
            put(&store, &directory, &id, &hamburg(), None)
                .await
                .unwrap();
        }
        let refused = put(&store, &directory, "ONE-TOO-MANY", &hamburg(), None)
            .await
            .unwrap_err();
        assert!(matches!(
            refused,
            LocationAppError::Refused(LocationError::TooMany)
        ));
    }

    #[tokio::test]
    async fn a_list_a_deploy_made_invalid_serves_the_last_good_one_and_staff_repair_it() {
        let store = InMemoryStore::default();
        let directory = LocationDirectory::demo();
        put(&store, &directory, "HAM-1", &hamburg(), None)
            .await
            .unwrap();
        // A rate table without the zone Amsterdam ships from.
        let mut stored = store.stored_locations_now().unwrap();
        stored.locations[1].zone = "gone".into();
        stored.version += 1;
        store.save_locations(&stored).await.unwrap();
        assert_eq!(
            directory.current(&store).await.unwrap().version(),
            1,
            "the last good list"
        );
        let cold = LocationDirectory::demo();
        assert!(matches!(
            cold.current(&store).await,
            Err(StoreError::Corrupt(_))
        ));
        // Changing another location is refused, naming the one that is wrong; fixing it repairs.
        let other = put(&store, &directory, "HAM-1", &hamburg(), None)
            .await
            .unwrap_err();
        assert!(other.to_string().contains("AMS-1"), "{other}");
        let mut amsterdam = hamburg();
        amsterdam["zone"] = json!("eu");
        put(&store, &directory, "AMS-1", &amsterdam, None)
            .await
            .unwrap();
        assert_eq!(cold.current(&store).await.unwrap().version(), 3);
    }
}
