//! The notifier's port: customers' preferences and each order's notification cursor (its
//! claim, the channels sent, the wake tokens of events that wait for their turn).

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;

use super::*;

fn preferences_key(customer: &CustomerId) -> HashMap<String, AttributeValue> {
    key(format!("CUSTOMER#{customer}"), "PREFERENCES")
}

fn cursor_key(order: &OrderId) -> HashMap<String, AttributeValue> {
    key(order_pk(order), "NOTIFIED")
}

/// An order's notification cursor as stored.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CursorItem {
    next: u64,
    /// Epoch milliseconds.
    #[serde(default)]
    claimed_at: Option<i64>,
    #[serde(default)]
    sent: Vec<Channel>,
    #[serde(default)]
    skipped: Vec<u64>,
}

/// The attribute of the cursor item holding the wake token of event `sequence` (one attribute per
/// waiting event, so that leaving one is a single `SET` on an item that may not exist yet).
fn wake_attribute(sequence: u64) -> String {
    format!("{WAKE_PREFIX}{sequence}")
}

const WAKE_PREFIX: &str = "wake";

/// The most wake tokens a pass over a gap takes off the cursor item in its one write.
const MAX_TOKENS_DROPPED: usize = 32;

impl CursorItem {
    fn cursor(item: HashMap<String, AttributeValue>) -> Result<NotificationCursor, StoreError> {
        let waiting = item
            .iter()
            .filter_map(|(name, value)| {
                let sequence = name.strip_prefix(WAKE_PREFIX)?.parse().ok()?;
                Some((sequence, value.as_s().ok()?.clone()))
            })
            .collect();
        let stored = from_item::<CursorItem>(item)?;
        Ok(NotificationCursor {
            waiting,
            next: stored.next,
            claimed_at: stored
                .claimed_at
                .and_then(chrono::DateTime::from_timestamp_millis),
            sent: stored.sent,
            skipped: stored.skipped,
        })
    }
}

/// The condition that the cursor is at `at`: an order with no cursor item is at 1.
fn cursor_at(at: u64) -> &'static str {
    if at == 1 {
        "(attribute_not_exists(#next) OR #next = :at)"
    } else {
        "#next = :at"
    }
}

impl DynamoStore {
    /// An update of `order`'s notification cursor item.
    async fn cursor_update(&self, order: &OrderId) -> UpdateItemFluentBuilder {
        self.client
            .get()
            .await
            .update_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key(order)))
    }

    /// An update of `order`'s notification cursor that sets its `next` (named `#next`) and its
    /// entity (`:entity`): the writes that may create the item.
    async fn cursor_write(&self, order: &OrderId) -> UpdateItemFluentBuilder {
        self.cursor_update(order)
            .await
            .expression_attribute_names("#next", "next")
            .expression_attribute_values(":entity", s(entity::NOTIFICATION_CURSOR))
    }
}

impl NotificationStore for DynamoStore {
    async fn preferences(&self, customer: &CustomerId) -> Result<Option<Preferences>, StoreError> {
        let item = self
            .read(preferences_key(customer), "get preferences")
            .await?;
        item.map(|item| from_item::<PreferencesItem>(item).map(|i| i.preferences))
            .transpose()
    }

    async fn save_preferences(
        &self,
        customer: &CustomerId,
        preferences: &Preferences,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let item = PreferencesItem {
            pk: format!("CUSTOMER#{customer}"),
            sk: "PREFERENCES".into(),
            entity: entity::PREFERENCES.into(),
            preferences: *preferences,
            updated_at: now,
        };
        self.client
            .get()
            .await
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .send()
            .await
            .map_err(|e| classify("save preferences", e))?;
        Ok(())
    }

    async fn cursor(&self, order: &OrderId) -> Result<NotificationCursor, StoreError> {
        self.read(cursor_key(order), "get notification cursor")
            .await?
            .map(CursorItem::cursor)
            .unwrap_or(Ok(NotificationCursor::default()))
    }

    async fn notification_context(
        &self,
        order: &OrderId,
        customer: &CustomerId,
    ) -> Result<(NotificationCursor, Option<Order>, Option<Preferences>), StoreError> {
        let items = self
            .read_many(
                vec![
                    cursor_key(order),
                    key(order_pk(order), "ORDER"),
                    preferences_key(customer),
                ],
                "get notification context",
            )
            .await?;
        let mut context = (NotificationCursor::default(), None, None);
        for item in items {
            match item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
            {
                Some("NOTIFIED") => context.0 = CursorItem::cursor(item)?,
                Some("ORDER") => context.1 = Some(self.order_from(item)?),
                Some("PREFERENCES") => {
                    context.2 = Some(from_item::<PreferencesItem>(item)?.preferences)
                }
                _ => {}
            }
        }
        Ok(context)
    }

    async fn claim(
        &self,
        order: &OrderId,
        next: u64,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let stale = now - chrono::Duration::seconds(NOTIFICATION_CLAIM_SECONDS);
        self.cursor_write(order)
            .await
            .update_expression("SET #next = :at, claimedAt = :now, entity = :entity")
            .condition_expression(format!(
                "{} AND (attribute_not_exists(claimedAt) OR claimedAt <= :stale)",
                cursor_at(next)
            ))
            .expression_attribute_values(":at", n(next))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .expression_attribute_values(":stale", n(stale.timestamp_millis()))
            .send()
            .await
            .map_err(|e| classify("claim notification", e))?;
        Ok(())
    }

    async fn mark_sent(
        &self,
        order: &OrderId,
        sequence: u64,
        channel: Channel,
    ) -> Result<(), StoreError> {
        // Appending the channel twice (a write that succeeded, its answer lost) changes nothing
        // the cursor is read for.
        recording(|| async {
            self.cursor_update(order)
                .await
                .update_expression("SET sent = list_append(if_not_exists(sent, :none), :channel)")
                .condition_expression("#next = :at")
                .expression_attribute_names("#next", "next")
                .expression_attribute_values(":at", n(sequence))
                .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
                .expression_attribute_values(
                    ":channel",
                    AttributeValue::L(vec![s(channel.as_str())]),
                )
                .send()
                .await
                .map_err(|e| classify("mark notification sent", e))?;
            Ok(())
        })
        .await
    }

    async fn advance(&self, order: &OrderId, from: u64) -> Result<Option<String>, StoreError> {
        // The claim and its sent channels go with the event; skipped events stay recorded, and
        // so do later events' wake tokens. A try that moved the cursor with its answer lost
        // makes the next one a failed condition, which the notifier reads as the event done
        // (its successor then comes back when its short hold runs out rather than at once).
        let wake = wake_attribute(from + 1);
        recording(|| async {
            let old = self
                .cursor_write(order)
                .await
                .update_expression(
                    "SET #next = :to, entity = :entity REMOVE claimedAt, sent, #wake",
                )
                .condition_expression(cursor_at(from))
                .expression_attribute_names("#wake", &wake)
                .expression_attribute_values(":at", n(from))
                .expression_attribute_values(":to", n(from + 1))
                .return_values(ReturnValue::AllOld)
                .send()
                .await
                .map_err(|e| classify("advance notification cursor", e))?;
            Ok(old
                .attributes
                .and_then(|mut item| item.remove(&wake))
                .and_then(|token| token.as_s().ok().cloned()))
        })
        .await
    }

    async fn wait_for_turn(
        &self,
        order: &OrderId,
        next: u64,
        sequence: u64,
        token: &str,
    ) -> Result<(), StoreError> {
        self.cursor_write(order)
            .await
            .update_expression(
                "SET #next = if_not_exists(#next, :at), entity = :entity, #wake = :token",
            )
            .condition_expression(cursor_at(next))
            .expression_attribute_names("#wake", wake_attribute(sequence))
            .expression_attribute_values(":at", n(next))
            .expression_attribute_values(":token", s(token))
            .send()
            .await
            .map_err(|e| classify("leave a wake token", e))?;
        Ok(())
    }

    async fn skip_to(
        &self,
        order: &OrderId,
        from: u64,
        to: u64,
        now: chrono::DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if to <= from {
            return Err(StoreError::ConditionFailed);
        }
        let gap = AttributeValue::L((from..to).map(n).collect());
        let stale = now - chrono::Duration::seconds(NOTIFICATION_CLAIM_SECONDS);
        // The tokens of the events passed over and of the one passing: nobody wakes them now.
        // (A longer gap leaves its older tokens behind; they only take room.)
        let tokens: Vec<String> = (from + 1..=to)
            .rev()
            .take(MAX_TOKENS_DROPPED)
            .map(wake_attribute)
            .collect();
        let mut update = self
            .cursor_write(order)
            .await
            .update_expression(format!(
                "SET #next = :to, entity = :entity, \
                 skipped = list_append(if_not_exists(skipped, :none), :gap) \
                 REMOVE claimedAt, sent{}",
                (0..tokens.len())
                    .map(|i| format!(", #wake{i}"))
                    .collect::<String>()
            ))
            .condition_expression(format!(
                "{} AND (attribute_not_exists(claimedAt) OR claimedAt <= :stale)",
                cursor_at(from)
            ))
            .expression_attribute_values(":at", n(from))
            .expression_attribute_values(":to", n(to))
            .expression_attribute_values(":stale", n(stale.timestamp_millis()))
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":gap", gap);
        for (i, token) in tokens.iter().enumerate() {
            update = update.expression_attribute_names(format!("#wake{i}"), token);
        }
        update
            .send()
            .await
            .map_err(|e| classify("skip notification gap", e))?;
        Ok(())
    }

    async fn restore_skipped(&self, order: &OrderId, sequence: u64) -> Result<(), StoreError> {
        let restored = recording(|| async {
            self.cursor_update(order)
                .await
                .update_expression("SET skipped = list_append(if_not_exists(skipped, :none), :one)")
                .condition_expression(
                    "attribute_not_exists(skipped) OR NOT contains(skipped, :sequence)",
                )
                .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
                .expression_attribute_values(":one", AttributeValue::L(vec![n(sequence)]))
                .expression_attribute_values(":sequence", n(sequence))
                .send()
                .await
                .map_err(|e| classify("restore a skipped notification", e))?;
            Ok(())
        })
        .await;
        match restored {
            // Recorded already.
            Err(StoreError::ConditionFailed) => Ok(()),
            other => other,
        }
    }

    async fn take_skipped(&self, order: &OrderId, sequence: u64) -> Result<(), StoreError> {
        // A list element is removed by its position: read it, and remove it on condition that
        // the same event is still there; another late event taken meanwhile shifts the list,
        // so read again before answering that this one is gone.
        for _ in 0..oms_domain::app::retry::ATTEMPTS {
            let cursor = self.cursor(order).await?;
            let index = cursor
                .skipped
                .iter()
                .position(|s| *s == sequence)
                .ok_or(StoreError::ConditionFailed)?;
            let removed = self
                .cursor_update(order)
                .await
                .update_expression(format!("REMOVE skipped[{index}]"))
                .condition_expression(format!("skipped[{index}] = :sequence"))
                .expression_attribute_values(":sequence", n(sequence))
                .send()
                .await
                .map_err(|e| classify("take a skipped notification", e));
            match removed {
                Ok(_) => return Ok(()),
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Retryable(
            "the skipped events kept changing".into(),
        ))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreferencesItem {
    pk: String,
    sk: String,
    entity: String,
    preferences: Preferences,
    updated_at: chrono::DateTime<Utc>,
}
