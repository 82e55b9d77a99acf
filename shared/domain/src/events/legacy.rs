//! The events of order items written before each change recorded what it did
//! ([`crate::order::history`]): worked out, as they were then, by comparing the stream record's
//! old and new images.
//!
//! Only stream records written by an earlier version of the system reach this module (a stored
//! order without a `lastChange` for its version); the table's stream keeps a record for 24
//! hours, so it can be removed once the recording version has run for a day. Its answers are
//! the same, byte for byte, as the recorded path's for the same change: a test walks orders
//! through every kind of change and compares the two.

use super::{edited, order_cloud_event, ChangeFacts, CloudEvent, EventType, OrderEventData};
use crate::order::edits::EditState;
use crate::order::fulfillment::FulfillmentStatus;
use crate::order::payments::{PaymentStatus, PspRequest, RefundState};
use crate::order::refunds::Refund;
use crate::order::returns::ReturnStatus;
use crate::order::{Order, OrderStatus};

fn for_return(status: ReturnStatus) -> EventType {
    match status {
        ReturnStatus::PendingApproval => EventType::ReturnRequested,
        ReturnStatus::Approved => EventType::ReturnApproved,
        ReturnStatus::Rejected => EventType::ReturnRejected,
        ReturnStatus::Received => EventType::ReturnReceived,
        ReturnStatus::Expired => EventType::ReturnExpired,
    }
}

/// Whether the lines differ in when their waiting units are expected, and in nothing else.
fn only_promises_changed(old: &Order, new: &Order) -> bool {
    only_lines_changed(
        old,
        new,
        |o, n| o.promised_on != n.promised_on,
        |o, n| {
            o.promised_on = n.promised_on;
        },
    )
}

/// Whether the change moved a pre-ordered line's release date and nothing else.
fn only_release_moved(old: &Order, new: &Order) -> bool {
    only_lines_changed(
        old,
        new,
        |o, n| o.release_on != n.release_on,
        |o, n| {
            o.release_on = n.release_on;
        },
    )
}

/// Whether the change changed some line by `changed` and nothing else of any line (`align`
/// makes an old line's field the new one's).
fn only_lines_changed(
    old: &Order,
    new: &Order,
    changed: impl Fn(&crate::order::OrderLine, &crate::order::OrderLine) -> bool,
    align: impl Fn(&mut crate::order::OrderLine, &crate::order::OrderLine),
) -> bool {
    old.lines.len() == new.lines.len()
        && old.lines.iter().zip(&new.lines).any(|(o, n)| changed(o, n))
        && old.lines.iter().zip(&new.lines).all(|(o, n)| {
            let mut o = o.clone();
            align(&mut o, n);
            &o == n
        })
}

fn for_status(status: OrderStatus) -> EventType {
    match status {
        OrderStatus::Pending => EventType::OrderPlaced,
        OrderStatus::Reserved => EventType::OrderReserved,
        OrderStatus::Rejected => EventType::OrderRejected,
        OrderStatus::Fulfilling => EventType::FulfillmentStarted,
        OrderStatus::Shipped | OrderStatus::PartiallyShipped => EventType::OrderShipped,
        OrderStatus::Delivered | OrderStatus::PartiallyDelivered => EventType::OrderDelivered,
        OrderStatus::Cancelled => EventType::OrderCancelled,
    }
}

fn for_payment(old: PaymentStatus, new: PaymentStatus, called_off: bool) -> EventType {
    match new {
        PaymentStatus::Authorized | PaymentStatus::PartiallyPaid | PaymentStatus::Paid
            if called_off =>
        {
            EventType::PaymentUpdated
        }
        PaymentStatus::Authorized | PaymentStatus::PartiallyPaid | PaymentStatus::Paid
            if old.is_unpaid() =>
        {
            EventType::PaymentAuthorized
        }
        PaymentStatus::PartiallyPaid | PaymentStatus::Paid => EventType::PaymentCaptured,
        PaymentStatus::Failed => EventType::PaymentFailed,
        PaymentStatus::Voided => EventType::PaymentVoided,
        _ => EventType::PaymentUpdated,
    }
}

fn for_fulfillment_step(status: FulfillmentStatus) -> Option<EventType> {
    match status {
        FulfillmentStatus::Picked => Some(EventType::Picked),
        FulfillmentStatus::Packed => Some(EventType::Packed),
        FulfillmentStatus::InTransit => Some(EventType::InTransit),
        FulfillmentStatus::OutForDelivery => Some(EventType::OutForDelivery),
        FulfillmentStatus::DeliveryException => Some(EventType::DeliveryException),
        _ => None,
    }
}

/// The units its shipments carry.
fn parcelled(order: &Order) -> u32 {
    order.shipments.iter().map(|s| s.units()).sum()
}

/// The order's event for its change from `old` to `new`, worked out from the two images.
pub(super) fn order_event(old: Option<&Order>, new: &Order) -> Option<CloudEvent<OrderEventData>> {
    // The step of the shipment this change moved (by its number), if it moved one.
    let moved = old.and_then(|old| {
        new.shipments
            .iter()
            .find(|s| {
                old.shipments
                    .iter()
                    .find(|o| o.number == s.number)
                    .map(|o| o.status)
                    != Some(s.status)
            })
            .map(|s| s.status)
    });
    // The return whose status this change set (a new return counts as changed).
    let changed_return = old.and_then(|old| {
        new.returns
            .iter()
            .rev()
            .find(|r| old.find_return(&r.return_id).map(|o| o.status) != Some(r.status))
    });
    // The refund whose settlement this change recorded.
    let settled_refund = old.and_then(|old| {
        new.refunds.iter().find(|r| {
            let state = new.refund_state(&r.refund_id);
            matches!(state, RefundState::Issued | RefundState::Failed)
                && old.refund_state(&r.refund_id) != state
        })
    });
    let new_payment = new.payment_status();
    let expired = new.cancellation.as_ref().is_some_and(|c| c.expired);
    let event_type = match old {
        // A replacement is created in the warehouse: its first event is its status.
        None if new.status != OrderStatus::Pending => for_status(new.status),
        None => EventType::OrderPlaced,
        Some(old) if old.version == new.version => return None,
        // Some units called off (the order's status may follow its shipments).
        Some(old) if new.unit_cancellations.len() > old.unit_cancellations.len() => {
            EventType::UnitsCancelled
        }
        // Where or how it ships changed; an edit's new total held, or the edit undone.
        Some(old) if new.edits.len() > old.edits.len() => EventType::OrderEdited,
        Some(old) if new.edits != old.edits && !new.status.is_final() => {
            match new
                .edits
                .iter()
                .zip(&old.edits)
                .find(|(n, o)| n.state != o.state)
            {
                Some((edit, _)) if edit.state == EditState::Undone => EventType::EditUndone,
                _ => EventType::EditPaid,
            }
        }
        Some(old) if old.status != new.status && expired => EventType::OrderExpired,
        // Held back from the warehouse because the PSP released the hold: a payment event.
        Some(old)
            if old.status == OrderStatus::Fulfilling && new.status == OrderStatus::Reserved =>
        {
            EventType::PaymentVoided
        }
        // Stock that arrived for an order already in the warehouses got its parcel.
        Some(old) if !old.shipments.is_empty() && parcelled(new) > parcelled(old) => {
            EventType::FulfillmentStarted
        }
        Some(old) if old.status != new.status => for_status(new.status),
        // Stock arrived for the last of its backordered units, or for some of those of an order
        // that ships what is there.
        Some(old)
            if old.backordered() > new.backordered()
                && (new.backordered() == 0 || !new.shipping.ship_complete)
                && !new.status.is_final() =>
        {
            EventType::BackorderFilled
        }
        Some(_) if changed_return.is_some() => for_return(changed_return.expect("checked").status),
        Some(_) if moved.is_some() => match moved {
            // A parcel of several that left or arrived while the order's status stayed.
            Some(FulfillmentStatus::Shipped) => EventType::OrderShipped,
            Some(FulfillmentStatus::Delivered) => EventType::OrderDelivered,
            step => step
                .and_then(for_fulfillment_step)
                .unwrap_or(EventType::OrderUpdated),
        },
        Some(_) if settled_refund.is_some() => {
            match new.refund_state(&settled_refund.expect("checked").refund_id) {
                RefundState::Issued => EventType::RefundIssued,
                _ => EventType::RefundFailed,
            }
        }
        Some(old) if old.payment_status() != new_payment => for_payment(
            old.payment_status(),
            new_payment,
            matches!(new.status, OrderStatus::Cancelled | OrderStatus::Rejected),
        ),
        Some(old) if old.payment.ledger.len() != new.payment.ledger.len() => {
            EventType::PaymentUpdated
        }
        Some(old) if only_promises_changed(old, new) => EventType::PromiseRevised,
        Some(old) if only_release_moved(old, new) => EventType::ReleaseMoved,
        Some(_) => EventType::OrderUpdated,
    };
    // What the PSP said with the entry this change recorded, if it gave a reason.
    let payment_reason = old
        .filter(|old| old.payment.ledger.len() < new.payment.ledger.len())
        .and_then(|_| new.payment.ledger.last())
        .and_then(|e| e.reason.clone());
    Some(order_cloud_event(
        new,
        event_type,
        ChangeFacts {
            previous_status: old.map(|o| o.status),
            return_id: changed_return.map(|r| &r.return_id),
            refund_added: new
                .refunds
                .get(old.map_or(0, |o| o.refunds.len()))
                .map(|r| r.refund_id.as_str()),
            refund_settled: settled_refund.map(|r| r.refund_id.as_str()),
            payment_reason,
            edit_id: edited(old, new, event_type),
            // The first line whose promise or release changed: a revision changes one.
            revised_sku: old
                .filter(|_| {
                    matches!(
                        event_type,
                        EventType::PromiseRevised | EventType::ReleaseMoved
                    )
                })
                .and_then(|old| {
                    new.lines
                        .iter()
                        .zip(&old.lines)
                        .find(|(n, o)| {
                            n.promised_on != o.promised_on || n.release_on != o.release_on
                        })
                        .map(|(n, _)| &n.sku)
                }),
        },
    ))
}

/// The refunds the change asked of the PSP: added, or released once their capture was
/// confirmed.
pub(super) fn refunds_asked<'a>(
    old: Option<&'a Order>,
    new: &'a Order,
) -> impl Iterator<Item = &'a Refund> {
    let asked_before = move |index: usize| {
        old.and_then(|o| o.refunds.get(index))
            .is_some_and(|r| !r.awaiting_capture)
    };
    new.refunds
        .iter()
        .enumerate()
        .filter(move |(index, refund)| !refund.awaiting_capture && !asked_before(*index))
        .map(|(_, refund)| refund)
}

/// The captures and voids the change asked of the PSP.
pub(super) fn requests_asked<'a>(
    old: Option<&'a Order>,
    new: &'a Order,
) -> impl Iterator<Item = &'a PspRequest> {
    let known = old.map_or(0, |o| o.payment.requests.len());
    new.payment.requests.iter().skip(known)
}

/// The recorded path and this one agree, byte for byte, on every change of random orders: every
/// kind of change the order has, in random orders (most refused, which is also a path).
#[cfg(test)]
mod tests {
    use super::super::{order_event as recorded_order_event, psp_request_events, refund_events};
    use super::*;
    use crate::ids::{IdempotencyKey, Sku};
    use crate::money::Money;
    use crate::order::fulfillment::{CarrierEventKind, CarrierUpdate};
    use crate::order::payments::{PaymentEvent, PaymentEventKind, PaymentPolicy, PaymentUpdate};
    use crate::order::returns::policy::ReturnPolicy;
    use crate::order::tests::{placed, product};
    use crate::request::returns::{ReceiptRequest, ReturnRequest};
    use crate::shipping::ShippingPolicy;
    use chrono::{DateTime, Duration, Utc};
    use proptest::prelude::*;
    use serde_json::json;

    #[derive(Debug, Clone)]
    enum Step {
        Reserve,
        Reject,
        Psp(PaymentEventKind, u8, bool, usize),
        StartFulfillment,
        Pick,
        Pack,
        Ship,
        Carrier(CarrierEventKind, i64),
        Cancel,
        Expire,
        Flag,
        RequestReturn(bool, bool),
        Decide(bool),
        Receive(u32),
        RetryRefund,
    }

    fn step() -> impl Strategy<Value = Step> {
        let kinds = PaymentEventKind::ALL.to_vec();
        let carrier = CarrierEventKind::ALL.to_vec();
        prop_oneof![
            1 => Just(Step::Reserve),
            1 => Just(Step::Reject),
            3 => (proptest::sample::select(kinds), 0u8..3, proptest::bool::weighted(0.1), 0usize..3)
                .prop_map(|(k, r, w, i)| Step::Psp(k, r, w, i)),
            1 => Just(Step::StartFulfillment),
            1 => Just(Step::Pick),
            1 => Just(Step::Pack),
            1 => Just(Step::Ship),
            2 => (proptest::sample::select(carrier), -5i64..20).prop_map(|(k, t)| Step::Carrier(k, t)),
            1 => Just(Step::Cancel),
            1 => Just(Step::Expire),
            1 => Just(Step::Flag),
            1 => (any::<bool>(), any::<bool>()).prop_map(|(a, b)| Step::RequestReturn(a, b)),
            1 => any::<bool>().prop_map(Step::Decide),
            1 => (0u32..3).prop_map(Step::Receive),
            1 => Just(Step::RetryRefund),
        ]
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn catalog() -> Vec<crate::stock::Product> {
        vec![
            product("A", 1000, 9),
            product("B", 500, 9),
            product("A2", 1000, 9),
        ]
    }

    /// What `step` makes of `order`, and the order it creates, if its state allows it.
    fn apply(order: &Order, step: &Step, n: usize) -> Option<(Order, Option<Order>)> {
        let now = t0() + Duration::minutes(10 + n as i64);
        let policy = PaymentPolicy::default();
        let only = |o: Order| Some((o, None));
        match step {
            Step::Reserve => only(order.reserve_all_at("BER-1", now).ok()?),
            Step::Reject => only(
                order
                    .reject(
                        vec![crate::order::Shortage {
                            sku: Sku::parse("A").unwrap(),
                            requested: 2,
                            available: 1,
                        }],
                        now,
                    )
                    .ok()?,
            ),
            Step::Psp(kind, reference, wrong, refund) => {
                let refund = kind
                    .is_refund()
                    .then(|| order.refunds.get(*refund).or(order.refunds.first()))
                    .flatten();
                let amount = refund.map_or(order.totals.total, |r| r.amount);
                let amount = if *wrong {
                    Money::new(amount.minor_units() + 1, amount.currency()).unwrap()
                } else {
                    amount
                };
                let event = PaymentEvent {
                    event_id: format!("evt-{n}"),
                    kind: *kind,
                    amount,
                    occurred_at: now,
                    psp_reference: Some(format!("pi_{reference}")),
                    refund_id: refund.map(|r| r.refund_id.clone()),
                    request_id: None,
                    reason: (*kind == PaymentEventKind::AuthorizationFailed)
                        .then(|| "insufficient_funds".to_owned()),
                };
                match order.record_payment(&event, &policy, now).ok()? {
                    PaymentUpdate::Recorded(next) => only(*next),
                    PaymentUpdate::Duplicate => None,
                }
            }
            Step::StartFulfillment => only(order.start_fulfillment("BER-1", now).ok()?),
            Step::Pick => only(order.pick(1, "p", now).ok()?),
            Step::Pack => only(order.pack(1, crate::fixtures::parcel(), "p", now).ok()?),
            Step::Ship => only(
                order
                    .ship(
                        1,
                        crate::fixtures::tracking(),
                        order.shipping.estimate,
                        "p",
                        now,
                    )
                    .ok()?,
            ),
            Step::Carrier(kind, offset) => {
                let at = now + Duration::seconds(*offset);
                match order
                    .carrier_event(1, &format!("c{n}"), *kind, Some("scan".into()), at, now)
                    .ok()?
                {
                    CarrierUpdate::Applied(next) => only(*next),
                    _ => None,
                }
            }
            Step::Cancel => only(
                order
                    .cancel("changed my mind".into(), "customer", now)
                    .ok()?
                    .order,
            ),
            Step::Expire => only(order.expire(&policy, now + Duration::hours(2)).ok()?.order),
            Step::Flag => only(order.flag_payment(&policy, now + Duration::days(6))?),
            Step::RequestReturn(exchange, both) => {
                let mut lines = vec![
                    json!({"sku": "A", "quantity": 1, "reason": "DAMAGED", "comment": "cracked"}),
                ];
                if *exchange {
                    lines[0]["exchangeSku"] = "A2".into();
                    lines[0]["reason"] = "DOES_NOT_FIT".into();
                }
                if *both {
                    lines.push(json!({"sku": "B", "quantity": 1, "reason": "NO_LONGER_NEEDED"}));
                }
                let change = order
                    .request_return(
                        &ReturnRequest::parse(&json!({ "lines": lines })).unwrap(),
                        IdempotencyKey::parse(&format!("k{n}")).unwrap(),
                        &catalog(),
                        &ReturnPolicy::default_policy(),
                        now,
                    )
                    .ok()?;
                only(change.order)
            }
            Step::Decide(approved) => {
                let rma = order.returns.last()?.return_id.clone();
                let note = Some("looked at it".to_owned());
                only(
                    order
                        .decide_return(&rma, *approved, "staff", note, now)
                        .ok()?
                        .order,
                )
            }
            Step::Receive(units) => {
                let rma = order.returns.last()?;
                let lines: Vec<_> = rma
                    .lines
                    .iter()
                    .map(|l| json!({"sku": l.sku.as_str(), "quantity": (*units).min(l.quantity.get()).max(1), "disposition": "RESTOCK"}))
                    .collect();
                let change = order
                    .receive_return(
                        &rma.return_id.clone(),
                        &ReceiptRequest::parse(&json!({ "lines": lines, "note": "box dented" }))
                            .unwrap(),
                        "dock",
                        &ReturnPolicy::default_policy(),
                        &ShippingPolicy::default_policy(),
                        now,
                    )
                    .ok()?;
                Some((change.order, change.created))
            }
            Step::RetryRefund => {
                let failed = order
                    .refunds
                    .iter()
                    .find(|r| order.refund_state(&r.refund_id) == RefundState::Failed)?;
                only(order.retry_refund(&failed.refund_id.clone(), now).ok()?)
            }
        }
    }

    /// Both paths' events for the change from `old` to `new`, as the publisher sends them.
    fn both(old: Option<&Order>, new: &Order) -> Result<(), TestCaseError> {
        let text = |v: &dyn erased::Json| v.text();
        let legacy_order = order_event(old, new);
        let recorded = recorded_order_event(old, Some(new));
        prop_assert!(new.last_change.is_some(), "the change was recorded");
        prop_assert_eq!(
            legacy_order.as_ref().map(|e| text(e)),
            recorded.as_ref().map(|e| text(e)),
            "order event of {:?}",
            new.last_change
        );
        let legacy_refunds: Vec<String> = refunds_asked(old, new)
            .map(|r| text(&super::super::refund_cloud_event(new, r)))
            .collect();
        let recorded_refunds: Vec<String> = refund_events(old, Some(new))
            .iter()
            .map(|e| text(e))
            .collect();
        prop_assert_eq!(legacy_refunds, recorded_refunds);
        let legacy_requests: Vec<String> = requests_asked(old, new)
            .map(|r| text(&super::super::psp_request_cloud_event(new, r)))
            .collect();
        let recorded_requests: Vec<String> = psp_request_events(old, Some(new))
            .iter()
            .map(|e| text(e))
            .collect();
        prop_assert_eq!(legacy_requests, recorded_requests);
        Ok(())
    }

    mod erased {
        pub trait Json {
            fn text(&self) -> String;
        }
        impl<T: serde::Serialize> Json for T {
            fn text(&self) -> String {
                serde_json::to_string(self).expect("an event serializes")
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        #[test]
        fn recorded_changes_publish_what_the_comparison_of_images_did(
            start in 0usize..10,
            steps in proptest::collection::vec(step(), 1..40)
        ) {
            let mut order = placed(
                json!([{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]),
                &catalog(),
            );
            both(None, &order)?;
            let mut kinds = std::collections::BTreeSet::new();
            // Walks start anywhere in the order's life, so its late changes are walked too.
            let happy = [
                Step::Reserve,
                Step::Psp(PaymentEventKind::AuthorizationSucceeded, 0, false, 0),
                Step::StartFulfillment,
                Step::Pick,
                Step::Pack,
                Step::Ship,
                Step::Carrier(CarrierEventKind::InTransit, 0),
                Step::Carrier(CarrierEventKind::Delivered, 1),
                Step::Psp(PaymentEventKind::CaptureSucceeded, 0, false, 0),
                Step::RequestReturn(false, true),
            ];
            let walk = happy.iter().take(start).chain(steps.iter());
            for (n, step) in walk.enumerate() {
                let Some((next, created)) = apply(&order, step, n) else { continue };
                both(Some(&order), &next)?;
                if let Some(created) = created {
                    both(None, &created)?;
                }
                kinds.insert(format!("{:?}", next.last_change.as_ref().map(|c| &c.event)));
                order = next;
            }
            // The same version written again (an index backfill, say) announces nothing.
            prop_assert!(recorded_order_event(Some(&order), Some(&order)).is_none());
            prop_assert!(refund_events(Some(&order), Some(&order)).is_empty());
        }
    }
}
