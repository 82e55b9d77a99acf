//! Creating the template's tables, queues, topics and subscriptions in the emulator.
//!
//! Resources are created in dependency order: a pass creates every resource whose references
//! resolve, and passes repeat until all are created (a dead-letter queue before the queue that
//! redrives to it, a topic and a queue before their subscription). Resource kinds that have no
//! local meaning (queue policies, alarms) are skipped and listed.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use crate::template::{Context, Physical, Resource, Template, TemplateError};

/// The clients provisioning uses.
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const HANDLED: [&str; 4] = [
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
];

/// Creates every resource the local stack emulates and records what references to them give.
/// `visibility_override` shortens queues' visibility timeouts so retries are seen in seconds.
pub async fn provision(
    template: &Template,
    context: &mut Context,
    clients: &Clients,
    visibility_override: Option<u32>,
) -> Result<(), BoxError> {
    let mut pending: Vec<&Resource> = Vec::new();
    for resource in template
        .resources
        .iter()
        .filter(|r| HANDLED.contains(&r.kind.as_str()))
    {
        if template.exists(resource, context)? {
            pending.push(resource);
        } else {
            tracing::info!(resource = %resource.logical_id, "its condition is false; not created");
        }
    }
    for skipped in template
        .resources
        .iter()
        .filter(|r| !HANDLED.contains(&r.kind.as_str()))
    {
        if skipped.kind == "AWS::Serverless::HttpApi" {
            // The local gateway is the API; functions' route events refer to it by id.
            context.resources.insert(
                skipped.logical_id.clone(),
                Physical {
                    reference: "oms-local".into(),
                    ..Default::default()
                },
            );
        }
        tracing::debug!(resource = %skipped.logical_id, kind = %skipped.kind, "not emulated; skipped");
    }
    while !pending.is_empty() {
        let mut waiting = Vec::new();
        let before = pending.len();
        for resource in pending {
            let properties = match context.resolve(&resource.properties) {
                Ok(p) => p,
                Err(TemplateError::Pending(_)) => {
                    waiting.push(resource);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let name = format!("{}-{}", context.stack, resource.logical_id);
            let physical = match resource.kind.as_str() {
                "AWS::DynamoDB::Table" => {
                    create_table(clients, context, &name, &properties).await?
                }
                "AWS::SQS::Queue" => {
                    create_queue(clients, context, &name, &properties, visibility_override).await?
                }
                "AWS::SNS::Topic" => create_topic(clients, &name).await?,
                "AWS::SNS::Subscription" => create_subscription(clients, &properties).await?,
                _ => unreachable!("filtered above"),
            };
            tracing::info!(resource = %resource.logical_id, reference = %physical.reference, "created");
            context
                .resources
                .insert(resource.logical_id.clone(), physical);
        }
        if waiting.len() == before {
            let ids: Vec<_> = waiting.iter().map(|r| r.logical_id.as_str()).collect();
            return Err(format!(
                "these resources reference something that is never created: {ids:?}"
            )
            .into());
        }
        pending = waiting;
    }
    Ok(())
}

fn str_of<'a>(value: &'a Value, key: &str) -> Result<&'a str, BoxError> {
    value[key]
        .as_str()
        .ok_or_else(|| format!("missing {key}").into())
}

fn key_schema(value: &Value) -> Result<Vec<KeySchemaElement>, BoxError> {
    let mut out = Vec::new();
    for element in value.as_array().ok_or("KeySchema must be a list")? {
        out.push(
            KeySchemaElement::builder()
                .attribute_name(str_of(element, "AttributeName")?)
                .key_type(KeyType::from(str_of(element, "KeyType")?))
                .build()?,
        );
    }
    Ok(out)
}

async fn create_table(
    clients: &Clients,
    context: &Context,
    name: &str,
    p: &Value,
) -> Result<Physical, BoxError> {
    let mut request = clients
        .dynamodb
        .create_table()
        .table_name(name)
        .set_key_schema(Some(key_schema(&p["KeySchema"])?));
    for definition in p["AttributeDefinitions"]
        .as_array()
        .ok_or("AttributeDefinitions must be a list")?
    {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(str_of(definition, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(str_of(
                    definition,
                    "AttributeType",
                )?))
                .build()?,
        );
    }
    for index in p["GlobalSecondaryIndexes"].as_array().into_iter().flatten() {
        let mut projection = Projection::builder().projection_type(ProjectionType::from(
            index["Projection"]["ProjectionType"]
                .as_str()
                .unwrap_or("ALL"),
        ));
        for attribute in index["Projection"]["NonKeyAttributes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            projection = projection.non_key_attributes(attribute.as_str().unwrap_or_default());
        }
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(str_of(index, "IndexName")?)
                .set_key_schema(Some(key_schema(&index["KeySchema"])?))
                .projection(projection.build())
                .build()?,
        );
    }
    request = request.billing_mode(BillingMode::from(
        p["BillingMode"].as_str().unwrap_or("PAY_PER_REQUEST"),
    ));
    if let Some(view) = p["StreamSpecification"]["StreamViewType"].as_str() {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view))
                .build()?,
        );
    }
    let output = request.send().await?;
    let description = output
        .table_description
        .ok_or("CreateTable answered no description")?;
    if let Some(ttl) = p["TimeToLiveSpecification"]["AttributeName"].as_str() {
        clients
            .dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(ttl)
                    .enabled(true)
                    .build()?,
            )
            .send()
            .await?;
    }
    let mut attributes = HashMap::from([(
        "Arn".to_owned(),
        description.table_arn.unwrap_or_else(|| {
            format!(
                "arn:aws:dynamodb:{}:{}:table/{name}",
                context.region, context.account
            )
        }),
    )]);
    if let Some(stream) = description.latest_stream_arn {
        attributes.insert("StreamArn".into(), stream);
    }
    Ok(Physical {
        reference: name.to_owned(),
        attributes,
    })
}

async fn create_queue(
    clients: &Clients,
    context: &Context,
    name: &str,
    p: &Value,
    visibility_override: Option<u32>,
) -> Result<Physical, BoxError> {
    let fifo = p["FifoQueue"].as_bool().unwrap_or(false);
    let name = if fifo {
        format!("{name}.fifo")
    } else {
        name.to_owned()
    };
    let mut request = clients.sqs.create_queue().queue_name(&name);
    let number = |key: &str| {
        p[key]
            .as_u64()
            .or_else(|| p[key].as_str().and_then(|s| s.parse().ok()))
    };
    if let Some(seconds) = visibility_override
        .map(u64::from)
        .or_else(|| number("VisibilityTimeout"))
    {
        request = request.attributes(QueueAttributeName::VisibilityTimeout, seconds.to_string());
    }
    if let Some(seconds) = number("MessageRetentionPeriod") {
        request = request.attributes(
            QueueAttributeName::MessageRetentionPeriod,
            seconds.to_string(),
        );
    }
    if p["RedrivePolicy"].is_object() {
        request = request.attributes(
            QueueAttributeName::RedrivePolicy,
            p["RedrivePolicy"].to_string(),
        );
    }
    if fifo {
        request = request.attributes(QueueAttributeName::FifoQueue, "true");
        if p["ContentBasedDeduplication"].as_bool() == Some(true) {
            request = request.attributes(QueueAttributeName::ContentBasedDeduplication, "true");
        }
    }
    let url = request
        .send()
        .await?
        .queue_url
        .ok_or("CreateQueue answered no URL")?;
    let arn = format!("arn:aws:sqs:{}:{}:{name}", context.region, context.account);
    Ok(Physical {
        reference: url,
        attributes: HashMap::from([
            ("Arn".to_owned(), arn),
            ("QueueName".to_owned(), name.clone()),
        ]),
    })
}

async fn create_topic(clients: &Clients, name: &str) -> Result<Physical, BoxError> {
    let arn = clients
        .sns
        .create_topic()
        .name(name)
        .send()
        .await?
        .topic_arn
        .ok_or("CreateTopic answered no ARN")?;
    Ok(Physical {
        reference: arn.clone(),
        attributes: HashMap::from([
            ("TopicName".to_owned(), name.to_owned()),
            ("TopicArn".to_owned(), arn),
        ]),
    })
}

async fn create_subscription(clients: &Clients, p: &Value) -> Result<Physical, BoxError> {
    let mut request = clients
        .sns
        .subscribe()
        .topic_arn(str_of(p, "TopicArn")?)
        .protocol(str_of(p, "Protocol")?)
        .endpoint(str_of(p, "Endpoint")?)
        .return_subscription_arn(true);
    if let Some(raw) = p["RawMessageDelivery"].as_bool() {
        request = request.attributes("RawMessageDelivery", raw.to_string());
    }
    if p["FilterPolicy"].is_object() {
        request = request.attributes("FilterPolicy", p["FilterPolicy"].to_string());
    }
    if let Some(scope) = p["FilterPolicyScope"].as_str() {
        request = request.attributes("FilterPolicyScope", scope);
    }
    let arn = request.send().await?.subscription_arn.unwrap_or_default();
    Ok(Physical {
        reference: arn,
        attributes: HashMap::new(),
    })
}
