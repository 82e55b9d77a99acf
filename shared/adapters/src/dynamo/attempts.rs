//! The attempt counter: one item per key and window (`ATTEMPTS#<key>` / `<window start>`), its
//! count raised by an atomic `ADD`, removed by the table's TTL once its window has passed. The
//! items live in a table of their own where the deployment names one (`LookupAttemptsTable`),
//! so counting writes nothing to the orders table's stream.

use oms_domain::ports::AttemptCounter;

use super::*;

impl AttemptCounter for DynamoStore {
    async fn count_attempt(
        &self,
        key: &str,
        window_start: i64,
        expires: i64,
    ) -> Result<u64, StoreError> {
        let output = self
            .client
            .get()
            .await
            .update_item()
            .table_name(self.attempts_table.as_deref().unwrap_or(&self.table))
            .set_key(Some(super::key(
                format!("ATTEMPTS#{key}"),
                &window_start.to_string(),
            )))
            .update_expression("ADD #count :one SET #expires = :expires, #entity = :entity")
            .expression_attribute_names("#count", "attempts")
            .expression_attribute_names("#expires", "expiresAt")
            .expression_attribute_names("#entity", "entity")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expires", n(expires))
            .expression_attribute_values(":entity", AttributeValue::S(entity::ATTEMPTS.into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| classify("count an attempt", e))?;
        let count = output
            .attributes()
            .and_then(|a| a.get("attempts"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Corrupt("an attempt count that does not read".into()))?;
        Ok(count)
    }
}
