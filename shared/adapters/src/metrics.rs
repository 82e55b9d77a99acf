//! The figures a business watches, as CloudWatch embedded metric format (EMF) lines.
//!
//! A function writes one JSON line to its log per figure and CloudWatch turns it into a metric
//! (namespace [`NAMESPACE`]) with no API call and no added latency: the way Lambda functions are
//! expected to report. The event publisher counts the domain events it published by type (orders
//! placed, reserved, rejected, shipped, delivered; returns received; refunds issued; payments …),
//! the notifier's sink the messages sent by channel, the sweep what it expired and re-drove. The
//! template's dashboard and alarms read them.

use chrono::Utc;
use serde_json::json;

/// The metrics' namespace.
pub const NAMESPACE: &str = "OMS";

/// One EMF line: `metric` = `value` (a count) for one `dimension` value, or with no dimension.
pub fn count_line(metric: &str, dimension: Option<(&str, &str)>, value: usize) -> String {
    let dimensions: Vec<&str> = dimension.map(|(name, _)| name).into_iter().collect();
    let mut line = json!({
        "_aws": {
            "Timestamp": Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        },
        metric: value,
    });
    if let Some((name, dimension_value)) = dimension {
        line[name] = dimension_value.into();
    }
    line.to_string()
}

/// Writes `metric` per `dimension` value, one line each (EMF gives a line one set of dimension
/// values).
pub fn emit_counts<'a>(
    metric: &str,
    dimension: &str,
    counts: impl IntoIterator<Item = (&'a str, usize)>,
) {
    for (value, count) in counts {
        println!("{}", count_line(metric, Some((dimension, value)), count));
    }
}

/// Writes one dimensionless `metric`.
pub fn emit_count(metric: &str, value: usize) {
    println!("{}", count_line(metric, None, value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_embedded_metric_format() {
        let line: serde_json::Value = serde_json::from_str(&count_line(
            "Events",
            Some(("EventType", "oms.order.placed")),
            3,
        ))
        .unwrap();
        let declared = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "OMS");
        assert_eq!(declared["Dimensions"], json!([["EventType"]]));
        assert_eq!(declared["Metrics"][0]["Name"], "Events");
        assert_eq!(line["Events"], 3);
        assert_eq!(line["EventType"], "oms.order.placed");
        assert!(line["_aws"]["Timestamp"].is_i64());
        let plain: serde_json::Value =
            serde_json::from_str(&count_line("OrdersExpired", None, 0)).unwrap();
        assert_eq!(
            plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
    }
}
