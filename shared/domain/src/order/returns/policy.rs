//! The business's return rules: how long a line may be returned, which returns are approved at
//! once, when the shipping charge is refunded, and where returns are sent. Data, not code:
//! `shared/domain/return-policy.json`, or the file `RETURN_POLICY_FILE` names.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::contact::Address;
use crate::ids::Sku;
use crate::order::returns::{ReturnLine, ReturnReason};

/// When the original shipping charge is refunded with a return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShippingRefund {
    Never,
    /// When any returned line was the business's fault (damaged, wrong item, not as described).
    SellersFault,
    Always,
}

/// Which returns are approved at once; the others wait for staff.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoApproval {
    /// Every line's reason must be one of these.
    pub reasons: Vec<ReturnReason>,
    /// The value of the returned units (minor units of the store's currency) must not exceed it
    /// — for an exchange, of the item reserved in their place if that is worth more.
    pub max_value: i64,
    /// Whether a return with an exchange may be approved without staff.
    pub exchanges: bool,
}

/// The business's return rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnPolicy {
    /// Days after delivery a line may still be returned.
    pub window_days: u32,
    /// Windows for particular SKUs (0: final sale, never returnable).
    #[serde(default)]
    pub window_days_by_sku: BTreeMap<Sku, u32>,
    pub auto_approval: AutoApproval,
    pub shipping_refund: ShippingRefund,
    /// Where returns are sent: printed on the label.
    pub return_address: Address,
    /// Days after its approval an approved return may take to arrive: then the sweep closes
    /// it (`EXPIRED`) and releases its exchange.
    #[serde(default = "thirty_days")]
    pub arrival_days: u32,
}

fn thirty_days() -> u32 {
    30
}

/// The longest `arrivalDays` the policy takes: ten years.
pub const MAX_ARRIVAL_DAYS: u32 = 3650;

impl ReturnPolicy {
    /// The default rules shipped with the system.
    pub fn default_policy() -> Self {
        Self::from_json(include_str!("../../../return-policy.json"))
            .expect("the bundled return policy is valid; a unit test proves it")
    }

    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let policy: Self = serde_json::from_str(json)?;
        if !(1..=MAX_ARRIVAL_DAYS).contains(&policy.arrival_days) {
            return Err(serde::de::Error::custom(format!(
                "arrivalDays must be between 1 and {MAX_ARRIVAL_DAYS}"
            )));
        }
        Ok(policy)
    }

    /// When an approved return at `approved_at` is past its time to arrive.
    pub fn arrival_due(
        &self,
        approved_at: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        approved_at + chrono::Duration::days(i64::from(self.arrival_days))
    }

    pub fn window_days(&self, sku: &Sku) -> u32 {
        self.window_days_by_sku
            .get(sku)
            .copied()
            .unwrap_or(self.window_days)
    }

    /// Whether `lines` are approved without staff. The value weighed is what the return
    /// moves: the units sent back, or, for an exchange, the item reserved in their place if it
    /// is worth more (approval reserves it, before anything arrives).
    pub(crate) fn approves_at_once(&self, lines: &[ReturnLine]) -> bool {
        let rules = &self.auto_approval;
        let value: i64 = lines
            .iter()
            .map(|l| {
                let unit = l
                    .exchange
                    .as_ref()
                    .and_then(|e| e.unit_price)
                    .map_or(l.unit_price.minor_units(), |p| {
                        p.minor_units().max(l.unit_price.minor_units())
                    });
                unit * i64::from(l.quantity.get())
            })
            .sum();
        lines.iter().all(|l| rules.reasons.contains(&l.reason))
            && value <= rules.max_value
            && (rules.exchanges || lines.iter().all(|l| l.exchange.is_none()))
    }
}
