//! # oms-local: the whole system on one machine, with no AWS account and no Docker
//!
//! `oms-local up` reads `infra/template.yaml` and brings up what it declares:
//! 1. the moto emulator (DynamoDB, SQS, SNS over their real wire protocols; see
//!    `infra/local/moto_server.py` for how it is made to keep DynamoDB's promises and kept fast), or
//!    any endpoint given with `--emulator-url`;
//! 2. the template's tables, queues (with their redrive policies), topics and subscriptions
//!    (with their filter policies and raw delivery) — see [`provision`];
//! 3. every function, through `cargo lambda watch` (the Lambda runtime API), with the
//!    environment the template gives it — see [`lambda`];
//! 4. the HTTP API on `127.0.0.1:3000` with the template's routes and its JWT authorizer — see
//!    [`gateway`] and [`jwt`] — and, on the same port, a development OpenID Connect issuer the
//!    staff console signs in with (the template's `ConsoleIssuerUrl`) — see [`oidc`];
//! 5. the queue and stream event sources, with batches, partial batch failures, visibility
//!    timeouts and redrive — see [`pollers`] — and the schedules, on a short local period and on
//!    demand — see [`schedules`];
//! 6. a demo catalog, stocked through the API itself, so an order can be placed at once.
//!
//! Against a running stack: `oms-local token` prints a token the local authorizer accepts,
//! `oms-local schedule <FunctionLogicalId>` runs a scheduled function now, and `oms-local psp
//! <type> <orderId>` sends the signed webhook the payment service provider would — see [`psp`].

mod gateway;
mod jwt;
mod lambda;
mod oidc;
mod pollers;
mod provision;
mod psp;
mod schedules;
mod template;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::template::{Context, EventSource, Function, Template};

/// The issuer and audience of local tokens.
const LOCAL_ISSUER: &str = "oms-local";
const LOCAL_AUDIENCE: &str = "oms";
/// The staff console's client id at the development issuer when the template has no
/// `ConsoleClientId` (the template's own default).
const DEFAULT_CONSOLE_CLIENT_ID: &str = "oms-console";
const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
/// The template's topic of customer notifications, which the stack shows as log lines.
const NOTIFICATIONS_TOPIC: &str = "CustomerNotificationsTopic";

#[derive(Parser)]
#[command(name = "oms-local", about = "Run the order management system locally")]
struct Cli {
    /// The secret local tokens are signed with.
    #[arg(
        long,
        env = "OMS_LOCAL_JWT_SECRET",
        default_value = "local-dev-secret",
        global = true
    )]
    jwt_secret: String,
    /// The secret carrier webhooks are signed with (the local value of the template's
    /// CarrierWebhookSecret).
    #[arg(
        long,
        env = "OMS_LOCAL_CARRIER_SECRET",
        default_value = "local-carrier-secret",
        global = true
    )]
    carrier_secret: String,
    /// The value of the template's generated secrets (GenerateSecretString) locally: the PSP
    /// webhook's signing secret. At least 16 characters, as the webhook requires.
    #[arg(
        long,
        env = "OMS_LOCAL_PSP_SECRET",
        default_value = "local-psp-secret-0123456789",
        global = true
    )]
    psp_secret: String,
    /// The local value of the template's StripeWebhookSecret: what Stripe's events to the
    /// local stack are signed with.
    #[arg(
        long,
        env = "OMS_LOCAL_STRIPE_SECRET",
        default_value = "whsec_local_stripe_0123456789",
        global = true
    )]
    stripe_secret: String,
    /// The local value of the template's ConsoleSessionSecret: the key the staff console
    /// encrypts its session cookie with. At least 64 bytes.
    #[arg(
        long,
        env = "OMS_LOCAL_CONSOLE_SECRET",
        default_value = "local-console-session-secret-0123456789abcdef0123456789abcdef0123",
        global = true
    )]
    console_secret: String,
    /// The local value of the template's ShopSecret: the key the customers' order links are
    /// signed with, and their visit cookie encrypted with (one key per line, at least 32 bytes).
    #[arg(
        long,
        env = "OMS_LOCAL_SHOP_SECRET",
        default_value = "local-shop-link-key-0123456789abcdef0123456789abcdef",
        global = true
    )]
    shop_secret: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the local stack and serve until interrupted.
    Up(Box<UpArgs>),
    /// Print a bearer token the local HTTP API accepts.
    Token {
        /// The customer (or staff member) the token names.
        #[arg(long, default_value = "customer-ada")]
        sub: String,
        /// Space-separated scopes, e.g. "oms:admin".
        #[arg(long, default_value = "")]
        scope: String,
        /// Seconds until the token expires.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Run a scheduled function (one with a Schedule or ScheduleV2 event) on the running stack
    /// now, and print its result.
    Schedule {
        /// The function's logical id in the template, e.g. OrderSweeperFunction.
        function: String,
        /// Which of its schedule events, if it has several (default: the first).
        #[arg(long)]
        event: Option<String>,
        #[command(flatten)]
        api: ApiTarget,
    },
    /// Send the running stack a signed webhook as the payment service provider would, about an
    /// order, and print the answer.
    Psp(Box<PspArgs>),
    /// Print the signed link that opens an order's page for its customer, as the messages about
    /// it carry.
    Link {
        /// The order.
        order_id: String,
        /// Seconds until the link expires.
        #[arg(long, default_value_t = 30 * 24 * 3600)]
        ttl: i64,
        #[command(flatten)]
        api: ApiTarget,
    },
}

/// Where the running stack's HTTP API is, for the commands that talk to it.
#[derive(clap::Args)]
struct ApiTarget {
    /// The HTTP API's URL [default: http://127.0.0.1:<port>]
    #[arg(long, env = "OMS_API_URL")]
    api_url: Option<String>,
    /// The HTTP API's port on this machine, as given to `up`.
    #[arg(long, env = "OMS_LOCAL_PORT", default_value_t = 3000)]
    port: u16,
}

impl ApiTarget {
    fn url(&self) -> String {
        match &self.api_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => local_url(self.port),
        }
    }
}

#[derive(Parser)]
struct PspArgs {
    #[command(flatten)]
    event: psp::EventSpec,
    /// Sign with this secret instead of the local one (--psp-secret); given several times, the
    /// header carries one v1 signature for each, as during a rotation.
    #[arg(long = "secret", value_name = "S")]
    secrets: Vec<String>,
    /// Sign with a timestamp ten minutes old, which the webhook must refuse.
    #[arg(long)]
    stale: bool,
    #[command(flatten)]
    api: ApiTarget,
}

#[derive(Parser)]
struct UpArgs {
    /// Port of the HTTP API.
    #[arg(long, env = "OMS_LOCAL_PORT", default_value_t = 3000)]
    port: u16,
    /// Port of the emulator this command starts.
    #[arg(long, env = "OMS_LOCAL_EMULATOR_PORT", default_value_t = 4566)]
    emulator_port: u16,
    /// Port of the Stripe emulator this command starts (localstripe); the emulator's port plus
    /// one unless given.
    #[arg(long, env = "OMS_LOCAL_STRIPE_PORT")]
    stripe_port: Option<u16>,
    /// Use this DynamoDB/SQS/SNS endpoint instead of starting moto.
    #[arg(long, env = "OMS_LOCAL_EMULATOR_URL")]
    emulator_url: Option<String>,
    /// Port of the Lambda runtime API (cargo lambda watch).
    #[arg(long, env = "OMS_LOCAL_LAMBDA_PORT", default_value_t = 9000)]
    lambda_port: u16,
    /// The repository root (the Cargo workspace with the functions).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))]
    workspace: PathBuf,
    /// The Python interpreter with moto installed (it runs `infra/local/moto_server.py`).
    #[arg(long, env = "OMS_LOCAL_PYTHON")]
    python: Option<PathBuf>,
    /// The cargo-lambda executable.
    #[arg(long, env = "OMS_LOCAL_CARGO_LAMBDA")]
    cargo_lambda: Option<PathBuf>,
    /// The stack name resource names start with.
    #[arg(long, default_value = "oms-local")]
    stack: String,
    /// Template parameters, `Name=Value`; JwtIssuer and JwtAudience default to the local ones.
    #[arg(long = "parameter")]
    parameters: Vec<String>,
    /// Shorten every queue's visibility timeout to this many seconds, so retries and redrive to
    /// the dead-letter queue happen in seconds rather than minutes.
    #[arg(long, env = "OMS_LOCAL_QUEUE_VISIBILITY_SECONDS")]
    queue_visibility_seconds: Option<u32>,
    /// Concurrent pollers per queue (Lambda scales out the same way).
    #[arg(long, default_value_t = 4)]
    pollers_per_queue: usize,
    /// Concurrent instances per function.
    #[arg(long, default_value_t = 4)]
    function_concurrency: usize,
    /// Run every scheduled function (Schedule and ScheduleV2 events) every this many seconds,
    /// whatever its rate in the template; 0: only on demand (`oms-local schedule`).
    #[arg(long, env = "OMS_LOCAL_SCHEDULE_SECONDS", default_value_t = 5.0)]
    schedule_seconds: f64,
    /// The functions' SECRET_CACHE_SECONDS: how long a secret read from Secrets Manager is used
    /// before it is read again.
    #[arg(long, env = "OMS_LOCAL_SECRET_CACHE_SECONDS", default_value_t = 300)]
    secret_cache_seconds: u64,
    /// The functions' LOCATIONS_CACHE_SECONDS: how long the list of locations staff keep is
    /// used before it is read again.
    #[arg(long, env = "OMS_LOCAL_LOCATIONS_CACHE_SECONDS", default_value_t = 60)]
    locations_cache_seconds: u64,
    /// Do not stock the demo catalog.
    #[arg(long)]
    no_seed: bool,
    /// Place a demo order too (customer-ada's, `events/demo-order.json`), paid for as the PSP
    /// would, and print its page's signed link: what `infra/local/run.sh` starts with.
    #[arg(long)]
    demo_order: bool,
    /// The Cargo profile the functions run with (`release` for the benchmark).
    #[arg(long, default_value = "dev")]
    profile: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let Cli {
        jwt_secret,
        carrier_secret,
        psp_secret,
        stripe_secret,
        console_secret,
        shop_secret,
        command,
    } = Cli::parse();
    let secrets = Secrets {
        jwt: jwt_secret,
        carrier: carrier_secret,
        psp: psp_secret,
        stripe: stripe_secret,
        console: console_secret,
        shop: shop_secret,
    };
    match command {
        Command::Link { order_id, ttl, api } => {
            let links = oms_adapters::web::OrderLinks::from_secret(secrets.shop.as_bytes())?;
            let expires = chrono::Utc::now().timestamp() + ttl;
            println!(
                "{}/shop/orders/{order_id}?t={}",
                api.url(),
                links.token(&order_id, expires)
            );
            Ok(())
        }
        Command::Token { sub, scope, ttl } => {
            println!(
                "{}",
                jwt::sign(
                    &secrets.jwt,
                    LOCAL_ISSUER,
                    LOCAL_AUDIENCE,
                    &sub,
                    Some(&scope),
                    ttl
                )
            );
            Ok(())
        }
        Command::Up(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("OMS_LOCAL_LOG")
                        .unwrap_or_else(|_| "info,aws=warn".into()),
                )
                .with_target(false)
                .init();
            up(*args, &secrets).await
        }
        Command::Schedule {
            function,
            event,
            api,
        } => exit_on_error(run_schedule(&function, event.as_deref(), &api).await),
        Command::Psp(args) => exit_on_error(send_psp_event(&args, &secrets).await),
    }
}

/// A client command's failure as one plain line and exit status 1 (`main`'s own report would
/// print the error's debug form, quotes and escapes included).
fn exit_on_error(result: Result<(), BoxError>) -> Result<(), BoxError> {
    if let Err(error) = result {
        eprintln!("oms-local: {error}");
        std::process::exit(1);
    }
    Ok(())
}

/// The shared secrets of the local stack: the token issuer's, the carrier's, the PSP's,
/// Stripe's webhook's and the staff console's session key.
struct Secrets {
    jwt: String,
    carrier: String,
    psp: String,
    stripe: String,
    console: String,
    shop: String,
}

/// The local value of the template's `StripeApiKey`: a test-mode secret key, which is all the
/// Stripe emulator asks for.
const LOCAL_STRIPE_API_KEY: &str = "sk_test_local_stripe_key";

/// The shortest console session key the local stack starts with: a shorter one is refused at
/// `up` rather than found out at the console's first sign-in (the default has 65 bytes).
const MIN_CONSOLE_SECRET_BYTES: usize = 64;

/// `oms-local schedule`: `POST /_local/schedules/{function}` on the running stack.
async fn run_schedule(
    function: &str,
    event: Option<&str>,
    api: &ApiTarget,
) -> Result<(), BoxError> {
    let mut url = format!("{}/_local/schedules/{function}", api.url());
    if let Some(event) = event {
        url.push_str(&format!("?event={event}"));
    }
    let response = reqwest::Client::new()
        .post(&url)
        .send()
        .await
        .map_err(|e| format!("cannot reach the local stack at {url} ({e}); is it running?"))?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        return Err(format!("{function}: {status} {text}").into());
    }
    println!("{}", pretty(&text));
    Ok(())
}

/// `oms-local psp`: the PSP's signed webhook about an order.
async fn send_psp_event(args: &PspArgs, secrets: &Secrets) -> Result<(), BoxError> {
    let spec = &args.event;
    let signing_secrets = if args.secrets.is_empty() {
        vec![secrets.psp.clone()]
    } else {
        args.secrets.clone()
    };
    let admin_token = jwt::sign(
        &secrets.jwt,
        LOCAL_ISSUER,
        LOCAL_AUDIENCE,
        "oms-local-psp",
        Some("oms:admin"),
        300,
    );
    let api = args.api.url();
    let answer = psp::send(
        spec,
        &psp::Delivery {
            http: &reqwest::Client::new(),
            api: &api,
            admin_token: &admin_token,
            secrets: &signing_secrets,
            stale: args.stale,
        },
    )
    .await?;
    eprintln!(
        "sent {} {} for order {}: {} {}",
        answer.event["type"].as_str().unwrap_or_default(),
        answer.event["id"].as_str().unwrap_or_default(),
        spec.order_id,
        answer.event["amount"]["amount"],
        answer.event["amount"]["currency"]
            .as_str()
            .unwrap_or_default(),
    );
    println!("{}", answer.status);
    println!("{}", pretty(&answer.body));
    if answer.status.is_success() {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

/// JSON indented for a person; anything else as it came.
fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_owned())
}

fn tool(explicit: Option<PathBuf>, workspace: &Path, name: &str) -> PathBuf {
    explicit.unwrap_or_else(|| {
        let bundled = workspace.join(".tools/venv/bin").join(name);
        if bundled.exists() {
            bundled
        } else {
            PathBuf::from(name)
        }
    })
}

async fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> Result<(), BoxError> {
    let start = Instant::now();
    while !check().await {
        if start.elapsed() > timeout {
            return Err(format!("{what} was not ready after {timeout:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn up(args: UpArgs, secrets: &Secrets) -> Result<(), BoxError> {
    if secrets.psp.len() < 16 {
        return Err("OMS_LOCAL_PSP_SECRET (--psp-secret) must have at least 16 characters: the webhook refuses a shorter secret".into());
    }
    if secrets.console.len() < MIN_CONSOLE_SECRET_BYTES {
        return Err(format!("OMS_LOCAL_CONSOLE_SECRET (--console-secret) must have at least {MIN_CONSOLE_SECRET_BYTES} bytes: the staff console's session key").into());
    }
    let jwt_secret = secrets.jwt.as_str();
    let workspace = args.workspace.canonicalize()?;
    let http = reqwest::Client::new();
    let mut children = Vec::new();

    // 1. The emulators: AWS's, and Stripe's, whose signed events go to the stack's webhook.
    let mut emulator = start_emulator(&args, &workspace, &http).await?;
    children.extend(emulator.process.take());
    children.push(start_stripe(&args, &workspace, &http, secrets).await?);

    // 2. The template's resources.
    let template = Template::load(&workspace.join("infra/template.yaml"))?;
    let context = create_resources(&template, &args, secrets, &emulator.clients).await?;

    // 3. The functions.
    let functions = template.functions(&context)?;
    let (watch, invoker) = start_functions(&args, &workspace, &functions, &emulator.endpoint)?;
    children.push(watch);

    // 4. The HTTP API, answering 503 on its health check until everything is up.
    let gateway =
        start_http_api(&args, &template, &context, &functions, jwt_secret, &invoker).await?;
    warm_up(&functions, &invoker, &gateway.scheduler).await?;

    // 5. The queue and stream event sources, and the schedules.
    start_event_sources(&args, &functions, &context, &emulator, &invoker)?;
    if args.schedule_seconds > 0.0 {
        let period = Duration::try_from_secs_f64(args.schedule_seconds)
            .map_err(|e| format!("OMS_LOCAL_SCHEDULE_SECONDS: {e}"))?;
        gateway.scheduler.start(period);
    }
    start_notification_log(&args.stack, &context, &emulator.clients).await?;

    // 6. The demo catalog, through the API like any administrator.
    let base = local_url(args.port);
    gateway.ready.store(true, Ordering::SeqCst);
    if !args.no_seed {
        seed(
            &http,
            &base,
            jwt_secret,
            &workspace.join("infra/local/demo-catalog.json"),
        )
        .await?;
    }

    let demo = if args.demo_order && !args.no_seed {
        Some(place_demo_order(&http, &base, secrets, &workspace).await?)
    } else {
        None
    };
    let console = gateway
        .routes
        .iter()
        .any(|r| r.path == "/console" || r.path.starts_with("/console/"));
    print_welcome(
        &args,
        &workspace,
        jwt_secret,
        &base,
        &emulator.endpoint,
        console,
    );
    if let Some(order) = demo {
        let links = oms_adapters::web::OrderLinks::from_secret(secrets.shop.as_bytes())?;
        let expires = chrono::Utc::now().timestamp() + 7 * 24 * 3600;
        println!(
            "\nThe demo order {order}, paid for, is in the warehouse; its customer's page (as the \
             link in their e-mails opens it):\n\n  {base}/shop/orders/{order}?t={}\n",
            links.token(&order, expires)
        );
    }
    serve_until_interrupted(children).await
}

/// `http://127.0.0.1:{port}`: the services this command starts listen on the loopback address only.
fn local_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The emulator the stack runs against, and the clients the stack itself uses with it.
struct Emulator {
    /// Where DynamoDB, SQS and SNS answer (the functions' `AWS_ENDPOINT_URL`).
    endpoint: String,
    /// The moto process, unless `--emulator-url` named an emulator that is already running.
    process: Option<tokio::process::Child>,
    clients: provision::Clients,
    streams: aws_sdk_dynamodbstreams::Client,
}

/// Step 1: starts moto (unless `--emulator-url` gives an endpoint), waits until it answers, and
/// makes the clients provisioning and the event sources use.
async fn start_emulator(
    args: &UpArgs,
    workspace: &Path,
    http: &reqwest::Client,
) -> Result<Emulator, BoxError> {
    let (endpoint, process) = match &args.emulator_url {
        Some(url) => (url.trim_end_matches('/').to_owned(), None),
        None => (
            local_url(args.emulator_port),
            Some(spawn_moto(args, workspace)?),
        ),
    };
    wait_until("the emulator", Duration::from_secs(30), async || {
        http.get(format!("{endpoint}/moto-api/"))
            .send()
            .await
            .is_ok()
    })
    .await
    .map_err(|e| match &process {
        // Its own words say why (a moto other than the pinned one, say).
        Some(_) => format!("{e}; its log: {}", moto_log(args, workspace).display()).into(),
        None => e,
    })?;
    tracing::info!(%endpoint, "emulator ready");

    let credentials =
        aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "oms-local");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(credentials)
        .load()
        .await;
    Ok(Emulator {
        clients: provision::Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            sns: aws_sdk_sns::Client::new(&sdk),
            secretsmanager: aws_sdk_secretsmanager::Client::new(&sdk),
        },
        streams: aws_sdk_dynamodbstreams::Client::new(&sdk),
        endpoint,
        process,
    })
}

/// Where the Stripe emulator answers.
fn stripe_url(args: &UpArgs) -> String {
    local_url(args.stripe_port.unwrap_or(args.emulator_port + 1))
}

/// Starts `infra/local/localstripe_server.py` (localstripe, patched to keep Stripe's promises)
/// and registers the stack's Stripe webhook with it, signed with the local `StripeWebhookSecret`.
async fn start_stripe(
    args: &UpArgs,
    workspace: &Path,
    http: &reqwest::Client,
    secrets: &Secrets,
) -> Result<tokio::process::Child, BoxError> {
    let port = args.stripe_port.unwrap_or(args.emulator_port + 1);
    let log = workspace
        .join("target")
        .join(format!("localstripe-{port}.log"));
    let mut child = spawn_launcher(
        args,
        workspace,
        "localstripe_server.py",
        &["--port", &port.to_string()],
        &[],
        &log,
    )?;
    let base = stripe_url(args);
    let webhook = format!("{}/payments/stripe/events", local_url(args.port));
    // Registered only while this emulator is alive: one that failed to start (its port taken,
    // say by another stack's) must not have that other emulator's webhook moved here.
    let mut ended = None;
    wait_until("the Stripe emulator", Duration::from_secs(30), async || {
        if let Ok(Some(status)) = child.try_wait() {
            ended = Some(status);
            return true;
        }
        http.post(format!("{base}/_config/webhooks/oms"))
            .form(&[
                ("url", webhook.as_str()),
                ("secret", secrets.stripe.as_str()),
            ])
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await
    .map_err(|e| format!("{e}; its log: {}", log.display()))?;
    if let Some(status) = ended {
        return Err(format!(
            "the Stripe emulator ended ({status}) before it answered; its log: {}",
            log.display()
        )
        .into());
    }
    tracing::info!(endpoint = %base, "Stripe emulator ready, its webhook registered");
    Ok(child)
}

/// Where the emulator's own messages go: its start-up errors, such as a moto version the
/// launcher refuses.
fn moto_log(args: &UpArgs, workspace: &Path) -> PathBuf {
    workspace
        .join("target")
        .join(format!("moto-{}.log", args.emulator_port))
}

/// Runs `infra/local/moto_server.py` on `--emulator-port`, in a process group of its own.
fn spawn_moto(args: &UpArgs, workspace: &Path) -> Result<tokio::process::Child, BoxError> {
    // Where moto's request recorder (used by the benchmark to count calls) writes.
    let recording = workspace
        .join("target")
        .join(format!("moto-recording-{}", args.emulator_port));
    spawn_launcher(
        args,
        workspace,
        "moto_server.py",
        &["-H", "127.0.0.1", "-p", &args.emulator_port.to_string()],
        &[("MOTO_RECORDER_FILEPATH", recording.as_os_str())],
        &moto_log(args, workspace),
    )
}

/// Starts one of the emulators' Python launchers (`infra/local/<script>`) with the tools' Python,
/// in a process group of its own (stopped with the stack), its messages to `log`.
fn spawn_launcher(
    args: &UpArgs,
    workspace: &Path,
    script: &str,
    arguments: &[&str],
    environment: &[(&str, &std::ffi::OsStr)],
    log: &Path,
) -> Result<tokio::process::Child, BoxError> {
    let python = tool(args.python.clone(), workspace, "python3");
    // Logs and recordings go under the checkout's target/, which a CARGO_TARGET_DIR elsewhere
    // leaves uncreated.
    std::fs::create_dir_all(workspace.join("target"))?;
    let child = tokio::process::Command::new(&python)
        .arg(workspace.join("infra/local").join(script))
        .args(arguments)
        .envs(environment.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {} ({e}); run infra/local/bootstrap.sh first",
                python.display()
            )
        })?;
    Ok(child)
}

/// Step 2: creates the template's tables, queues, topics and subscriptions, and returns what
/// references to them resolve to.
async fn create_resources(
    template: &Template,
    args: &UpArgs,
    secrets: &Secrets,
    clients: &provision::Clients,
) -> Result<Context, BoxError> {
    let environment: Vec<(String, String)> = std::env::vars().collect();
    let mut context = Context {
        parameters: template_parameters(
            template,
            args.port,
            &stripe_url(args),
            &args.parameters,
            &environment,
        )?,
        resources: HashMap::new(),
        region: REGION.into(),
        account: ACCOUNT.into(),
        stack: args.stack.clone(),
        conditions: template.conditions.clone(),
    };
    provision::provision(
        template,
        &mut context,
        clients,
        &provision::Options {
            visibility_override: args.queue_visibility_seconds,
            generated_secrets: &HashMap::from([
                ("PspWebhookSecret".to_owned(), secrets.psp.clone()),
                ("StripeWebhookSecret".to_owned(), secrets.stripe.clone()),
                ("StripeApiKey".to_owned(), LOCAL_STRIPE_API_KEY.to_owned()),
                ("CarrierWebhookSecret".to_owned(), secrets.carrier.clone()),
                ("ConsoleSessionSecret".to_owned(), secrets.console.clone()),
                ("ShopSecret".to_owned(), secrets.shop.clone()),
            ]),
        },
    )
    .await?;
    Ok(context)
}

/// The publishable key the local customers' pages take payments with (the emulator checks only
/// its `pk_` prefix).
const LOCAL_PUBLISHABLE_KEY: &str = "pk_test_local";

/// The environment variables that set a template parameter locally:
/// `OMS_LOCAL_PARAMETER_<Name>=<value>`, e.g. `OMS_LOCAL_PARAMETER_PaymentWindowSeconds=20`.
const PARAMETER_VARIABLE_PREFIX: &str = "OMS_LOCAL_PARAMETER_";

/// The template's parameters: the local defaults, then every `OMS_LOCAL_PARAMETER_<Name>`
/// variable of `environment`, then every `--parameter Name=Value` (the command line wins over the
/// environment), then the template's own defaults for the rest. A parameter with none of these
/// is an error; a variable or `--parameter` that names no parameter of the template is one too,
/// since a misspelt override would otherwise be silently ignored.
fn template_parameters(
    template: &Template,
    port: u16,
    stripe: &str,
    flags: &[String],
    environment: &[(String, String)],
) -> Result<HashMap<String, String>, BoxError> {
    let mut parameters: HashMap<String, String> = HashMap::from([
        ("JwtIssuer".into(), LOCAL_ISSUER.into()),
        ("JwtAudience".into(), LOCAL_AUDIENCE.into()),
        // Links in notifications (return labels) point at the local gateway.
        ("PublicApiUrl".into(), local_url(port)),
        // The staff console signs in with the gateway's development issuer (see `oidc`).
        (
            "ConsoleIssuerUrl".into(),
            format!("{}/oidc", local_url(port)),
        ),
        // Stripe's API is the local emulator's, whose cards all allow multicapture.
        ("StripeApiUrl".into(), stripe.to_owned()),
        ("StripeMulticapture".into(), "if_available".into()),
        // The customers' payment page loads the emulator's Stripe.js, which takes any
        // publishable key.
        ("StripeJsUrl".into(), format!("{stripe}/js.stripe.com/v3/")),
        ("StripePublishableKey".into(), LOCAL_PUBLISHABLE_KEY.into()),
    ]);
    let known = |name: &str, source: &str| -> Result<(), BoxError> {
        if template.parameters.contains_key(name) {
            Ok(())
        } else {
            Err(format!("{source}: the template has no parameter {name}").into())
        }
    };
    for (key, value) in environment {
        if let Some(name) = key.strip_prefix(PARAMETER_VARIABLE_PREFIX) {
            known(name, key)?;
            // The name only: a parameter's value may be one nobody should read in a log.
            tracing::info!(parameter = name, "template parameter set by {key}");
            parameters.insert(name.to_owned(), value.clone());
        }
    }
    for pair in flags {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("--parameter {pair}: expected Name=Value"))?;
        known(k, &format!("--parameter {pair}"))?;
        parameters.insert(k.to_owned(), v.to_owned());
    }
    for (name, default) in &template.parameters {
        if !parameters.contains_key(name) {
            let value = default.clone().ok_or_else(|| {
                format!("template parameter {name} needs a value (--parameter {name}=...)")
            })?;
            parameters.insert(name.clone(), value);
        }
    }
    Ok(parameters)
}

/// The URL of the created queue whose ARN is `arn`.
fn queue_url_of(context: &Context, arn: &str) -> Option<String> {
    context
        .resources
        .values()
        .find(|p| p.attributes.get("Arn").map(String::as_str) == Some(arn))
        .map(|p| p.reference.clone())
}

/// Step 3: starts `cargo lambda watch` with every function's environment, and returns it with
/// the invoker that calls the functions through it.
fn start_functions(
    args: &UpArgs,
    workspace: &Path,
    functions: &[Function],
    endpoint: &str,
) -> Result<(tokio::process::Child, lambda::Invoker), BoxError> {
    let environment = function_environment(
        functions,
        endpoint,
        args.secret_cache_seconds,
        args.locations_cache_seconds,
    )?;
    let cargo_lambda = tool(args.cargo_lambda.clone(), workspace, "cargo-lambda");
    let env_file = std::env::temp_dir().join(format!("oms-local-{}.env", args.lambda_port));
    let watch = lambda::start_watch(
        &lambda::Watch {
            cargo_lambda: cargo_lambda.to_str().ok_or("a non-UTF-8 path")?,
            workspace,
            address: "127.0.0.1",
            port: args.lambda_port,
            concurrency: args.function_concurrency,
            profile: &args.profile,
            env_file: &env_file,
        },
        &environment,
    )
    .map_err(|e| {
        format!(
            "cannot start {} ({e}); run infra/local/bootstrap.sh first",
            cargo_lambda.display()
        )
    })?;
    let invoker = lambda::Invoker::new(local_url(args.lambda_port), args.function_concurrency)
        .with_crashes(lambda::Crashes::from_env()?);
    Ok((watch, invoker))
}

/// The one environment every function runs with: `cargo lambda watch` shares one environment
/// between all functions, so a variable two functions set differently is an error. The SDK is
/// pointed at the emulator, and secrets read from Secrets Manager are kept
/// `secret_cache_seconds` (`SECRET_CACHE_SECONDS`, which the template leaves to its default),
/// and the list of locations `locations_cache_seconds` (`LOCATIONS_CACHE_SECONDS`, likewise).
fn function_environment(
    functions: &[Function],
    endpoint: &str,
    secret_cache_seconds: u64,
    locations_cache_seconds: u64,
) -> Result<Vec<(String, String)>, BoxError> {
    let mut environment: BTreeMap<String, String> = BTreeMap::new();
    for function in functions {
        for (key, value) in &function.environment {
            if let Some(existing) = environment.insert(key.clone(), value.clone()) {
                if &existing != value {
                    return Err(format!("{key} differs between functions; cargo lambda watch shares one environment").into());
                }
            }
        }
    }
    for (key, value) in [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("RUST_LOG", "info"),
    ] {
        environment.insert(key.into(), value.into());
    }
    environment.insert(
        "SECRET_CACHE_SECONDS".into(),
        secret_cache_seconds.to_string(),
    );
    environment.insert(
        "LOCATIONS_CACHE_SECONDS".into(),
        locations_cache_seconds.to_string(),
    );
    Ok(environment.into_iter().collect())
}

/// Step 4: serves the HTTP API on `--port` with the template's routes and JWT authorizer. Its
/// health check answers 503 until the returned gateway is marked ready.
async fn start_http_api(
    args: &UpArgs,
    template: &Template,
    context: &Context,
    functions: &[Function],
    jwt_secret: &str,
    invoker: &lambda::Invoker,
) -> Result<Arc<gateway::Gateway>, BoxError> {
    let (issuer, audiences) = template.jwt_authorizer(context)?;
    // Its access tokens are ones the authorizer accepts: its issuer, its first audience.
    let oidc = oidc::Issuer::new(oidc::Config {
        base: local_url(args.port),
        client_id: context
            .parameters
            .get("ConsoleClientId")
            .cloned()
            .unwrap_or_else(|| DEFAULT_CONSOLE_CLIENT_ID.to_owned()),
        jwt_secret: jwt_secret.to_owned(),
        access_issuer: issuer.clone(),
        access_audience: audiences
            .first()
            .cloned()
            .unwrap_or_else(|| LOCAL_AUDIENCE.to_owned()),
    })?;
    let gateway = Arc::new(gateway::Gateway {
        routes: routes_of(functions),
        verifier: jwt::Verifier::new(jwt_secret, &issuer, &audiences),
        oidc,
        invoker: invoker.clone(),
        scheduler: Arc::new(schedules::Scheduler::new(
            functions,
            &args.stack,
            REGION,
            ACCOUNT,
            invoker.clone(),
        )),
        ready: false.into(),
        losses: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let app = axum::Router::new()
        .fallback(gateway::serve)
        .with_state(gateway.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the HTTP API stopped");
        }
    });
    Ok(gateway)
}

/// Every function's HTTP API events, as gateway routes.
fn routes_of(functions: &[Function]) -> Vec<gateway::Route> {
    let mut routes = Vec::new();
    for function in functions {
        for event in &function.events {
            if let EventSource::Http {
                method,
                path,
                authorize,
            } = event
            {
                routes.push(gateway::Route {
                    method: method.clone(),
                    path: path.clone(),
                    binary: function.binary.clone(),
                    authorize: *authorize,
                });
            }
        }
    }
    routes
}

/// Every function answers once before traffic flows (the first call may compile it).
async fn warm_up(
    functions: &[Function],
    invoker: &lambda::Invoker,
    scheduler: &schedules::Scheduler,
) -> Result<(), BoxError> {
    let started = Instant::now();
    tracing::info!("starting the functions (the first start builds them)");
    let warmups = functions.iter().map(|function| {
        let invoker = invoker.clone();
        let event = warmup_event(function, scheduler);
        let binary = function.binary.clone();
        tracing::debug!(function = %function.logical_id, %binary, "warming up");
        async move {
            let deadline = Instant::now() + Duration::from_secs(900);
            loop {
                match invoker.invoke(&binary, &event).await {
                    Ok(_) => return Ok(()),
                    Err(error) if Instant::now() > deadline => {
                        return Err(format!("{binary} did not start: {error}"))
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        }
    });
    for result in futures::future::join_all(warmups).await {
        result?;
    }
    tracing::info!(seconds = started.elapsed().as_secs(), "functions ready");
    Ok(())
}

/// An event that only starts the function: for an HTTP function a request for
/// `GET /_local/warmup`, a path no route has; for a queue or stream function an empty batch. A
/// scheduled function has no event that does nothing: it gets its scheduled event, and runs once.
fn warmup_event(function: &Function, scheduler: &schedules::Scheduler) -> serde_json::Value {
    match function.events.first() {
        Some(EventSource::Schedule { .. }) => match scheduler.find(&function.logical_id, None) {
            Some(schedule) => schedule.payload(REGION, ACCOUNT, chrono::Utc::now()),
            None => json!({}),
        },
        Some(EventSource::Http { .. }) => json!({
            "version": "2.0", "routeKey": "GET /_local/warmup", "rawPath": "/_local/warmup", "rawQueryString": "",
            "headers": {}, "isBase64Encoded": false,
            "requestContext": {"http": {"method": "GET", "path": "/_local/warmup", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "oms-local"},
                               "routeKey": "GET /_local/warmup", "stage": "$default", "requestId": "warmup", "accountId": ACCOUNT, "apiId": "oms-local", "timeEpoch": 0}
        }),
        _ => json!({"Records": []}),
    }
}

/// Step 5: a poller for each queue event (`--pollers-per-queue` of them) and for each stream
/// event of every function.
fn start_event_sources(
    args: &UpArgs,
    functions: &[Function],
    context: &Context,
    emulator: &Emulator,
    invoker: &lambda::Invoker,
) -> Result<(), BoxError> {
    let sqs = &emulator.clients.sqs;
    for function in functions {
        for event in &function.events {
            match event {
                EventSource::Sqs {
                    queue_arn,
                    batch_size,
                    report_failures,
                } => {
                    let source = Arc::new(pollers::SqsSource {
                        binary: function.binary.clone(),
                        queue_url: queue_url_of(context, queue_arn)
                            .ok_or_else(|| format!("no queue {queue_arn}"))?,
                        queue_arn: queue_arn.clone(),
                        batch_size: *batch_size,
                        report_failures: *report_failures,
                        region: REGION.into(),
                    });
                    for _ in 0..args.pollers_per_queue.max(1) {
                        tokio::spawn(pollers::poll_queue(
                            sqs.clone(),
                            invoker.clone(),
                            source.clone(),
                        ));
                    }
                }
                EventSource::Stream {
                    stream_arn,
                    batch_size,
                    max_retries,
                    report_failures,
                    on_failure_arn,
                } => {
                    let source = Arc::new(pollers::StreamSource {
                        binary: function.binary.clone(),
                        stream_arn: stream_arn.clone(),
                        batch_size: *batch_size,
                        max_retries: *max_retries,
                        report_failures: *report_failures,
                        on_failure_queue_url: on_failure_arn
                            .as_deref()
                            .and_then(|arn| queue_url_of(context, arn)),
                        region: REGION.into(),
                    });
                    tokio::spawn(pollers::poll_stream(
                        emulator.streams.clone(),
                        sqs.clone(),
                        invoker.clone(),
                        source,
                    ));
                }
                EventSource::Http { .. } | EventSource::Schedule { .. } => {}
            }
        }
    }
    Ok(())
}

/// Every customer notification, shown as a log line as it is sent: a queue of the stack's own
/// (`<stack>-notifications-log`), subscribed to the template's notifications topic with raw
/// delivery, and a poller that logs and deletes what arrives. Nothing if the template has no
/// such topic.
async fn start_notification_log(
    stack: &str,
    context: &Context,
    clients: &provision::Clients,
) -> Result<(), BoxError> {
    let Some(topic) = context.resources.get(NOTIFICATIONS_TOPIC) else {
        return Ok(());
    };
    let name = format!("{stack}-notifications-log");
    let queue_url = clients
        .sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await?
        .queue_url
        .ok_or("no queue URL")?;
    clients
        .sns
        .subscribe()
        .topic_arn(&topic.reference)
        .protocol("sqs")
        .endpoint(format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"))
        .attributes("RawMessageDelivery", "true")
        .send()
        .await?;
    tokio::spawn(pollers::log_notifications(clients.sqs.clone(), queue_url));
    Ok(())
}

/// Tells the person who started the stack where everything is, with a customer token and an
/// order to place; the staff console too if the template serves one (`console`).
fn print_welcome(
    args: &UpArgs,
    workspace: &Path,
    jwt_secret: &str,
    base: &str,
    endpoint: &str,
    console: bool,
) {
    let token = jwt::sign(
        jwt_secret,
        LOCAL_ISSUER,
        LOCAL_AUDIENCE,
        "customer-ada",
        None,
        12 * 3600,
    );
    println!("\nThe order management system is up.\n");
    println!("  HTTP API   {base}");
    println!("  emulator   {endpoint}   (AWS_ENDPOINT_URL for the aws CLI and SDKs)");
    println!(
        "  Stripe     {}   (localstripe, any sk_test_ key; its signed events go to {base}/payments/stripe/events)",
        stripe_url(args)
    );
    println!(
        "  functions  http://127.0.0.1:{}   (cargo lambda invoke -A 127.0.0.1 -P {})",
        args.lambda_port, args.lambda_port
    );
    if console {
        println!("  Console: {base}/console (development sign-in as any staff identity)");
    }
    println!("\nA customer token (12 h; more with `cargo run -p oms-local -- token --sub NAME [--scope oms:admin]`):\n\n  export TOKEN={token}\n");
    println!("Place an order:\n");
    println!("  curl -si {base}/orders -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\n    -H \"idempotency-key: $(date +%s%N)\" -d @events/demo-order.json\n");
    let port = if args.port == 3000 {
        String::new()
    } else {
        format!("OMS_LOCAL_PORT={} ", args.port)
    };
    // This executable, as the person at the workspace's root would name it.
    let me = std::env::current_exe()
        .ok()
        .map(|exe| {
            exe.strip_prefix(workspace)
                .map(Path::to_path_buf)
                .unwrap_or(exe)
        })
        .unwrap_or_else(|| PathBuf::from("target/debug/oms-local"));
    println!(
        "Pay for it, as the payment service provider would (signed with the local PSP secret):\n"
    );
    println!("  {port}{} psp authorize <orderId>\n", me.display());
    println!(
        "Its customer follows it, and cancels it before packing, at {base}/shop/orders/find \
         (its number and the demo order's address, ada@example.com), or by the signed link \
         every e-mail about it carries; print one with:\n"
    );
    println!("  {port}{} link <orderId>\n", me.display());
    println!("Press Ctrl-C to stop.");
}

/// Serves until Ctrl-C or SIGTERM, then stops the children the stack started.
async fn serve_until_interrupted(children: Vec<tokio::process::Child>) -> Result<(), BoxError> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping");
    for child in &children {
        stop_group(child);
    }
    Ok(())
}

/// Stops a child and everything it started (cargo lambda's function processes): each child runs
/// in a process group of its own.
fn stop_group(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        let stopped = std::process::Command::new("kill")
            .args(["-TERM", "--", &format!("-{pid}")])
            .status();
        if let Err(error) = stopped {
            tracing::warn!(pid, %error, "could not stop a child process group");
        }
    }
}

/// Sends one of the seed's requests; anything but a success stops the seeding, saying why.
async fn seeded(request: reqwest::RequestBuilder, what: &str) -> Result<(), BoxError> {
    let response = request.send().await?;
    if response.status().is_success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed: {} {}",
        response.status(),
        response.text().await.unwrap_or_default()
    )
    .into())
}

/// Places customer-ada's demo order (`events/demo-order.json`) through the API, waits for its
/// reservation and pays for it as the PSP would (a signed authorization): answers its id.
async fn place_demo_order(
    http: &reqwest::Client,
    base: &str,
    secrets: &Secrets,
    workspace: &Path,
) -> Result<String, BoxError> {
    let token = jwt::sign(
        &secrets.jwt,
        LOCAL_ISSUER,
        LOCAL_AUDIENCE,
        "customer-ada",
        None,
        300,
    );
    let body: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        workspace.join("events/demo-order.json"),
    )?)?;
    let placed = http
        .post(format!("{base}/orders"))
        .bearer_auth(&token)
        .header("idempotency-key", "demo-order")
        .json(&body)
        .send()
        .await?;
    let status = placed.status();
    let placed: serde_json::Value = placed.json().await?;
    let id = placed["orderId"]
        .as_str()
        .ok_or_else(|| format!("the demo order was refused: {status} {placed}"))?
        .to_owned();
    wait_until(
        "the demo order's reservation",
        Duration::from_secs(30),
        async || {
            let order: serde_json::Value = match http
                .get(format!("{base}/orders/{id}"))
                .bearer_auth(&token)
                .send()
                .await
            {
                Ok(response) => response.json().await.unwrap_or_default(),
                Err(_) => return false,
            };
            order["status"] == "RESERVED"
        },
    )
    .await?;
    let admin = jwt::sign(
        &secrets.jwt,
        LOCAL_ISSUER,
        LOCAL_AUDIENCE,
        "oms-local-psp",
        Some("oms:admin"),
        300,
    );
    let spec = psp::EventSpec {
        kind: oms_domain::order::payments::PaymentEventKind::AuthorizationSucceeded,
        order_id: id.clone(),
        amount: None,
        currency: None,
        refund_id: None,
        reason: None,
        event_id: None,
        occurred_at: None,
        psp_reference: None,
    };
    let answer = psp::send(
        &spec,
        &psp::Delivery {
            http,
            api: base,
            admin_token: &admin,
            secrets: std::slice::from_ref(&secrets.psp),
            stale: false,
        },
    )
    .await?;
    if !answer.status.is_success() {
        return Err(format!("the demo order's payment was refused: {}", answer.body).into());
    }
    tracing::info!(order = %id, "demo order placed and paid for");
    Ok(id)
}

async fn seed(
    http: &reqwest::Client,
    base: &str,
    secret: &str,
    catalog: &Path,
) -> Result<(), BoxError> {
    let token = jwt::sign(
        secret,
        LOCAL_ISSUER,
        LOCAL_AUDIENCE,
        "oms-local-seed",
        Some("oms:admin"),
        300,
    );
    let products: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(catalog)?)?;
    for mut product in products {
        let sku = product["sku"]
            .as_str()
            .ok_or("a demo product without a sku")?
            .to_owned();
        product.as_object_mut().map(|p| p.remove("sku"));
        // `onHand` is the default location's; `elsewhere` the other locations' receipts.
        let elsewhere = product
            .as_object_mut()
            .and_then(|p| p.remove("elsewhere"))
            .unwrap_or_default();
        let put = http.put(format!("{base}/inventory/{sku}")).json(&product);
        seeded(put.bearer_auth(&token), &format!("seeding {sku}")).await?;
        for (location, units) in elsewhere.as_object().into_iter().flatten() {
            let receipt = serde_json::json!({"reason": "RECEIPT", "delta": units, "location": location, "note": "demo stock"});
            let post = http
                .post(format!("{base}/inventory/{sku}/adjustments"))
                .json(&receipt);
            let what = format!("stocking {sku} at {location}");
            seeded(post.bearer_auth(&token), &what).await?;
        }
    }
    tracing::info!("demo catalog stocked");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn template() -> Template {
        Template::parse(
            "Parameters:\n  PaymentWindowSeconds: {Type: Number, Default: 1800}\n  JwtIssuer: {Type: String}\n  JwtAudience: {Type: String}\n  PublicApiUrl: {Type: String, Default: ''}\n  ConsoleIssuerUrl: {Type: String}\n  ConsoleClientId: {Type: String, Default: oms-console}\nResources: {}\n",
        )
        .unwrap()
    }

    #[test]
    fn a_parameter_is_set_by_its_variable_and_a_flag_wins_over_it() {
        let environment = vec![
            (
                "OMS_LOCAL_PARAMETER_PaymentWindowSeconds".to_owned(),
                "20".to_owned(),
            ),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let parameters = template_parameters(
            &template(),
            3000,
            "http://127.0.0.1:3002",
            &[],
            &environment,
        )
        .unwrap();
        assert_eq!(parameters["PaymentWindowSeconds"], "20");
        assert_eq!(parameters["JwtIssuer"], LOCAL_ISSUER);
        assert_eq!(parameters["PublicApiUrl"], "http://127.0.0.1:3000");
        assert_eq!(parameters["ConsoleIssuerUrl"], "http://127.0.0.1:3000/oidc");
        assert_eq!(parameters["ConsoleClientId"], "oms-console");
        let flagged = template_parameters(
            &template(),
            3000,
            "http://127.0.0.1:3002",
            &["PaymentWindowSeconds=90".to_owned()],
            &environment,
        )
        .unwrap();
        assert_eq!(flagged["PaymentWindowSeconds"], "90");
        let defaults =
            template_parameters(&template(), 3000, "http://127.0.0.1:3002", &[], &[]).unwrap();
        assert_eq!(defaults["PaymentWindowSeconds"], "1800");
    }

    #[test]
    fn a_misspelt_override_is_an_error() {
        let environment = vec![(
            "OMS_LOCAL_PARAMETER_PaymentWindow".to_owned(),
            "20".to_owned(),
        )];
        let error = template_parameters(
            &template(),
            3000,
            "http://127.0.0.1:3002",
            &[],
            &environment,
        )
        .unwrap_err();
        assert!(error.to_string().contains("PaymentWindow"), "{error}");
        assert!(template_parameters(
            &template(),
            3000,
            "http://127.0.0.1:3002",
            &["Nope=1".to_owned()],
            &[]
        )
        .is_err());
    }

    #[test]
    fn functions_get_the_local_cache_times() {
        let environment = function_environment(&[], "http://127.0.0.1:4566", 2, 3).unwrap();
        assert!(environment.contains(&("SECRET_CACHE_SECONDS".to_owned(), "2".to_owned())));
        assert!(environment.contains(&("LOCATIONS_CACHE_SECONDS".to_owned(), "3".to_owned())));
    }

    #[test]
    fn the_commands_parse() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "oms-local",
            "psp",
            "authorize",
            "01KAZ3Q6W8T2Y7X9V5N4M3K2J1",
            "--secret",
            "old-secret-0123456",
            "--secret",
            "new-secret-0123456",
            "--stale",
            "--api-url",
            "http://127.0.0.1:3300/",
        ])
        .unwrap();
        let Command::Psp(args) = cli.command else {
            panic!("not psp")
        };
        assert_eq!(
            args.event.kind,
            oms_domain::order::payments::PaymentEventKind::AuthorizationSucceeded
        );
        assert_eq!(args.secrets.len(), 2);
        assert!(args.stale);
        assert_eq!(args.api.url(), "http://127.0.0.1:3300");
        assert!(
            Cli::try_parse_from(["oms-local", "psp", "charge", "01KAZ3Q6W8T2Y7X9V5N4M3K2J1"])
                .is_err()
        );
        let cli = Cli::try_parse_from([
            "oms-local",
            "schedule",
            "OrderSweeperFunction",
            "--port",
            "3300",
        ])
        .unwrap();
        let Command::Schedule { function, api, .. } = cli.command else {
            panic!("not schedule")
        };
        assert_eq!(function, "OrderSweeperFunction");
        if std::env::var_os("OMS_API_URL").is_none() {
            assert_eq!(api.url(), "http://127.0.0.1:3300");
        }
    }
}
