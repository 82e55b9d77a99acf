//! Reading `infra/template.yaml`: the resources the local stack creates and the functions it runs.
//!
//! CloudFormation's intrinsic functions are resolved here, in both their short YAML-tag form
//! (`!Ref`, `!GetAtt`, `!Sub`) and their long form (`Ref:`, `Fn::GetAtt:`, `Fn::Sub:`), against
//! the template's parameters, the pseudo parameters and the resources created so far.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use serde_yaml::Value as Yaml;

/// A template problem: the local stack refuses to start rather than run something else.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the template: {0}")]
    Io(#[from] std::io::Error),
    #[error("the template is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("{0}")]
    Invalid(String),
    /// A reference to a resource that is not created yet; provisioning tries again later.
    #[error("{0} is not created yet")]
    Pending(String),
}

/// What `Ref` and `Fn::GetAtt` of a created resource give.
#[derive(Debug, Clone, Default)]
pub struct Physical {
    pub reference: String,
    pub attributes: HashMap<String, String>,
}

/// Everything references resolve against.
#[derive(Debug, Clone)]
pub struct Context {
    pub parameters: HashMap<String, String>,
    pub resources: HashMap<String, Physical>,
    pub region: String,
    pub account: String,
    pub stack: String,
    /// The template's conditions, for `Fn::If`.
    pub conditions: BTreeMap<String, Yaml>,
}

impl Context {
    fn pseudo(&self, name: &str) -> Option<String> {
        match name {
            "AWS::Region" => Some(self.region.clone()),
            "AWS::AccountId" => Some(self.account.clone()),
            "AWS::StackName" => Some(self.stack.clone()),
            "AWS::Partition" => Some("aws".into()),
            "AWS::URLSuffix" => Some("amazonaws.com".into()),
            _ => None,
        }
    }

    fn reference(&self, name: &str) -> Result<String, TemplateError> {
        if let Some(value) = self
            .pseudo(name)
            .or_else(|| self.parameters.get(name).cloned())
        {
            return Ok(value);
        }
        self.resources
            .get(name)
            .map(|r| r.reference.clone())
            .ok_or_else(|| TemplateError::Pending(name.to_owned()))
    }

    fn attribute(&self, resource: &str, attribute: &str) -> Result<String, TemplateError> {
        let physical = self
            .resources
            .get(resource)
            .ok_or_else(|| TemplateError::Pending(resource.to_owned()))?;
        physical.attributes.get(attribute).cloned().ok_or_else(|| {
            TemplateError::Invalid(format!(
                "{resource} has no attribute {attribute} in the local stack"
            ))
        })
    }

    fn substitute(
        &self,
        text: &str,
        variables: &HashMap<String, String>,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| TemplateError::Invalid(format!("unclosed ${{ in {text}")))?;
            let name = &rest[start + 2..start + end];
            let value = match variables.get(name) {
                Some(v) => v.clone(),
                None => match name.split_once('.') {
                    Some((resource, attribute)) => self.attribute(resource, attribute)?,
                    None => self.reference(name)?,
                },
            };
            out.push_str(&value);
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Resolves every intrinsic function in `value` and returns plain JSON.
    pub fn resolve(&self, value: &Yaml) -> Result<Value, TemplateError> {
        match value {
            Yaml::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                let name = tag.trim_start_matches('!');
                let long = match name {
                    "Ref" => "Ref".to_owned(),
                    other => format!("Fn::{other}"),
                };
                self.intrinsic(&long, &tagged.value)
            }
            Yaml::Mapping(map) if map.len() == 1 => {
                let (key, inner) = map.iter().next().expect("one entry");
                match key.as_str() {
                    Some(k) if k == "Ref" || k.starts_with("Fn::") => self.intrinsic(k, inner),
                    _ => self.resolve_map(map),
                }
            }
            Yaml::Mapping(map) => self.resolve_map(map),
            Yaml::Sequence(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|i| self.resolve(i))
                    .collect::<Result<_, _>>()?,
            )),
            Yaml::String(s) => Ok(Value::String(s.clone())),
            Yaml::Bool(b) => Ok(Value::Bool(*b)),
            Yaml::Number(n) => Ok(serde_json::to_value(n).unwrap_or(Value::Null)),
            Yaml::Null => Ok(Value::Null),
        }
    }

    fn resolve_map(&self, map: &serde_yaml::Mapping) -> Result<Value, TemplateError> {
        let mut out = serde_json::Map::new();
        for (k, v) in map {
            let key = k
                .as_str()
                .ok_or_else(|| TemplateError::Invalid("a mapping key is not a string".into()))?;
            out.insert(key.to_owned(), self.resolve(v)?);
        }
        Ok(Value::Object(out))
    }

    fn intrinsic(&self, function: &str, argument: &Yaml) -> Result<Value, TemplateError> {
        let text = |v: &Yaml| -> Result<String, TemplateError> {
            match self.resolve(v)? {
                Value::String(s) => Ok(s),
                other => Err(TemplateError::Invalid(format!(
                    "{function} expects a string, got {other}"
                ))),
            }
        };
        match function {
            "Ref" => Ok(Value::String(self.reference(&text(argument)?)?)),
            "Fn::GetAtt" => {
                let (resource, attribute) = match argument {
                    Yaml::Sequence(parts) if parts.len() == 2 => {
                        (text(&parts[0])?, text(&parts[1])?)
                    }
                    other => {
                        let joined = text(other)?;
                        let (r, a) = joined.split_once('.').ok_or_else(|| {
                            TemplateError::Invalid(format!("bad GetAtt {joined}"))
                        })?;
                        (r.to_owned(), a.to_owned())
                    }
                };
                Ok(Value::String(self.attribute(&resource, &attribute)?))
            }
            "Fn::Sub" => match argument {
                Yaml::Sequence(parts) if parts.len() == 2 => {
                    let mut variables = HashMap::new();
                    if let Value::Object(map) = self.resolve(&parts[1])? {
                        for (k, v) in map {
                            variables.insert(k, v.as_str().unwrap_or_default().to_owned());
                        }
                    }
                    Ok(Value::String(
                        self.substitute(&text(&parts[0])?, &variables)?,
                    ))
                }
                other => Ok(Value::String(
                    self.substitute(&text(other)?, &HashMap::new())?,
                )),
            },
            "Fn::If" => match argument {
                Yaml::Sequence(parts) if parts.len() == 3 => {
                    let name = text(&parts[0])?;
                    let condition = self.conditions.get(&name).ok_or_else(|| {
                        TemplateError::Invalid(format!("unknown condition {name}"))
                    })?;
                    let holds = self.resolve(condition)?.as_bool().unwrap_or(false);
                    self.resolve(&parts[if holds { 1 } else { 2 }])
                }
                _ => Err(TemplateError::Invalid(
                    "Fn::If takes [condition, then, else]".into(),
                )),
            },
            "Fn::Equals" => match argument {
                Yaml::Sequence(parts) if parts.len() == 2 => Ok(Value::Bool(
                    self.resolve(&parts[0])? == self.resolve(&parts[1])?,
                )),
                _ => Err(TemplateError::Invalid("Fn::Equals takes two values".into())),
            },
            "Fn::Not" | "Fn::And" | "Fn::Or" => {
                let values = match self.resolve(argument)? {
                    Value::Array(values) => values,
                    _ => return Err(TemplateError::Invalid(format!("{function} takes a list"))),
                };
                let truths: Vec<bool> = values
                    .iter()
                    .map(|v| v.as_bool().unwrap_or(false))
                    .collect();
                Ok(Value::Bool(match function {
                    "Fn::Not" => !truths.first().copied().unwrap_or(false),
                    "Fn::And" => truths.iter().all(|t| *t),
                    _ => truths.iter().any(|t| *t),
                }))
            }
            "Fn::Join" => match argument {
                Yaml::Sequence(parts) if parts.len() == 2 => {
                    let separator = text(&parts[0])?;
                    let items = match self.resolve(&parts[1])? {
                        Value::Array(items) => items,
                        _ => return Err(TemplateError::Invalid("Fn::Join takes a list".into())),
                    };
                    let items: Vec<String> = items
                        .iter()
                        .map(|v| v.as_str().unwrap_or_default().to_owned())
                        .collect();
                    Ok(Value::String(items.join(&separator)))
                }
                _ => Err(TemplateError::Invalid(
                    "Fn::Join takes [separator, list]".into(),
                )),
            },
            other => Err(TemplateError::Invalid(format!(
                "{other} is not supported by the local stack"
            ))),
        }
    }
}

/// One resource of the template, unresolved.
#[derive(Debug, Clone)]
pub struct Resource {
    pub logical_id: String,
    pub kind: String,
    pub properties: Yaml,
    pub metadata: Yaml,
    /// The name of the condition that decides whether the resource exists.
    pub condition: Option<String>,
}

/// The template, parsed.
#[derive(Debug, Clone)]
pub struct Template {
    pub parameters: BTreeMap<String, Option<String>>,
    pub conditions: BTreeMap<String, Yaml>,
    pub resources: Vec<Resource>,
    pub global_function: Yaml,
}

impl Template {
    pub fn load(path: &std::path::Path) -> Result<Self, TemplateError> {
        Self::parse(&std::fs::read_to_string(path)?)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let root: Yaml = serde_yaml::from_str(text)?;
        let mut parameters = BTreeMap::new();
        if let Some(Yaml::Mapping(map)) = root.get("Parameters") {
            for (name, spec) in map {
                let default = spec.get("Default").map(|d| match d {
                    Yaml::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                });
                parameters.insert(name.as_str().unwrap_or_default().to_owned(), default);
            }
        }
        let mut resources = Vec::new();
        match root.get("Resources") {
            Some(Yaml::Mapping(map)) => {
                for (id, resource) in map {
                    resources.push(Resource {
                        logical_id: id.as_str().unwrap_or_default().to_owned(),
                        kind: resource
                            .get("Type")
                            .and_then(Yaml::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        properties: resource.get("Properties").cloned().unwrap_or(Yaml::Null),
                        metadata: resource.get("Metadata").cloned().unwrap_or(Yaml::Null),
                        condition: resource
                            .get("Condition")
                            .and_then(Yaml::as_str)
                            .map(str::to_owned),
                    });
                }
            }
            _ => {
                return Err(TemplateError::Invalid(
                    "the template has no Resources".into(),
                ))
            }
        }
        let mut conditions = BTreeMap::new();
        if let Some(Yaml::Mapping(map)) = root.get("Conditions") {
            for (name, expression) in map {
                conditions.insert(
                    name.as_str().unwrap_or_default().to_owned(),
                    expression.clone(),
                );
            }
        }
        let global_function = root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .cloned()
            .unwrap_or(Yaml::Null);
        Ok(Template {
            parameters,
            conditions,
            resources,
            global_function,
        })
    }

    /// Whether the resource exists with these parameters (its `Condition`, if any, holds).
    pub fn exists(&self, resource: &Resource, context: &Context) -> Result<bool, TemplateError> {
        let Some(name) = &resource.condition else {
            return Ok(true);
        };
        let expression = self
            .conditions
            .get(name)
            .ok_or_else(|| TemplateError::Invalid(format!("unknown condition {name}")))?;
        Ok(context.resolve(expression)?.as_bool().unwrap_or(false))
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.resources.iter().filter(move |r| r.kind == kind)
    }
}

/// The parameters of a function, resolved.
#[derive(Debug, Clone)]
pub struct Function {
    pub logical_id: String,
    pub binary: String,
    pub environment: BTreeMap<String, String>,
    pub events: Vec<EventSource>,
}

/// What triggers a function.
#[derive(Debug, Clone)]
pub enum EventSource {
    Http {
        method: String,
        path: String,
        /// False for routes with `Auth: {Authorizer: NONE}`: no token is checked.
        authorize: bool,
    },
    Sqs {
        queue_arn: String,
        batch_size: usize,
        report_failures: bool,
    },
    Stream {
        stream_arn: String,
        batch_size: usize,
        max_retries: i64,
        report_failures: bool,
        on_failure_arn: Option<String>,
    },
    /// A `Schedule` (EventBridge rule) or `ScheduleV2` (EventBridge Scheduler) event. Locally it
    /// runs on the stack's own short period, not on its expression; the expression is kept for
    /// the log.
    Schedule {
        /// The event's name in the template (`Sweep`), part of the rule's name.
        event: String,
        expression: String,
        /// False for `Enabled: false` or `State: DISABLED`: only on-demand runs then.
        enabled: bool,
        /// The event's `Input`: sent instead of the scheduled event, as EventBridge does.
        input: Option<Value>,
    },
}

/// A `Schedule` or `ScheduleV2` event's resolved properties, as an event source.
fn schedule_of(event: &str, kind: &str, properties: &Value) -> Result<EventSource, TemplateError> {
    let key = if kind == "ScheduleV2" {
        "ScheduleExpression"
    } else {
        "Schedule"
    };
    let expression = properties[key]
        .as_str()
        .ok_or_else(|| TemplateError::Invalid(format!("the {kind} event {event} has no {key}")))?;
    // A parameter resolves to a string: `Enabled: !Ref SweepEnabled` gives "false".
    let off = |value: &Value, word: &str| match value {
        Value::Bool(b) => !b && word == "false",
        Value::String(s) => s.eq_ignore_ascii_case(word),
        _ => false,
    };
    let enabled = !off(&properties["Enabled"], "false") && !off(&properties["State"], "DISABLED");
    let input = match &properties["Input"] {
        Value::Null => None,
        Value::String(text) => Some(serde_json::from_str(text).map_err(|e| {
            TemplateError::Invalid(format!("the {kind} event {event}'s Input is not JSON: {e}"))
        })?),
        other => Some(other.clone()),
    };
    Ok(EventSource::Schedule {
        event: event.to_owned(),
        expression: expression.to_owned(),
        enabled,
        input,
    })
}

fn environment_of(
    context: &Context,
    function_properties: &Yaml,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let mut out = BTreeMap::new();
    if let Some(variables) = function_properties
        .get("Environment")
        .and_then(|e| e.get("Variables"))
    {
        if let Value::Object(map) = context.resolve(variables)? {
            for (k, v) in map {
                out.insert(
                    k,
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string()),
                );
            }
        }
    }
    Ok(out)
}

impl Template {
    /// Every function with its binary, environment and event sources, resolved against the
    /// created resources.
    pub fn functions(&self, context: &Context) -> Result<Vec<Function>, TemplateError> {
        let globals = environment_of(context, &self.global_function)?;
        let mut functions = Vec::new();
        for resource in self.of_kind("AWS::Serverless::Function") {
            let binary = resource
                .metadata
                .get("BuildProperties")
                .and_then(|b| b.get("Binary"))
                .and_then(Yaml::as_str)
                .ok_or_else(|| {
                    TemplateError::Invalid(format!(
                        "{} has no Metadata.BuildProperties.Binary",
                        resource.logical_id
                    ))
                })?
                .to_owned();
            let mut environment = globals.clone();
            environment.extend(environment_of(context, &resource.properties)?);
            let mut events = Vec::new();
            if let Some(Yaml::Mapping(map)) = resource.properties.get("Events") {
                for (name, event) in map {
                    let name = name.as_str().unwrap_or_default();
                    let kind = event.get("Type").and_then(Yaml::as_str).unwrap_or_default();
                    let properties = match event.get("Properties") {
                        Some(p) => context.resolve(p)?,
                        None => json!({}),
                    };
                    let report = properties["FunctionResponseTypes"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|v| v == "ReportBatchItemFailures"));
                    let batch =
                        |default: u64| properties["BatchSize"].as_u64().unwrap_or(default) as usize;
                    match kind {
                        "HttpApi" => events.push(EventSource::Http {
                            method: properties["Method"]
                                .as_str()
                                .unwrap_or("ANY")
                                .to_uppercase(),
                            path: properties["Path"].as_str().unwrap_or("/").to_owned(),
                            authorize: properties["Auth"]["Authorizer"].as_str() != Some("NONE"),
                        }),
                        "SQS" => events.push(EventSource::Sqs {
                            queue_arn: properties["Queue"].as_str().unwrap_or_default().to_owned(),
                            batch_size: batch(10),
                            report_failures: report,
                        }),
                        "DynamoDB" => events.push(EventSource::Stream {
                            stream_arn: properties["Stream"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            batch_size: batch(100),
                            max_retries: properties["MaximumRetryAttempts"].as_i64().unwrap_or(-1),
                            report_failures: report,
                            on_failure_arn: properties["DestinationConfig"]["OnFailure"]
                                ["Destination"]
                                .as_str()
                                .map(str::to_owned),
                        }),
                        "Schedule" | "ScheduleV2" => {
                            events.push(schedule_of(name, kind, &properties)?)
                        }
                        other => {
                            tracing::warn!(function = %resource.logical_id, kind = other, "event source not emulated")
                        }
                    }
                }
            }
            functions.push(Function {
                logical_id: resource.logical_id.clone(),
                binary,
                environment,
                events,
            });
        }
        Ok(functions)
    }

    /// The JWT authorizer's issuer and audience, resolved.
    pub fn jwt_authorizer(
        &self,
        context: &Context,
    ) -> Result<(String, Vec<String>), TemplateError> {
        for api in self.of_kind("AWS::Serverless::HttpApi") {
            let auth = api.properties.get("Auth");
            let default = auth
                .and_then(|a| a.get("DefaultAuthorizer"))
                .and_then(Yaml::as_str);
            let config = default
                .and_then(|name| {
                    auth.and_then(|a| a.get("Authorizers"))
                        .and_then(|a| a.get(name))
                })
                .and_then(|a| a.get("JwtConfiguration"));
            if let Some(config) = config {
                let config = context.resolve(config)?;
                let issuer = config["issuer"].as_str().unwrap_or_default().to_owned();
                let audience = config["audience"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                return Ok((issuer, audience));
            }
        }
        Err(TemplateError::Invalid(
            "the template's HttpApi has no default JWT authorizer".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        let mut resources = HashMap::new();
        resources.insert(
            "Queue".to_owned(),
            Physical {
                reference: "http://q".into(),
                attributes: HashMap::from([("Arn".to_owned(), "arn:q".to_owned())]),
            },
        );
        Context {
            parameters: HashMap::from([("Stage".to_owned(), "dev".to_owned())]),
            conditions: BTreeMap::from([(
                "IsDev".to_owned(),
                serde_yaml::from_str("!Equals [!Ref Stage, dev]").unwrap(),
            )]),
            resources,
            region: "us-east-1".into(),
            account: "123456789012".into(),
            stack: "s".into(),
        }
    }

    #[test]
    fn if_picks_the_branch_of_its_condition() {
        let yaml: Yaml =
            serde_yaml::from_str("a: !If [IsDev, local, !Sub 'https://${AWS::Region}']").unwrap();
        assert_eq!(context().resolve(&yaml).unwrap()["a"], "local");
        let mut other = context();
        other.parameters.insert("Stage".into(), "prod".into());
        assert_eq!(other.resolve(&yaml).unwrap()["a"], "https://us-east-1");
    }

    #[test]
    fn resolves_short_and_long_forms() {
        let yaml: Yaml = serde_yaml::from_str(
            "a: !Ref Queue\nb: !GetAtt Queue.Arn\nc: {Ref: Stage}\nd: {'Fn::GetAtt': [Queue, Arn]}\ne: !Sub '${AWS::StackName}-${Stage}-${Queue.Arn}'\nf: [!Ref Stage]",
        )
        .unwrap();
        let resolved = context().resolve(&yaml).unwrap();
        assert_eq!(
            resolved,
            json!({"a": "http://q", "b": "arn:q", "c": "dev", "d": "arn:q", "e": "s-dev-arn:q", "f": ["dev"]})
        );
    }

    #[test]
    fn a_reference_to_an_uncreated_resource_is_pending() {
        let yaml: Yaml = serde_yaml::from_str("!Ref Later").unwrap();
        assert!(matches!(
            context().resolve(&yaml),
            Err(TemplateError::Pending(_))
        ));
    }

    fn functions_of(yaml: &str) -> Result<Vec<Function>, TemplateError> {
        let template = Template::parse(yaml).unwrap();
        let mut context = context();
        context
            .parameters
            .insert("SweepEnabled".into(), "false".into());
        template.functions(&context)
    }

    #[test]
    fn schedule_events_are_read_with_their_state_and_input() {
        let functions = functions_of(
            r#"
Resources:
  SweeperFunction:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: order-sweeper}}
    Properties:
      Events:
        Sweep:
          Type: Schedule
          Properties: {Schedule: rate(1 minute)}
        Paused:
          Type: Schedule
          Properties: {Schedule: rate(1 hour), Enabled: !Ref SweepEnabled}
        Off:
          Type: Schedule
          Properties: {Schedule: rate(1 hour), Enabled: false}
        Nightly:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: cron(0 3 * * ? *)
            Input: '{"full": true}'
        Stopped:
          Type: ScheduleV2
          Properties: {ScheduleExpression: rate(5 minutes), State: DISABLED}
"#,
        )
        .unwrap();
        let schedules: Vec<_> = functions[0]
            .events
            .iter()
            .map(|e| match e {
                EventSource::Schedule {
                    event,
                    expression,
                    enabled,
                    input,
                } => (event.as_str(), expression.as_str(), *enabled, input.clone()),
                other => panic!("not a schedule: {other:?}"),
            })
            .collect();
        assert_eq!(
            schedules,
            [
                ("Sweep", "rate(1 minute)", true, None),
                ("Paused", "rate(1 hour)", false, None),
                ("Off", "rate(1 hour)", false, None),
                (
                    "Nightly",
                    "cron(0 3 * * ? *)",
                    true,
                    Some(json!({"full": true}))
                ),
                ("Stopped", "rate(5 minutes)", false, None),
            ]
        );
    }

    #[test]
    fn a_schedule_without_an_expression_or_with_a_bad_input_is_refused() {
        let no_expression = "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata: {BuildProperties: {Binary: f}}\n    Properties:\n      Events:\n        S: {Type: ScheduleV2, Properties: {Schedule: rate(1 minute)}}\n";
        assert!(matches!(
            functions_of(no_expression),
            Err(TemplateError::Invalid(m)) if m.contains("ScheduleExpression")
        ));
        let bad_input = "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata: {BuildProperties: {Binary: f}}\n    Properties:\n      Events:\n        S: {Type: Schedule, Properties: {Schedule: rate(1 minute), Input: '{nope'}}\n";
        assert!(matches!(
            functions_of(bad_input),
            Err(TemplateError::Invalid(m)) if m.contains("Input")
        ));
    }

    #[test]
    fn the_projects_sweeper_runs_on_a_schedule() {
        let template = Template::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
        )
        .unwrap();
        let sweeper = template
            .resources
            .iter()
            .find(|r| r.logical_id == "OrderSweeperFunction")
            .expect("the template has the order sweeper");
        let kind = sweeper.properties["Events"]["Sweep"]["Type"].as_str();
        assert_eq!(kind, Some("Schedule"));
        assert!(template
            .of_kind("AWS::SecretsManager::Secret")
            .any(|r| r.logical_id == "PspWebhookSecret"));
    }

    #[test]
    fn reads_the_projects_template() {
        let template = Template::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
        )
        .unwrap();
        assert!(template.parameters.contains_key("JwtIssuer"));
        assert!(template.of_kind("AWS::Serverless::Function").count() >= 5);
    }
}
