//! The OpenAPI document and the SAM template describe the same HTTP API.

use std::collections::BTreeSet;

fn load(path: &str) -> serde_yaml::Value {
    let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    serde_yaml::from_str(&std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}")))
        .unwrap()
}

/// The resources whose routes are not part of the JSON contract. The staff console serves HTML
/// pages to browsers (`GET /console`, `ANY /console/{proxy+}`), signs staff in with OpenID
/// Connect and checks its own session cookie instead of a bearer token; the OpenAPI document
/// mentions it in `info.description` but does not list its routes.
const NOT_IN_THE_CONTRACT: [&str; 1] = ["ConsoleFunction"];

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
        let policies = serde_yaml::to_string(&resource["Properties"]["Policies"]).unwrap();
        assert!(
            !policies.contains("dynamodb:*") && !policies.contains("FullAccess"),
            "{id:?} has narrow policies"
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
