//! The OpenAPI document and the SAM template describe the same HTTP API; every function builds
//! its own binary and has a role of its own that grants no more than it needs, read from the
//! transformed template (what AWS enforces). No stack needed.

use std::collections::BTreeSet;

use serde_json::{json, Value};

fn load(path: &str) -> serde_yaml::Value {
    let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    serde_yaml::from_str(&std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}")))
        .unwrap()
}

/// The resources whose routes are not part of the JSON contract. The staff console serves HTML
/// pages to browsers (`GET /console`, `ANY /console/{proxy+}`), signs staff in with OpenID
/// Connect and checks its own session cookie instead of a bearer token; the customers' pages
/// (`ANY /shop/{proxy+}`) are HTML too, opened by signed links with a cookie of their own. The
/// OpenAPI document mentions both in `info.description` but does not list their routes.
const NOT_IN_THE_CONTRACT: [&str; 2] = ["StaffConsoleFunction", "CustomerPagesFunction"];

/// The template's routes, read without resolving intrinsics (routes are plain strings), less
/// those of [`NOT_IN_THE_CONTRACT`].
fn template_routes() -> BTreeSet<(String, String)> {
    let template = oms_system_tests::template();
    for id in NOT_IN_THE_CONTRACT {
        assert!(
            template["Resources"][id].is_mapping(),
            "{id} is a resource of the template (drop it from NOT_IN_THE_CONTRACT if not)"
        );
    }
    let mut routes = BTreeSet::new();
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        if NOT_IN_THE_CONTRACT.contains(&id.as_str().unwrap()) {
            continue;
        }
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for event in events.values() {
            if event["Type"] == "HttpApi" {
                let p = &event["Properties"];
                routes.insert((
                    p["Method"].as_str().unwrap().to_lowercase(),
                    p["Path"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    routes
}

#[test]
fn openapi_paths_and_methods_equal_the_templates_routes() {
    let openapi = load("infra/openapi.yaml");
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in openapi["paths"].as_mapping().unwrap() {
        for method in item.as_mapping().unwrap().keys() {
            let method = method.as_str().unwrap();
            if ["get", "put", "post", "delete", "patch"].contains(&method) {
                documented.insert((method.to_owned(), path.as_str().unwrap().to_owned()));
            }
        }
    }
    assert_eq!(documented, template_routes());
}

#[test]
fn every_function_builds_its_own_binary_with_least_privilege() {
    let template = oms_system_tests::template();
    let roles = oms_system_tests::execution_roles();
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap();
        assert_eq!(
            resource["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{id:?}"
        );
        let dir = format!("{}/../functions/{binary}", env!("CARGO_MANIFEST_DIR"));
        assert!(
            std::path::Path::new(&dir).is_dir(),
            "{id:?}: functions/{binary} exists"
        );
        let camel: String = binary
            .split('-')
            .map(|w| w[..1].to_uppercase() + &w[1..])
            .collect();
        assert_eq!(
            id.as_str().unwrap(),
            format!("{camel}Function"),
            "folder = package = binary = function name"
        );
        // The whole role the transformed template gives it, managed policies included.
        let role = &roles[id.as_str().unwrap()];
        assert!(role.is_object(), "{id:?} has an execution role");
        let role = role.to_string();
        assert!(
            !role.contains("dynamodb:*") && !role.contains("FullAccess"),
            "{id:?} has a narrow role: {role}"
        );
    }
    let sqs_events: Vec<_> = template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter_map(|r| r["Properties"]["Events"].as_mapping())
        .flat_map(|e| e.values())
        .filter(|e| e["Type"] == "SQS" || e["Type"] == "DynamoDB")
        .collect();
    assert!(!sqs_events.is_empty());
    for event in sqs_events {
        let size = event["Properties"]["BatchSize"].as_u64().unwrap();
        assert!(
            (1..=if event["Type"] == "SQS" { 10 } else { 1000 }).contains(&size),
            "batch size {size} within Lambda's limits"
        );
        assert_eq!(
            event["Properties"]["FunctionResponseTypes"][0],
            "ReportBatchItemFailures"
        );
    }
}

/// What Lambda's SQS poller does with the function's role on the queue it reads.
const SQS_POLLER: [&str; 4] = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
];

/// What Lambda's stream reader does with the function's role on the stream it reads.
const STREAM_READER: [&str; 3] = [
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
];

/// The actions of the only statements that may name every resource (`Resource: "*"`), those IAM
/// cannot grant on one resource: X-Ray's trace writes (every traced function), and
/// `dynamodb:ListStreams` (Lambda's stream permissions list it; it shows stream ARNs only).
const ON_EVERY_RESOURCE: [&[&str]; 2] = [
    &["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
    &["dynamodb:ListStreams"],
];

#[test]
fn every_functions_whole_role_is_its_own_and_names_only_its_own_resources() {
    let template = oms_system_tests::template();
    let roles = oms_system_tests::execution_roles();
    let roles = roles.as_object().unwrap();
    assert_eq!(
        roles.len(),
        oms_system_tests::functions().len(),
        "a role for every function"
    );
    // The event sources the transform made are the template's.
    let triggered = |kind: &str| -> BTreeSet<String> {
        roles
            .values()
            .filter(|r| {
                r["event_sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["type"] == kind)
            })
            .map(|r| r["binary"].as_str().unwrap().to_owned())
            .collect()
    };
    let (by_queue, by_stream) = (
        triggered("AWS::SQS::Queue"),
        triggered("AWS::DynamoDB::Table"),
    );
    assert!(!by_queue.is_empty() && !by_stream.is_empty());
    assert_eq!(by_queue, oms_system_tests::functions_triggered_by("SQS"));
    assert_eq!(
        by_stream,
        oms_system_tests::functions_triggered_by("DynamoDB")
    );

    let mut role_ids = BTreeSet::new();
    for (id, role) in roles {
        assert_eq!(
            role["generated_by_sam"], false,
            "{id}: a role of the template's, not SAM's"
        );
        assert!(
            role_ids.insert(role["role"].as_str().unwrap().to_owned()),
            "{id}: a role no other function shares"
        );
        assert_eq!(
            role["managed_policy_arns"],
            json!([]),
            "{id}: no managed policy (SAM's grant on every resource)"
        );
        assert_eq!(
            role["assume_role_policy"]["Statement"],
            json!([{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]),
            "{id}: only Lambda assumes it"
        );

        // Its log group: /aws/lambda/<FunctionName>, which the template creates.
        let name = role["function_name"]["Fn::Sub"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: its FunctionName is a !Sub string"));
        let own_log_group = json!({"Fn::Sub": format!(
            "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:/aws/lambda/{name}:*"
        )});
        let names_its_group = |group: &serde_yaml::Value| match &group["Properties"]["LogGroupName"]
        {
            serde_yaml::Value::Tagged(sub) if sub.tag == "Sub" => {
                let written = sub.value.as_str().unwrap_or_default();
                written == format!("/aws/lambda/${{{id}}}")
                    || written == format!("/aws/lambda/{name}")
            }
            _ => false,
        };
        assert!(
            template["Resources"]
                .as_mapping()
                .unwrap()
                .values()
                .any(|r| r["Type"] == "AWS::Logs::LogGroup" && names_its_group(r)),
            "{id}: the template creates its log group, /aws/lambda/{name}"
        );

        let sources = |kind: &str| -> Vec<Value> {
            role["event_sources"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["type"] == kind)
                .map(|s| s["arn"].clone())
                .collect()
        };
        let (queues, streams) = (sources("AWS::SQS::Queue"), sources("AWS::DynamoDB::Table"));
        let mut granted: BTreeSet<(String, String)> = BTreeSet::new();
        for statement in role["statements"].as_array().unwrap() {
            assert_eq!(statement["Effect"], "Allow", "{id}: {statement}");
            assert!(
                statement.get("NotAction").is_none() && statement.get("NotResource").is_none(),
                "{id}: {statement}"
            );
            let actions: BTreeSet<&str> = statement["Action"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            let resources = statement["Resource"].as_array().unwrap();
            for action in &actions {
                assert!(
                    !action.contains('*'),
                    "{id}: {action} names actions by a wildcard"
                );
            }
            assert!(
                !actions.contains("logs:CreateLogGroup"),
                "{id}: the template creates its log group; the role need not"
            );
            if resources.iter().any(|r| r == "*") {
                assert!(
                    ON_EVERY_RESOURCE
                        .iter()
                        .any(|only| actions == only.iter().copied().collect::<BTreeSet<_>>()),
                    "{id}: {actions:?} on every resource"
                );
            }
            if actions.iter().any(|a| a.starts_with("logs:")) {
                assert_eq!(
                    actions,
                    BTreeSet::from(["logs:CreateLogStream", "logs:PutLogEvents"]),
                    "{id}"
                );
                assert_eq!(
                    resources,
                    &vec![own_log_group.clone()],
                    "{id}: logs to its own group only"
                );
            }
            if !queues.is_empty() && actions.iter().any(|a| SQS_POLLER.contains(a)) {
                for resource in resources {
                    assert!(
                        queues.contains(resource),
                        "{id}: {actions:?} on {resource}, not its own queue"
                    );
                }
            }
            if actions
                .iter()
                .any(|a| STREAM_READER.contains(a) || *a == "dynamodb:ListStreams")
            {
                assert!(
                    !streams.is_empty(),
                    "{id}: reads streams, but no stream triggers it"
                );
            }
            if actions.iter().any(|a| STREAM_READER.contains(a)) {
                for resource in resources {
                    assert!(
                        streams.contains(resource),
                        "{id}: {actions:?} on {resource}, not its own stream"
                    );
                }
            }
            for action in &actions {
                for resource in resources {
                    granted.insert((action.to_string(), resource.to_string()));
                }
            }
        }
        // What Lambda needs the role for: the logs, the traces, the event sources.
        let mut needed: Vec<(&str, Value)> = vec![
            ("logs:CreateLogStream", own_log_group.clone()),
            ("logs:PutLogEvents", own_log_group.clone()),
            ("xray:PutTraceSegments", json!("*")),
            ("xray:PutTelemetryRecords", json!("*")),
        ];
        for queue in &queues {
            needed.extend(SQS_POLLER.iter().map(|a| (*a, queue.clone())));
        }
        for stream in &streams {
            needed.extend(STREAM_READER.iter().map(|a| (*a, stream.clone())));
            needed.push(("dynamodb:ListStreams", json!("*")));
        }
        for (action, resource) in needed {
            assert!(
                granted.contains(&(action.to_owned(), resource.to_string())),
                "{id}: Lambda needs {action} on {resource}"
            );
        }
    }
}
