//! Creating the template's tables, queues, topics, subscriptions and secrets in the emulator.
//!
//! Resources are created in dependency order: a pass creates every resource whose references
//! resolve, and passes repeat until all are created (a dead-letter queue before the queue that
//! redrives to it, a topic and a queue before their subscription). Resource kinds that have no
//! local meaning (queue policies, alarms) are skipped and listed.
//!
//! A secret whose value the template leaves to Secrets Manager (`GenerateSecretString`) gets a
//! known value locally instead of a random one, so that whoever plays the other side (the PSP's
//! and the carriers' webhooks: `oms-local psp`, the system tests) can sign with it, and the staff
//! console's session cookies (`ConsoleSessionSecret`) outlive a restart of the stack.

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
    pub secretsmanager: aws_sdk_secretsmanager::Client,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const HANDLED: [&str; 5] = [
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::SecretsManager::Secret",
];

/// Local choices that change what provisioning creates.
pub struct Options<'a> {
    /// Shortens queues' visibility timeouts so retries are seen in seconds.
    pub visibility_override: Option<u32>,
    /// The local value of each secret the template has generated (`GenerateSecretString`), by
    /// its logical id.
    pub generated_secrets: &'a HashMap<String, String>,
}

impl Options<'_> {
    /// The local value of the generated secret `logical_id`: the one named for it, or one made
    /// from its name (at least 16 characters, as the webhooks require).
    fn generated_secret(&self, logical_id: &str) -> String {
        self.generated_secrets
            .get(logical_id)
            .cloned()
            .unwrap_or_else(|| format!("local-secret-{}", logical_id.to_lowercase()))
    }
}

/// Creates every resource the local stack emulates and records what references to them give.
pub async fn provision(
    template: &Template,
    context: &mut Context,
    clients: &Clients,
    options: &Options<'_>,
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
        if skipped.kind == "AWS::KMS::Key" {
            // The emulator's topics are not encrypted; a reference to the key names it only.
            context.resources.insert(
                skipped.logical_id.clone(),
                Physical {
                    reference: format!("local-{}", skipped.logical_id),
                    ..Default::default()
                },
            );
        }
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
                    create_queue(
                        clients,
                        context,
                        &name,
                        &properties,
                        options.visibility_override,
                    )
                    .await?
                }
                "AWS::SNS::Topic" => create_topic(clients, &name).await?,
                "AWS::SNS::Subscription" => create_subscription(clients, &properties).await?,
                "AWS::SecretsManager::Secret" => {
                    let generated = options.generated_secret(&resource.logical_id);
                    create_secret(clients, &name, &properties, &generated).await?
                }
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

/// The value a secret is created with: its `SecretString`, or for a `GenerateSecretString`
/// secret the local value (with `SecretStringTemplate` and `GenerateStringKey`, the template's
/// JSON with that key set to it, as Secrets Manager would generate it). `None`: an empty secret.
pub fn secret_value(p: &Value, generated: &str) -> Result<Option<String>, BoxError> {
    if let Some(value) = p["SecretString"].as_str() {
        return Ok(Some(value.to_owned()));
    }
    let generate = &p["GenerateSecretString"];
    if !generate.is_object() {
        return Ok(None);
    }
    match (
        generate["SecretStringTemplate"].as_str(),
        generate["GenerateStringKey"].as_str(),
    ) {
        (Some(template), Some(key)) => {
            let mut object: serde_json::Map<String, Value> = serde_json::from_str(template)
                .map_err(|e| format!("SecretStringTemplate is not a JSON object: {e}"))?;
            object.insert(key.to_owned(), Value::String(generated.to_owned()));
            Ok(Some(Value::Object(object).to_string()))
        }
        (None, None) => Ok(Some(generated.to_owned())),
        _ => Err("SecretStringTemplate and GenerateStringKey go together".into()),
    }
}

/// Creates the secret `name`; `Ref` of it is its ARN, as in CloudFormation.
async fn create_secret(
    clients: &Clients,
    name: &str,
    p: &Value,
    generated: &str,
) -> Result<Physical, BoxError> {
    use aws_sdk_secretsmanager::error::DisplayErrorContext;
    let value = secret_value(p, generated)?;
    let mut request = clients
        .secretsmanager
        .create_secret()
        .name(name)
        .set_secret_string(value.clone());
    if let Some(description) = p["Description"].as_str() {
        request = request.description(description);
    }
    let arn = match request.send().await {
        Ok(output) => output.arn,
        // An emulator kept from an earlier start (`--emulator-url`): the value is set anew.
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_exists_exception()) =>
        {
            let mut put = clients.secretsmanager.put_secret_value().secret_id(name);
            if let Some(value) = value {
                put = put.secret_string(value);
            }
            put.send()
                .await
                .map_err(|e| format!("PutSecretValue {name}: {}", DisplayErrorContext(&e)))?
                .arn
        }
        Err(error) => {
            return Err(format!("CreateSecret {name}: {}", DisplayErrorContext(&error)).into())
        }
    }
    .ok_or("Secrets Manager answered no ARN")?;
    Ok(Physical {
        reference: arn.clone(),
        attributes: HashMap::from([("Id".to_owned(), arn)]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_generated_secret_gets_the_local_value() {
        let generated =
            json!({"GenerateSecretString": {"PasswordLength": 48, "ExcludePunctuation": true}});
        assert_eq!(
            secret_value(&generated, "local-psp-secret-0123456789").unwrap(),
            Some("local-psp-secret-0123456789".to_owned())
        );
        let templated = json!({"GenerateSecretString": {
            "SecretStringTemplate": "{\"username\": \"oms\"}", "GenerateStringKey": "password"}});
        let value: Value =
            serde_json::from_str(&secret_value(&templated, "s3cret").unwrap().unwrap()).unwrap();
        assert_eq!(value, json!({"username": "oms", "password": "s3cret"}));
        assert_eq!(
            secret_value(&json!({"SecretString": "given"}), "x").unwrap(),
            Some("given".to_owned())
        );
        assert_eq!(secret_value(&json!({}), "x").unwrap(), None);
        assert!(secret_value(
            &json!({"GenerateSecretString": {"GenerateStringKey": "password"}}),
            "x"
        )
        .is_err());
    }
}
