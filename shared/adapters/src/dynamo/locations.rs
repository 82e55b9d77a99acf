//! The locations port: the list staff keep, one item (`CONFIG#LOCATIONS` / `LOCATIONS`) written
//! on condition of its version.

use oms_domain::ports::{LocationStore, StoredLocations};

use super::*;

fn locations_key() -> HashMap<String, AttributeValue> {
    key("CONFIG#LOCATIONS".to_owned(), "LOCATIONS")
}

#[derive(Serialize, Deserialize)]
struct LocationsItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(flatten)]
    list: StoredLocations,
}

impl LocationStore for DynamoStore {
    async fn stored_locations(&self) -> Result<Option<StoredLocations>, StoreError> {
        self.read(locations_key(), "read locations")
            .await?
            .map(|item| from_item::<LocationsItem>(item).map(|i| i.list))
            .transpose()
    }

    async fn save_locations(&self, list: &StoredLocations) -> Result<(), StoreError> {
        let item = LocationsItem {
            pk: "CONFIG#LOCATIONS".into(),
            sk: "LOCATIONS".into(),
            entity: entity::LOCATIONS.into(),
            list: list.clone(),
        };
        let put = self
            .client
            .get()
            .await
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?));
        let put = if list.version <= 1 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#version = :before")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":before", n(list.version - 1))
        };
        put.send()
            .await
            .map_err(|e| classify("save locations", e))?;
        Ok(())
    }
}
