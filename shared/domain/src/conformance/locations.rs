//! The locations port: the list staff keep, written on its version.

use super::*;
use crate::location::Locations;
use crate::ports::{LocationStore, StoredLocations};

/// No list until one is saved; each save must name the version after the stored one (1 when
/// none is stored), so two writers that read the same list cannot both write; the list reads
/// back as written.
pub async fn location_store<S: LocationStore>(store: &S) {
    assert_eq!(
        store.stored_locations().await,
        Ok(None),
        "nothing stored yet"
    );
    let at = base_time();
    let list = |version: u64, by: &str| StoredLocations {
        locations: Locations::default_locations().all().to_vec(),
        version,
        updated_at: at,
        updated_by: by.to_owned(),
    };
    assert_eq!(store.save_locations(&list(1, "ada")).await, Ok(()));
    assert_eq!(
        store.save_locations(&list(1, "bo")).await,
        Err(StoreError::ConditionFailed),
        "a second writer of version 1 loses"
    );
    assert_eq!(
        store.save_locations(&list(3, "bo")).await,
        Err(StoreError::ConditionFailed),
        "a version that skips one"
    );
    let mut second = list(2, "bo");
    second.locations[1].priority = 7;
    assert_eq!(store.save_locations(&second).await, Ok(()));
    assert_eq!(store.stored_locations().await, Ok(Some(second)));
}
