//! Failures reach a person and nothing is kept longer than it must be, read from the template:
//! every alarm notifies the operations topic; every function has an errors and a throttles alarm
//! and a log group with a retention; every queue a message can die in has a dead-letter queue
//! with an alarm; the API keeps access logs that name no caller. No stack needed.

use std::collections::BTreeSet;

use serde_yaml::Value;

fn resources(template: &Value) -> Vec<(String, &Value)> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(name, resource)| (name.as_str().unwrap().to_owned(), resource))
        .collect()
}

fn of_type<'a>(template: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    resources(template)
        .into_iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

/// The resource a `!Ref Name` or `!GetAtt Name.Attribute` names.
fn named(reference: &Value) -> Option<String> {
    match reference {
        Value::Tagged(tagged) => tagged
            .value
            .as_str()
            .map(|v| v.split('.').next().unwrap().to_owned()),
        _ => None,
    }
}

#[test]
fn every_alarm_notifies_the_operations_topic() {
    let template = oms_system_tests::template();
    let alarms = of_type(&template, "AWS::CloudWatch::Alarm");
    assert!(!alarms.is_empty());
    for (name, alarm) in alarms {
        let actions: Vec<_> = alarm["Properties"]["AlarmActions"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{name} notifies nobody"))
            .iter()
            .filter_map(named)
            .collect();
        assert_eq!(actions, ["OperationsTopic"], "{name}");
    }
    // CloudWatch publishes as its service: the topic's key must be one whose policy lets it in
    // (the AWS managed key for SNS does not, and the alarms would reach nobody).
    let topic = &template["Resources"]["OperationsTopic"]["Properties"];
    let key =
        named(&topic["KmsMasterKeyId"]).expect("the topic is encrypted with a key of its own");
    let statements = template["Resources"][key.as_str()]["Properties"]["KeyPolicy"]["Statement"]
        .as_sequence()
        .expect("the key has a policy");
    assert!(
        statements.iter().any(|s| {
            s["Effect"] == "Allow"
                && s["Principal"]["Service"] == "cloudwatch.amazonaws.com"
                && s["Action"].as_sequence().is_some_and(|a| {
                    a.iter().any(|x| x == "kms:Decrypt")
                        && a.iter().any(|x| x == "kms:GenerateDataKey*")
                })
        }),
        "CloudWatch may use {key}"
    );
}

#[test]
fn every_function_has_error_and_throttle_alarms_and_a_log_retention() {
    let template = oms_system_tests::template();
    let alarmed: BTreeSet<(String, String)> = of_type(&template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, a)| a["Properties"]["Namespace"] == "AWS/Lambda")
        .flat_map(|(_, a)| {
            let metric = a["Properties"]["MetricName"].as_str().unwrap().to_owned();
            a["Properties"]["Dimensions"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter(|d| d["Name"] == "FunctionName")
                .filter_map(|d| named(&d["Value"]))
                .map(move |f| (f, metric.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let logged: BTreeSet<String> = of_type(&template, "AWS::Logs::LogGroup")
        .into_iter()
        .filter(|(_, g)| !g["Properties"]["RetentionInDays"].is_null())
        .filter_map(|(_, g)| match &g["Properties"]["LogGroupName"] {
            Value::Tagged(sub) => sub
                .value
                .as_str()
                .and_then(|s| s.strip_prefix("/aws/lambda/${"))
                .map(|s| s.trim_end_matches('}').to_owned()),
            _ => None,
        })
        .collect();
    let functions = of_type(&template, "AWS::Serverless::Function");
    assert_eq!(functions.len(), oms_system_tests::functions().len());
    for (function, _) in functions {
        for metric in ["Errors", "Throttles"] {
            assert!(
                alarmed.contains(&(function.clone(), metric.to_owned())),
                "{function} has no {metric} alarm"
            );
        }
        assert!(
            logged.contains(&function),
            "{function}'s logs have no retention"
        );
    }
    assert!(
        alarmed.contains(&(
            "EventPublisherFunction".to_owned(),
            "IteratorAge".to_owned()
        )),
        "the stream's iterator age is watched"
    );
}

#[test]
fn every_queue_has_a_dead_letter_queue_that_someone_watches() {
    let template = oms_system_tests::template();
    let queues = of_type(&template, "AWS::SQS::Queue");
    let mut dead_letter: BTreeSet<String> = queues
        .iter()
        .filter_map(|(_, q)| named(&q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]))
        .collect();
    // A stream's records that keep failing go to its event source's on-failure destination.
    for (_, function) in of_type(&template, "AWS::Serverless::Function") {
        for event in function["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flat_map(|e| e.values())
        {
            dead_letter.extend(named(
                &event["Properties"]["DestinationConfig"]["OnFailure"]["Destination"],
            ));
        }
    }
    let watched: BTreeSet<String> = of_type(&template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, a)| a["Properties"]["Namespace"] == "AWS/SQS")
        .flat_map(|(_, a)| {
            a["Properties"]["Dimensions"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter_map(|d| named(&d["Value"]))
                .collect::<Vec<_>>()
        })
        .collect();
    for (name, queue) in &queues {
        if dead_letter.contains(name) {
            assert!(watched.contains(name), "nobody hears of {name}");
        } else {
            assert!(
                !queue["Properties"]["RedrivePolicy"].is_null(),
                "{name} has no dead-letter queue: a poison message would be retried forever"
            );
        }
    }
}

#[test]
fn the_api_keeps_access_logs_that_name_no_caller() {
    let template = oms_system_tests::template();
    let settings = &template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"];
    assert!(
        named(&settings["DestinationArn"]).is_some(),
        "the API has access logs"
    );
    let format = settings["Format"].as_str().unwrap();
    for personal in ["$context.identity", "$context.authorizer"] {
        assert!(
            !format.contains(personal),
            "the access log names {personal}"
        );
    }
    let group = named(&settings["DestinationArn"]).unwrap();
    assert!(!template["Resources"][&group]["Properties"]["RetentionInDays"].is_null());
}
