//! The staff console, driven in a real browser: headless Chromium through chromedriver
//! (WebDriver), against the local stack. Each journey signs in at the stack's development issuer
//! (OpenID Connect code flow with PKCE), does what staff do with forms, and checks the system's
//! state through the JSON API afterwards. The main screens are saved as screenshots in
//! `OMS_CONSOLE_SCREENSHOTS` (default `target/console-screenshots`); the README shows the ones
//! in `docs/console`, taken with `OMS_CONSOLE_SCREENSHOTS=docs/console`.
//!
//! chromedriver and Chromium come from Debian's packages, which `infra/local/test.sh` installs;
//! a test that cannot start them fails and says so.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use oms_system_tests::{order_body, unique, Stack, StatusCode};
use serde_json::json;

/// A browser session, and the chromedriver that serves it.
pub(crate) struct Browser {
    pub(crate) client: Client,
    _driver: Driver,
    api: String,
}

/// What names every browser these tests start, so the test command can check none is left.
const PROFILE_PREFIX: &str = "oms-console-browser-";

/// A chromedriver and the Chromium it starts: stopped when dropped, which a failing test (or
/// one that never got its session) does too.
struct Driver {
    child: Child,
    /// Chromium's profile folder, which also names its processes (`oms-console-browser-…`).
    profile: std::path::PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads a process group of its own with the Chromium it started: ending the
        // group ends the browser too (ending chromedriver alone would orphan Chromium).
        let group = format!("-{}", self.child.id());
        let ended = Command::new("kill").args(["-KILL", "--", &group]).status();
        if !ended.is_ok_and(|s| s.success()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    pub(crate) async fn open(stack: &Stack) -> Browser {
        Browser::open_with(stack, None).await
    }

    /// A browser whose page is a phone's: 390 × 844 CSS pixels, a touch screen.
    pub(crate) async fn open_phone(stack: &Stack) -> Browser {
        Browser::open_with(
            stack,
            Some(json!({"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 1.0, "touch": true}})),
        )
        .await
    }

    async fn open_with(stack: &Stack, mobile: Option<serde_json::Value>) -> Browser {
        let port = free_port();
        let driver_path =
            std::env::var("OMS_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let profile = std::env::temp_dir().join(format!("{PROFILE_PREFIX}{port}"));
        let child = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {driver_path} ({e}): install Debian's chromium and chromium-driver (infra/local/test.sh does)")
            });
        let driver = Driver { child, profile };
        let chromium = std::env::var("OMS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                         "--disable-background-networking", "--disable-component-update", "--no-first-run",
                         format!("--user-data-dir={}", driver.profile.display())],
            }),
        );
        if let Some(mobile) = mobile {
            capabilities["goog:chromeOptions"]["mobileEmulation"] = mobile;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let attempt =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(capabilities.clone())
                    .connect(&format!("http://127.0.0.1:{port}"))
                    .await;
            match attempt {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!("chromedriver on port {port} gave no browser session: {e}"),
            }
        };
        Browser {
            client,
            _driver: driver,
            api: stack.api.clone(),
        }
    }

    pub(crate) async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.api))
            .await
            .unwrap_or_else(|e| panic!("opening {path}: {e}"));
    }

    pub(crate) async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current URL");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub(crate) async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.expect("an element's text"),
            Err(e) => {
                let page = self.client.source().await.unwrap_or_default();
                panic!("no {css} on {} ({e}); the page:\n{page}", self.path().await)
            }
        }
    }

    /// The current value of the field at `css` (what is typed or chosen in it).
    pub(crate) async fn value(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no field at {css}: {e}"))
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    pub(crate) async fn body(&self) -> String {
        self.text("body").await
    }

    pub(crate) async fn fill(&self, css: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no field {css}: {e}"));
        field.clear().await.expect("clearing a field");
        field.send_keys(value).await.expect("typing into a field");
    }

    pub(crate) async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("nothing to click at {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Clicks a button that submits a form or follows a link, and waits until the browser has
    /// left the page (the old document is gone) and loaded the answer.
    pub(crate) async fn submit(&self, css: &str) {
        let old = self
            .client
            .find(Locator::Css("html"))
            .await
            .expect("a page");
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while old.tag_name().await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "clicking {css} never left the page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css("body"))
            .await
            .expect("the answer's page");
    }

    /// Signs in at the development issuer as `subject` in `role` (`admin`, `warehouse` or
    /// `customer`), starting from a console page, and answers where the browser landed.
    pub(crate) async fn sign_in(&self, subject: &str, role: &str) -> String {
        self.sign_in_at("/console", subject, role).await
    }

    /// Opens `page` without a session and signs in at the identity provider it sends to:
    /// where the browser is then.
    pub(crate) async fn sign_in_at(&self, page: &str, subject: &str, role: &str) -> String {
        self.goto(page).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.path().await.starts_with("/oidc/authorize") {
            assert!(
                Instant::now() < deadline,
                "the console did not send to sign-in: {}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.fill("#subject", subject).await;
        self.click(&format!("#role-{role}")).await;
        self.submit("#sign-in").await;
        // The answer is two redirects away (the callback, then the console's first screen).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let path = self.path().await;
            if !path.starts_with("/oidc/") && !path.starts_with("/console/auth/") {
                return path;
            }
            assert!(
                Instant::now() < deadline,
                "the sign-in did not come back: {path}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = std::env::var("OMS_CONSOLE_SCREENSHOTS").unwrap_or_else(|_| {
            format!(
                "{}/../target/console-screenshots",
                env!("CARGO_MANIFEST_DIR")
            )
        });
        std::fs::create_dir_all(&dir).expect("the screenshot folder");
        std::fs::write(format!("{dir}/{name}.png"), png).expect("writing a screenshot");
    }
}

#[tokio::test]
async fn staff_find_an_order_ship_it_through_the_pick_list_and_a_stale_form_is_refused() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("CONSOLESHIP", 5).await;
    let (customer, id, _) = stack.order_in_warehouse(&[(&sku, 2)]).await;

    let browser = Browser::open(&stack).await;
    assert_eq!(
        browser.sign_in("staff-ada", "admin").await,
        "/console/orders"
    );
    assert_eq!(browser.text("#signed-in-as").await, "staff-ada");
    // The open orders by status, counted: this one is among those in the warehouse.
    let fulfilling = browser.text("#count-FULFILLING .count").await;
    let fulfilling: u32 = fulfilling.trim_end_matches('+').parse().unwrap();
    assert!(fulfilling >= 1, "{fulfilling}");
    browser.screenshot("orders").await;

    // Find the order by its id: the order page.
    browser.fill("#search", &id.to_lowercase()).await;
    browser.submit("#find").await;
    assert_eq!(browser.path().await, format!("/console/orders/{id}"));
    assert_eq!(browser.text("#order-status").await, "FULFILLING");
    assert!(browser.body().await.contains(&sku), "the order's lines");
    // Who to call about it: the customer card, and what was asked of the PSP.
    let placed = stack.order_as_staff(&id).await;
    assert_eq!(
        browser.text("#customer-email").await,
        placed["contact"]["email"].as_str().unwrap()
    );
    assert!(browser.text("#customer").await.contains(&customer));
    browser.screenshot("order").await;

    // The warehouse: the order is on the pick list. A packer picks it through the API meanwhile,
    // so the page's form is stale and is refused.
    // The warehouse works oldest first (other tests' orders wait ahead of this one): the
    // packer finds the shipment by the order id on its pick slip.
    browser.goto("/console/warehouse").await;
    browser.screenshot("warehouse").await;
    browser.fill("#shipment-search", &id).await;
    browser.submit("#find-shipment").await;
    assert!(
        browser.body().await.contains(&id),
        "the shipment found by its order id"
    );
    let warehouse = stack.token("warehouse-other", Some("oms:warehouse"));
    let etag = stack.shipment_etag(&id, &warehouse).await;
    let picked = stack
        .warehouse_post(
            &format!("/fulfillments/{id}/pick"),
            &warehouse,
            Some(&etag),
            None,
        )
        .await;
    assert_eq!(picked.status, StatusCode::OK);
    browser
        .submit(&format!("#shipment-{id}-1 button.pick"))
        .await;
    assert!(
        browser
            .body()
            .await
            .contains("changed since your page was loaded"),
        "a stale pick form is refused: {}",
        browser.body().await
    );
    let shipment = stack.get(&format!("/fulfillments/{id}"), &warehouse).await;
    assert_eq!(
        shipment.body["status"], "PICKED",
        "the refused form changed nothing"
    );
    assert_eq!(shipment.body["version"], picked.body["version"]);
    // The refusal is shown on the pick list itself, as it is now, with the navigation.
    assert!(browser.text("nav").await.contains("Warehouse"));
    assert!(browser
        .text("#form-refused")
        .await
        .contains("The page below shows what is current now"));

    // Pack and ship through the forms.
    let card = format!("#shipment-{id}-1");
    assert!(
        browser.text(&card).await.contains("Mark as packed"),
        "the page as it is now: the shipment waits to be packed"
    );
    for (name, value) in [
        ("weightGrams", "1200"),
        ("lengthCm", "30"),
        ("widthCm", "20"),
        ("heightCm", "10"),
    ] {
        browser
            .fill(&format!("{card} input[name={name}]"), value)
            .await;
    }
    browser.submit(&format!("{card} form.pack button")).await;
    assert_eq!(browser.text("#banner").await, "Packed.");
    // The packing slip for the parcel: its address and items, printed on one A4 page.
    browser.submit(&format!("{card} a.slip")).await;
    assert!(browser.text("#slip .slip-lines").await.contains(&sku));
    assert!(browser
        .text("#slip .ship-to")
        .await
        .contains("Test Customer"));
    let a4 = fantoccini::wd::PrintConfiguration::builder()
        .size(fantoccini::wd::PrintSize::A4)
        .build()
        .unwrap();
    let pdf = browser.client.print(a4).await.expect("the slip printed");
    assert_eq!(pdf_pages(&pdf), 1, "one A4 page");
    std::fs::write(
        format!(
            "{}/../target/console-screenshots/packing-slip.pdf",
            env!("CARGO_MANIFEST_DIR")
        ),
        &pdf,
    )
    .expect("keeping the printed slip");
    browser.screenshot("packing-slip").await;
    browser
        .goto(&format!("/console/warehouse?order={id}"))
        .await;
    let number = unique("JJD").to_uppercase();
    browser
        .fill(&format!("{card} input[name=trackingNumber]"), &number)
        .await;
    browser
        .fill(
            &format!("{card} input[name=trackingUrl]"),
            &format!("https://www.dhl.com/track?id={number}"),
        )
        .await;
    browser.submit(&format!("{card} form.ship button")).await;
    assert_eq!(
        browser.text("#banner").await,
        "Shipped: the customer is told."
    );

    let order = stack.wait_status(&customer, &id, "SHIPPED").await;
    assert_eq!(
        order["fulfillment"]["tracking"]["trackingNumber"],
        number.as_str()
    );
    let staff_view = stack.order_as_staff(&id).await;
    let steps: Vec<&str> = staff_view["fulfillment"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["by"].as_str().unwrap_or_default())
        .collect();
    assert!(
        steps.iter().any(|by| by.contains("staff-ada")),
        "the console's steps name who took them: {steps:?}"
    );
    // The order's page says the same, and what was asked of the PSP once it shipped.
    browser.goto(&format!("/console/orders/{id}")).await;
    browser.click("#shipment-steps summary").await;
    let who = browser.text("#shipment-steps").await;
    assert!(
        who.contains("PICKED by warehouse-other")
            && who.contains("PACKED by staff-ada")
            && who.contains("SHIPPED by staff-ada"),
        "{who}"
    );
    assert!(browser.text("#psp-requests").await.contains("CAPTURE"));
    assert_eq!(
        stack.stock(&sku).await,
        (3, 0, 3),
        "two units left the warehouse"
    );
}

#[tokio::test]
async fn staff_approve_and_receive_a_return_and_record_a_stock_receipt() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("CONSOLERET", 4).await;
    let delivered_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (customer, order) = stack.delivered_order(&[(&sku, 2)], &delivered_at).await;
    let id = order["orderId"].as_str().unwrap().to_owned();
    let token = stack.token(&customer, None);
    // A reason the policy leaves to staff.
    let requested = stack
        .post(
            &format!("/orders/{id}/returns"),
            &token,
            &[("idempotency-key", &unique("return"))],
            json!({"lines": [{"sku": sku, "quantity": 2, "reason": "OTHER", "comment": "not as pictured"}]}),
        )
        .await;
    assert_eq!(
        requested.status,
        StatusCode::CREATED,
        "{:?}",
        requested.body
    );
    let return_id = requested.body["returnId"].as_str().unwrap().to_owned();
    assert_eq!(requested.body["status"], "PENDING_APPROVAL");

    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-bea", "admin").await;
    browser.goto("/console/returns").await;
    assert!(
        browser.body().await.contains(&return_id),
        "the return waits for a decision"
    );
    browser.screenshot("returns").await;
    browser.goto(&format!("/console/orders/{id}")).await;
    browser
        .submit(&format!("#return-{return_id} button.approve"))
        .await;
    assert_eq!(
        browser.text("#banner").await,
        "The return was approved; its label is issued."
    );
    let rma = stack.get(&format!("/returns/{return_id}"), &token).await;
    assert_eq!(rma.body["status"], "APPROVED");
    // Its label, from the order's page: the same PDF the customer prints.
    let label = browser
        .client
        .find(Locator::Css(&format!("#return-{return_id} a.label")))
        .await
        .expect("a label link once approved")
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let console = stack.console_session("staff-bea", "admin").await;
    let (status, pdf) = console.get(&label).await;
    assert_eq!(status, StatusCode::OK);
    assert!(pdf.starts_with("%PDF-"), "a PDF");

    // Receiving: one unit back on the shelf, one to recycling.
    browser.fill(&format!("#quantity-{sku}"), "2").await;
    browser
        .client
        .find(Locator::Css(&format!("#disposition-{sku}")))
        .await
        .unwrap()
        .select_by_value("RESTOCK")
        .await
        .unwrap();
    browser
        .submit(&format!("#return-{return_id} button.receive-button"))
        .await;
    assert_eq!(browser.text("#banner").await, "The return was received.");
    let rma = stack.get(&format!("/returns/{return_id}"), &token).await;
    assert_eq!(rma.body["status"], "RECEIVED", "{:?}", rma.body);
    assert_eq!(stack.stock(&sku).await.0, 4, "both units restocked");

    // A stock receipt on the SKU's page, then its history.
    browser.goto(&format!("/console/inventory/{sku}")).await;
    browser.fill("#receipt-units", "6").await;
    browser
        .fill("#receipt-note", "supplier delivery 4711")
        .await;
    browser.submit("#record-receipt").await;
    assert_eq!(
        browser.text("#banner").await,
        "The stock adjustment was recorded."
    );
    assert_eq!(browser.text("#available").await, "10");
    let history = browser.text("#history").await;
    assert!(
        history.contains("RECEIPT")
            && history.contains("supplier delivery 4711")
            && history.contains("staff-bea"),
        "{history}"
    );
    browser.screenshot("product").await;
    let admin = stack.token("admin-tests", Some("oms:admin"));
    let product = stack.get(&format!("/inventory/{sku}"), &admin).await;
    assert_eq!(product.body["available"], 10);
    let adjustments = stack
        .get(&format!("/inventory/{sku}/adjustments"), &admin)
        .await;
    assert_eq!(adjustments.body["items"][0]["reason"], "RECEIPT");
    assert_eq!(adjustments.body["items"][0]["actor"], "staff-bea");
    browser.goto(&format!("/console/inventory?q={sku}")).await;
    assert!(browser.body().await.contains(&sku));
    browser.goto("/console/inventory?sort=lowStock").await;
    browser.screenshot("inventory").await;
}

#[tokio::test]
async fn staff_redrive_a_dead_lettered_message_back_to_its_queue() {
    let stack = Stack::connect().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk().await);
    let url = |name: &str| format!("{}/123456789012/{}", stack.emulator, stack.resource(name));
    let marker = unique("dead-lettered");
    sqs.send_message()
        .queue_url(url("SmsOutboxDeadLetterQueue"))
        .message_body(json!({"marker": marker}).to_string())
        .send()
        .await
        .unwrap();

    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-cem", "admin").await;
    browser.goto("/console/exceptions").await;
    let queue = format!("#queue-{}", stack.resource("SmsOutboxDeadLetterQueue"));
    let waiting: u64 = browser
        .text(&format!("{queue} .messages"))
        .await
        .parse()
        .unwrap();
    assert!(waiting >= 1, "the dead-lettered message is counted");
    browser.screenshot("exceptions").await;
    browser.submit(&format!("{queue} button.redrive")).await;
    assert_eq!(
        browser.text("#banner").await,
        "The dead-letter queue's messages are moving back to their queue."
    );

    // The message is back on its queue, and gone from the dead-letter queue.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = false;
    while !found && Instant::now() < deadline {
        let output = sqs
            .receive_message()
            .queue_url(url("SmsOutboxQueue"))
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in output.messages.unwrap_or_default() {
            if message.body().is_some_and(|b| b.contains(&marker)) {
                found = true;
                sqs.delete_message()
                    .queue_url(url("SmsOutboxQueue"))
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    assert!(found, "the redriven message reached its source queue");
    let left = sqs
        .receive_message()
        .queue_url(url("SmsOutboxDeadLetterQueue"))
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert!(
        !left
            .iter()
            .any(|m| m.body().is_some_and(|b| b.contains(&marker))),
        "nothing of it is left behind"
    );
    // The JSON API sees the same exceptions page data.
    let admin = stack.token("admin-tests", Some("oms:admin"));
    let exceptions = stack.get("/exceptions", &admin).await;
    assert_eq!(exceptions.status, StatusCode::OK);
    assert!(exceptions.body["stuck"]
        .as_array()
        .is_some_and(|s| s.len() == 7));
}

#[tokio::test]
async fn no_page_or_action_without_the_scope_a_session_or_the_consoles_own_form() {
    let stack = Stack::connect().await;
    let browser = Browser::open(&stack).await;

    // Not signed in, or a session cookie the console did not write: to the sign-in.
    browser.goto("/console/exceptions").await;
    assert!(
        browser.path().await.starts_with("/oidc/authorize"),
        "{}",
        browser.path().await
    );
    let mut forged = fantoccini::cookies::Cookie::new("oms_console", "Zm9yZ2VkIHNlc3Npb24");
    forged.set_path("/console");
    forged.set_domain("127.0.0.1");
    forged.set_secure(true);
    browser.client.add_cookie(forged).await.unwrap();
    browser.goto("/console/orders").await;
    assert!(
        browser.path().await.starts_with("/oidc/authorize"),
        "a forged session signs nobody in"
    );

    // A customer signs in: no screen (they land where any staff member may read, and may not).
    assert_eq!(
        browser.sign_in("customer-dan", "customer").await,
        "/console/inventory"
    );
    assert_eq!(browser.text("#message-title").await, "Not allowed");
    for path in [
        "/console/orders",
        "/console/inventory",
        "/console/exceptions",
    ] {
        browser.goto(path).await;
        assert_eq!(
            browser.text("#message-title").await,
            "Not allowed",
            "{path}"
        );
    }

    // A packer: the warehouse, not the admin screens or actions.
    let browser = Browser::open(&stack).await;
    assert_eq!(
        browser.sign_in("packer-eve", "warehouse").await,
        "/console/warehouse"
    );
    assert!(browser.body().await.contains("To pick"));
    let nav = browser.text("nav").await;
    assert!(
        !nav.contains("Exceptions") && !nav.contains("Orders"),
        "{nav}"
    );
    browser.goto("/console/exceptions").await;
    assert_eq!(browser.text("#message-title").await, "Not allowed");
    // The refusal keeps the packer's navigation and leads to their own home, not to a screen
    // they may not open.
    assert!(browser.text("nav").await.contains("Warehouse"));
    browser.screenshot("forbidden").await;
    let home = browser
        .client
        .find(Locator::Css("#back-home"))
        .await
        .expect("a way home")
        .attr("href")
        .await
        .unwrap();
    assert_eq!(home.as_deref(), Some("/console/warehouse"));
    browser.submit("#back-home").await;
    assert_eq!(browser.path().await, "/console/warehouse");
    let sku = stack.create_sku("CONSOLEGUARD", 3).await;
    browser.goto(&format!("/console/inventory/{sku}")).await;
    assert!(
        browser
            .client
            .find(Locator::Css("#receipt-form"))
            .await
            .is_err(),
        "a packer is offered no adjustment"
    );
    // Even posted by hand (with the packer's own CSRF token), an admin action is refused.
    let csrf = browser
        .client
        .find(Locator::Css("input[name=csrf]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let script = format!(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/console/inventory/{sku}/adjustments';
         for (const [k, v] of [['csrf', '{csrf}'], ['reason', 'RECEIPT'], ['units', '5']]) {{
           const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }}
         document.body.appendChild(f); f.submit();"
    );
    // The console's CSP allows no script of its own pages: run it from the browser's side.
    browser.client.execute(&script, vec![]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(browser.text("#message-title").await, "Not allowed");
    assert_eq!(stack.stock(&sku).await.0, 3, "nothing was adjusted");

    // A form posted from another site, with the admin's session in the browser: refused.
    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-fay", "admin").await;
    let evil = format!(
        "data:text/html,<form method=post action='{}/console/inventory/{sku}/adjustments'><input name=reason value=RECEIPT><input name=units value=5><input name=csrf value=guess></form><script>document.forms[0].submit()</script>",
        stack.api
    );
    browser.client.goto(&evil).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !browser.path().await.starts_with("/console") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        browser.text("#message-title").await,
        "Not allowed",
        "a cross-site post is refused"
    );
    assert!(browser
        .body()
        .await
        .contains("not sent from the console's own pages"));
    assert_eq!(stack.stock(&sku).await.0, 3, "nothing was adjusted");
}

#[tokio::test]
async fn staff_see_a_split_order_move_a_parcel_and_work_it_at_its_location() {
    let stack = Stack::connect().await;
    let berlin_only = stack.create_sku("CONSOLESPLIT-A", 3).await;
    let amsterdam_only = stack.create_sku("CONSOLESPLIT-B", 0).await;
    stack.receive_at(&amsterdam_only, "AMS-1", 2).await;
    let (_, id, _) = stack
        .order_in_warehouse(&[(&berlin_only, 1), (&amsterdam_only, 1)])
        .await;

    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-cy", "admin").await;
    browser.goto(&format!("/console/orders/{id}")).await;
    let shipments = browser.text("#shipments").await;
    assert!(
        shipments.contains(&format!("{id}-1"))
            && shipments.contains("BER-1")
            && shipments.contains(&format!("{id}-2"))
            && shipments.contains("AMS-1"),
        "{shipments}"
    );
    browser
        .client
        .execute("document.getElementById('ship-h').scrollIntoView()", vec![])
        .await
        .expect("scrolling to the shipments");
    browser.screenshot("split-order").await;

    // Amsterdam gets Berlin's SKU too; staff move Berlin's parcel there before it is picked, and
    // it joins Amsterdam's.
    stack.receive_at(&berlin_only, "AMS-1", 1).await;
    browser.submit("#move-1 button").await;
    assert_eq!(
        browser.text("#banner").await,
        "The shipment was moved; its units are reserved at their new location."
    );
    let admin = stack.token("admin-tests", Some("oms:admin"));
    let order = stack.get(&format!("/orders/{id}"), &admin).await.body;
    let at: Vec<&str> = order["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["warehouse"].as_str().unwrap())
        .collect();
    assert_eq!(at, ["AMS-1"], "{order}");
    assert_eq!(order["shipments"][0]["shipmentId"], format!("{id}-2"));
    let counters = stack
        .get(&format!("/inventory/{berlin_only}"), &admin)
        .await
        .body;
    let at = |location: &str| {
        counters["locations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["location"] == location)
            .map(|l| {
                (
                    l["available"].as_u64().unwrap(),
                    l["reserved"].as_u64().unwrap(),
                )
            })
    };
    assert_eq!(
        (at("BER-1"), at("AMS-1")),
        (Some((3, 0)), Some((0, 1))),
        "the unit's reservation moved with it: {counters}"
    );

    // At Amsterdam's pick list (the location switch), the parcel holds both units.
    browser.goto("/console/warehouse?location=AMS-1").await;
    browser.fill("#shipment-search", &id).await;
    browser.submit("#find-shipment").await;
    let card = browser.text(&format!("#shipment-{id}-2")).await;
    assert!(
        card.contains(&berlin_only) && card.contains(&amsterdam_only),
        "{card}"
    );
    browser.screenshot("warehouse-location").await;
    browser
        .submit(&format!("#shipment-{id}-2 button.pick"))
        .await;
    assert_eq!(browser.text("#banner").await, "Picked.");
}

#[tokio::test]
async fn staff_add_a_location_in_the_console_and_receive_stock_there() {
    let stack = Stack::connect().await;
    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-noor", "admin").await;
    browser.goto("/console/locations").await;
    let listed = browser.text("#locations").await;
    assert!(
        listed.contains("Berlin warehouse") && listed.contains("BER-STORE-1"),
        "{listed}"
    );
    // One id for every run (the list is bounded, and never shrinks): added (or changed back) here,
    // retired at the end.
    let id = "TEST-CGN-1".to_owned();
    browser.fill("#new-id", &id.to_lowercase()).await;
    browser.fill("#new-name", "Cologne warehouse").await;
    browser.fill("#new-country", "DE").await;
    browser.fill("#new-postal-code", "50667").await;
    browser.fill("#new-priority", "7").await;
    browser.screenshot("locations").await;
    browser.submit("#add-location").await;
    assert!(
        browser
            .text("#banner")
            .await
            .starts_with("The location was added"),
        "{}",
        browser.body().await
    );
    let row = browser.text(&format!("#location-{id}")).await;
    assert!(
        row.contains("Cologne warehouse")
            && row.contains("50667, DE")
            && row.contains("ships, returns"),
        "{row}"
    );
    // Every caller sees it; its stock can be received there once the functions read the list
    // again (LOCATIONS_CACHE_SECONDS, 2 s in the test stack).
    let listed = stack
        .get("/locations", &stack.token("storefront", None))
        .await;
    assert!(listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["id"] == id.as_str() && l["name"] == "Cologne warehouse"));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let sku = stack.create_sku("CGN", 0).await;
    stack.receive_at(&sku, &id, 4).await;
    browser.goto(&format!("/console/inventory/{sku}")).await;
    let available = browser.text(&format!("#at-{id} td")).await;
    assert_eq!(available, "4");
    // Retired again, so the test stack's routing is the demo's for every other test.
    let admin = stack.token("staff-noor", Some("oms:admin"));
    let retired = stack
        .put(
            &format!("/locations/{id}"),
            &admin,
            &json!({"name": "Cologne warehouse", "kind": "WAREHOUSE", "country": "DE",
                    "postalCode": "50667", "zone": "domestic", "handlingDays": 1, "cutoffHourUtc": 14,
                    "capabilities": {"ships": false, "pickup": false, "returns": false}, "priority": 7}),
        )
        .await;
    assert_eq!(retired.status, StatusCode::OK, "{:?}", retired.body);
}

#[tokio::test]
async fn a_packer_finds_an_approved_return_by_its_number_reads_why_and_must_choose_what_becomes_of_it(
) {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("CONSOLEWHRET", 3).await;
    let delivered_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (customer, order) = stack.delivered_order(&[(&sku, 1)], &delivered_at).await;
    let id = order["orderId"].as_str().unwrap().to_owned();
    let token = stack.token(&customer, None);
    let requested = stack
        .post(
            &format!("/orders/{id}/returns"),
            &token,
            &[("idempotency-key", &unique("return"))],
            json!({"lines": [{"sku": sku, "quantity": 1, "reason": "OTHER", "comment": "the handle came off"}]}),
        )
        .await;
    assert_eq!(
        requested.status,
        StatusCode::CREATED,
        "{:?}",
        requested.body
    );
    let return_id = requested.body["returnId"].as_str().unwrap().to_owned();
    let admin = stack.token("staff-ida", Some("oms:admin"));
    let approved = stack
        .post(
            &format!("/returns/{return_id}/approve"),
            &admin,
            &[],
            json!({"note": "photo checked: broken"}),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);

    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-oli", "warehouse").await;
    browser.goto("/console/warehouse").await;
    // Approved, it is expected: listed among the returns on their way (the longest-approved
    // first, a page at a time).
    for page in 0.. {
        let expected = browser.text("#section-arriving").await;
        if expected.contains(&return_id) {
            break;
        }
        assert!(
            page < 50,
            "the approved return is not on its way: {expected}"
        );
        browser.submit("#more-arriving").await;
    }
    // Found by its order's number, as by its own.
    browser.fill("#shipment-search", &id).await;
    browser.submit("#find-shipment").await;
    assert!(browser
        .text(&format!("#return-{return_id}"))
        .await
        .contains("the handle came off"));
    browser.goto("/console/warehouse").await;
    browser
        .fill("#shipment-search", &return_id.to_lowercase())
        .await;
    browser.submit("#find-shipment").await;
    let card = browser.text(&format!("#return-{return_id}")).await;
    assert!(
        card.contains("the handle came off")
            && card.contains("photo checked: broken")
            && card.contains("staff-ida"),
        "the customer's words and staff's decision: {card}"
    );
    // No disposition is preset: a receipt that names none is refused, nothing received.
    let selected = browser
        .client
        .find(Locator::Css(&format!("#disposition-{sku} option:checked")))
        .await
        .expect("the disposition's choice")
        .attr("value")
        .await
        .unwrap();
    assert_eq!(selected.as_deref(), Some(""), "nothing chosen yet");
    let packer = stack.console_session("staff-oli", "warehouse").await;
    let version = stack.get(&format!("/orders/{id}"), &admin).await.body["version"].to_string();
    let (status, _) = packer
        .post(
            &format!("/console/returns/{return_id}/receive"),
            &[
                ("version", version.as_str()),
                (&format!("quantity-{sku}"), "1"),
                ("back", "warehouse"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let rma = stack.get(&format!("/returns/{return_id}"), &admin).await;
    assert_eq!(rma.body["status"], "APPROVED");
    browser.screenshot("warehouse-return").await;

    // Broken: recycled, not back on sale. The packer stays on the warehouse screen.
    browser
        .client
        .find(Locator::Css(&format!("#disposition-{sku}")))
        .await
        .unwrap()
        .select_by_value("RECYCLE")
        .await
        .unwrap();
    browser
        .submit(&format!("#return-{return_id} button.receive-button"))
        .await;
    assert_eq!(browser.text("#banner").await, "The return was received.");
    assert!(browser
        .path()
        .await
        .starts_with("/console/warehouse?order="));
    assert!(browser
        .text(&format!("#return-{return_id} .return-status"))
        .await
        .contains("RECEIVED"));
    let rma = stack.get(&format!("/returns/{return_id}"), &admin).await;
    assert_eq!(rma.body["status"], "RECEIVED", "{:?}", rma.body);
    assert_eq!(
        stack.stock(&sku).await.0,
        2,
        "the broken unit was not restocked"
    );
    // The refund follows as in the API: the unit's price, asked of the PSP.
    let after = stack.order_as_staff(&id).await;
    assert_eq!(
        after["refunds"][0]["returnId"],
        return_id.as_str(),
        "{after}"
    );
    assert_eq!(after["refunds"][0]["lines"][0]["amount"]["amount"], 1000);
    browser.goto("/console/warehouse").await;
    assert!(
        browser
            .client
            .find(fantoccini::Locator::Css(&format!("#arriving-{return_id}")))
            .await
            .is_err(),
        "received, no longer expected"
    );
}

/// The value of the hidden field `name` whose value ends with `suffix` (or any, if empty) in a
/// page's HTML.
pub(crate) fn hidden(page: &str, name: &str, suffix: &str) -> String {
    page.split(&format!("name=\"{name}\" value=\""))
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .find(|value| value.ends_with(suffix))
        .unwrap_or_else(|| panic!("no hidden {name} ending {suffix:?}"))
        .to_owned()
}

#[tokio::test]
async fn a_stock_receipt_sent_from_two_tabs_or_twice_is_recorded_once() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("TWOTABS", 49).await;
    let admin = stack.console_session("staff-pia", "admin").await;
    let path = format!("/console/inventory/{sku}");
    // Two tabs on the SKU's page.
    let (_, first_tab) = admin.get(&path).await;
    let (_, second_tab) = admin.get(&path).await;
    let receipt = |page: &str| {
        vec![
            ("key".to_owned(), hidden(page, "key", "-receipt")),
            ("onHand-BER-1".to_owned(), hidden(page, "onHand-BER-1", "")),
            ("reason".to_owned(), "RECEIPT".to_owned()),
            ("location".to_owned(), "BER-1".to_owned()),
            ("units".to_owned(), "5".to_owned()),
        ]
    };
    let send = |fields: Vec<(String, String)>| {
        let admin = &admin;
        let path = format!("{path}/adjustments");
        async move {
            let fields: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            admin.post(&path, &fields).await
        }
    };
    let (status, _) = send(receipt(&first_tab)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // The same form again (a double click): recorded once, answered as done.
    let (status, _) = send(receipt(&first_tab)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(stack.stock(&sku).await.0, 54);
    // The second tab still shows 49 on hand: refused, with what is there now.
    let (status, page) = send(receipt(&second_tab)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("54 on hand, not the 49"), "{page}");
    assert_eq!(stack.stock(&sku).await.0, 54, "49 → 54, never 59");
    let admin_token = stack.token("admin-tests", Some("oms:admin"));
    let history = stack
        .get(&format!("/inventory/{sku}/adjustments"), &admin_token)
        .await;
    let receipts = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["reason"] == "RECEIPT" && a["after"]["onHand"] == 54)
        .count();
    assert_eq!(receipts, 1);
}

/// The same in Chromium: a receipt typed into two tabs of one SKU's page is recorded by the
/// first, refused in the second (it showed 49 on hand); the first form sent again after the
/// browser's back button records nothing more.
#[tokio::test]
async fn a_stock_receipt_typed_into_two_browser_tabs_is_recorded_once() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("TWOTABSUI", 49).await;
    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-pia", "admin").await;
    let path = format!("/console/inventory/{sku}");
    browser.goto(&path).await;
    let first = browser.client.window().await.unwrap();
    let second = browser.client.new_window(true).await.unwrap().handle;
    browser
        .client
        .switch_to_window(second.clone())
        .await
        .unwrap();
    browser.goto(&path).await;
    browser.fill("#receipt-units", "5").await;
    browser.client.switch_to_window(first).await.unwrap();
    browser.fill("#receipt-units", "5").await;
    browser.submit("#record-receipt").await;
    assert!(browser.path().await.contains("done="));
    assert_eq!(stack.stock(&sku).await.0, 54);
    // Back to the sent form (the browser may show it as it was, from its back-forward cache)
    // and sent again: its key was recorded, so nothing more is.
    browser.client.back().await.unwrap();
    browser.fill("#receipt-units", "5").await;
    browser.submit("#record-receipt").await;
    assert_eq!(
        stack.stock(&sku).await.0,
        54,
        "the same form, recorded once"
    );

    browser.client.switch_to_window(second).await.unwrap();
    browser.submit("#record-receipt").await;
    let refusal = browser.text("#form-refused").await;
    assert!(refusal.contains("54 on hand, not the 49"), "{refusal}");
    assert!(
        refusal.contains("You entered:") && refusal.contains("units 5"),
        "{refusal}"
    );
    assert_eq!(stack.stock(&sku).await.0, 54, "49 → 54, never 59");
    // The units typed are shown, not put back: one more click cannot record them.
    assert_eq!(browser.value("#receipt-units").await, "");
    browser.screenshot("stock-second-tab").await;
}

#[tokio::test]
async fn staff_read_a_dead_lettered_message_and_discard_it() {
    let stack = Stack::connect().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk().await);
    let queue = stack.resource("EmailOutboxDeadLetterQueue");
    let url = format!("{}/123456789012/{queue}", stack.emulator);
    let marker = unique("poison");
    sqs.send_message()
        .queue_url(&url)
        .message_body(json!({"marker": marker, "why": "a job no sender can send"}).to_string())
        .send()
        .await
        .unwrap();

    let before = depth(&sqs, &url).await;
    assert!(before >= 1);
    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-uma", "admin").await;
    browser.goto("/console/exceptions").await;
    browser.submit(&format!("#queue-{queue} a.read")).await;
    let cards = browser
        .client
        .find_all(Locator::Css("article.dead-letter"))
        .await
        .unwrap();
    let mut poison = None;
    for card in cards {
        if card.text().await.unwrap().contains(&marker) {
            poison = Some(card.attr("id").await.unwrap().unwrap());
        }
    }
    let poison = poison.expect("the message, readable before deciding");
    browser.screenshot("dead-letters").await;
    browser.submit(&format!("#{poison} button.discard")).await;
    assert_eq!(
        browser.text("#banner").await,
        "The message was discarded; it will not be tried again."
    );
    // Gone for good: the queue holds one message fewer than before it was read.
    assert_eq!(depth(&sqs, &url).await, before - 1, "{queue}");
    // A packer may not read the dead letters.
    let packer = stack.console_session("staff-vic", "warehouse").await;
    let (status, _) = packer
        .get(&format!("/console/exceptions/dead-letters/{queue}"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Every message of the queue at `url`, visible or held by a reader.
async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as Attribute;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(Attribute::All)
        .send()
        .await
        .unwrap();
    let count = |name: Attribute| {
        attributes
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    count(Attribute::ApproximateNumberOfMessages)
        + count(Attribute::ApproximateNumberOfMessagesNotVisible)
}

/// How many pages a PDF has: its page objects (`/Type /Page`, not the `/Type /Pages` tree).
fn pdf_pages(pdf: &[u8]) -> usize {
    let marker = b"/Type /Page";
    pdf.windows(marker.len() + 1)
        .filter(|w| w.starts_with(marker) && w[marker.len()] != b's')
        .count()
}

#[tokio::test]
async fn staff_find_orders_by_name_email_or_the_end_of_an_id_and_filter_the_open_ones() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("CONSOLEFIND", 5).await;
    // A name and an address no other test's order carries; accents and case as typed.
    let tag: String = unique("zq")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let place = |customer: String| {
        let stack = &stack;
        let mut body = order_body(&[(&sku, 1)]);
        body["shippingAddress"]["name"] = json!(format!("Jörg Müller{tag}"));
        body["contact"]["email"] = json!(format!("{tag}.mail@example.com"));
        body["contact"]["phone"] = json!("+4915112345678");
        async move {
            let placed = stack
                .call(
                    reqwest::Method::POST,
                    "/orders",
                    Some(&stack.token(&customer, None)),
                    &[("idempotency-key", &unique("key"))],
                    Some(body.to_string().into_bytes()),
                )
                .await;
            assert_eq!(placed.status, StatusCode::ACCEPTED, "{:?}", placed.body);
            let id = placed.body["orderId"].as_str().unwrap().to_owned();
            let decided = stack.wait_decided(&customer, &id).await;
            assert_eq!(decided["status"], "RESERVED", "{decided}");
            (id, placed.body)
        }
    };
    let customer = unique("customer");
    let (id, placed) = place(customer.clone()).await;
    stack.authorize(&placed).await;
    stack.wait_status(&customer, &id, "FULFILLING").await;

    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-ivy", "admin").await;
    for (what, typed) in [
        (
            "the e-mail, in another case",
            format!("{}.MAIL@Example.com", tag.to_uppercase()),
        ),
        (
            "the family name, without its accent",
            format!("muller{tag}"),
        ),
        ("the whole name", format!("jorg MÜLLER{tag}")),
        ("the end of the id", id[id.len() - 6..].to_lowercase()),
    ] {
        browser.goto("/console/orders").await;
        browser.fill("#search", &typed).await;
        browser.submit("#find").await;
        let rows = browser.text("#orders").await;
        assert!(
            rows.contains(&id),
            "{what} ({typed}) finds the order: {rows}"
        );
        // Its row: the customer, the payment and how long it has been in its status.
        let row = browser
            .client
            .find(Locator::XPath(&format!(
                "//table[@id='orders']//tr[td/a[text()='{id}']]"
            )))
            .await
            .expect("the order's row")
            .text()
            .await
            .unwrap();
        assert!(
            row.contains(&format!("Jörg Müller{tag}"))
                && row.contains(&customer)
                && row.contains("AUTHORIZED")
                && (row.contains(" s") || row.contains(" min")),
            "{row}"
        );
        assert!(
            !browser.path().await.contains(&tag),
            "what was typed stays out of the URL"
        );
    }
    browser.screenshot("orders-search").await;
    browser.goto("/console/orders").await;
    browser
        .fill("#search", &format!("nobody{tag}@example.com"))
        .await;
    browser.submit("#find").await;
    assert!(browser.body().await.contains("No orders."));

    // The same customer's second order, left unpaid: its page says when it expires (in the
    // business's time zone) and names the first.
    let (unpaid, _) = place(customer.clone()).await;
    browser.goto(&format!("/console/orders/{unpaid}")).await;
    let due = browser.text("#payment-due-by").await;
    assert!(
        due.contains(" CE") && due.contains("unless the customer pays"),
        "{due}"
    );
    assert!(browser.text("#other-orders").await.contains(&id));
    assert_eq!(browser.text("#customer-phone").await, "+4915112345678");

    // The queue opens on every open order; filters combine.
    browser.goto("/console/orders").await;
    assert!(browser.body().await.contains("All open orders"));
    browser
        .goto("/console/orders?status=OPEN&payment=PENDING&hold=held&location=BER-1")
        .await;
    let rows = browser
        .client
        .find_all(Locator::Css("#orders tbody tr"))
        .await
        .unwrap();
    assert!(!rows.is_empty(), "the unpaid order, or older ones");
    for row in rows {
        let text = row.text().await.unwrap();
        assert!(
            text.contains("PENDING") && text.contains("AWAITING_PAYMENT") && text.contains("BER-1"),
            "every row matches every filter: {text}"
        );
    }
    browser
        .goto("/console/orders?status=OPEN&payment=NOT_A_STATUS")
        .await;
    assert_eq!(
        browser.text("#message-title").await,
        "Please correct the form"
    );
    assert!(
        browser.text("nav").await.contains("Orders"),
        "the navigation stays"
    );
    // The age filter: an order placed seconds ago has not been open ten hours.
    browser
        .goto("/console/orders?status=OPEN&minAgeMinutes=600")
        .await;
    assert!(!browser.body().await.contains(&unpaid));
    assert!(!browser.body().await.contains(&id));
}

#[tokio::test]
async fn a_refused_form_comes_back_on_its_own_page_with_what_was_typed() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("CONSOLEREFILL", 3).await;
    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-jo", "admin").await;
    browser.goto(&format!("/console/inventory/{sku}")).await;
    // Seven written off where three are on hand: refused by the stock's rule.
    browser.fill("#write-off-form input[name=units]", "7").await;
    browser
        .fill("#write-off-form input[name=note]", "a pallet fell")
        .await;
    browser
        .click("#write-off-form select[name=reason] option[value=SHRINKAGE]")
        .await;
    browser.submit("#record-write-off").await;
    let refusal = browser.text("#form-refused").await;
    assert!(refusal.contains("Nothing was changed"), "{refusal}");
    assert!(
        browser.text("h1").await.contains(&sku),
        "the SKU's own page, not a page of its own"
    );
    assert_eq!(
        browser.value("#write-off-form input[name=units]").await,
        "7"
    );
    assert_eq!(
        browser.value("#write-off-form input[name=note]").await,
        "a pallet fell"
    );
    assert_eq!(
        browser.value("#write-off-form select[name=reason]").await,
        "SHRINKAGE"
    );
    assert_eq!(
        browser.value("#receipt-form input[name=units]").await,
        "",
        "the page's other forms are as they were"
    );
    assert_eq!(
        stack.stock(&sku).await,
        (3, 0, 3),
        "nothing was written off"
    );
    browser.screenshot("form-refused").await;
    // Corrected and sent again from the same page: done.
    browser.fill("#write-off-form input[name=units]", "2").await;
    browser.submit("#record-write-off").await;
    assert!(
        browser.path().await.contains("done="),
        "{}",
        browser.path().await
    );
    assert_eq!(stack.stock(&sku).await.0, 1);

    // A pack form the server refuses (sent without the browser's own checks, as a page
    // without them would send it): the warehouse screen again, the shipment's own form filled
    // with what was typed and the reason beside its field; nothing packed.
    let parcel = stack.create_sku("CONSOLEPACK", 3).await;
    let (_, order_id, _) = stack.order_in_warehouse(&[(&parcel, 1)]).await;
    let packer = Browser::open(&stack).await;
    packer.sign_in("packer-jo", "warehouse").await;
    packer
        .goto(&format!("/console/warehouse?order={order_id}"))
        .await;
    packer.submit("form.inline button.pick").await;
    packer
        .goto(&format!("/console/warehouse?order={order_id}"))
        .await;
    packer
        .client
        .execute(
            "document.querySelector('form.pack').noValidate = true;",
            vec![],
        )
        .await
        .unwrap();
    for (field, typed) in [
        ("weightGrams", "0"),
        ("lengthCm", "30"),
        ("widthCm", "20"),
        ("heightCm", "12"),
    ] {
        packer
            .fill(&format!("form.pack input[name={field}]"), typed)
            .await;
    }
    packer.submit("form.pack button").await;
    assert!(packer
        .text("#form-refused")
        .await
        .contains("Nothing was changed"));
    assert_eq!(packer.value("form.pack input[name=weightGrams]").await, "0");
    assert_eq!(packer.value("form.pack input[name=heightCm]").await, "12");
    let beside = packer.text("form.pack .field-error").await;
    assert!(
        beside.starts_with("weightGrams:"),
        "the reason beside the weight: {beside}"
    );
    let order = stack.order_as_staff(&order_id).await;
    assert_eq!(order["shipments"][0]["status"], "PICKED", "nothing packed");
    packer.screenshot("pack-refused").await;
}

#[tokio::test]
async fn a_packer_picks_several_shipments_at_once_and_prints_their_pick_list_and_slips() {
    let stack = Stack::connect().await;
    // A location of this test's own, so its pick list holds this test's shipments (and those
    // an earlier run left): one id for every run, kept open.
    let location = "TEST-BULK-1";
    let admin = stack.token("staff-bulk", Some("oms:admin"));
    let opened = stack
        .put(
            &format!("/locations/{location}"),
            &admin,
            &json!({
                "name": "Bulk test warehouse", "kind": "WAREHOUSE", "country": "DE",
                "postalCode": "04109", "zone": "domestic", "handlingDays": 1, "cutoffHourUtc": 15,
                "capabilities": {"ships": true, "pickup": false, "returns": false}, "priority": 900
            }),
        )
        .await;
    assert!(
        [StatusCode::CREATED, StatusCode::OK].contains(&opened.status),
        "{:?}",
        opened.body
    );
    // Every function reads the list again (LOCATIONS_CACHE_SECONDS, 2 s in the test stack).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let sku = stack.create_sku("CONSOLEBULK", 0).await;
    stack.receive_at(&sku, location, 20).await;
    let mut ids = Vec::new();
    for quantity in [1, 2, 1] {
        let (_, id, _) = stack.order_in_warehouse(&[(&sku, quantity)]).await;
        ids.push(id);
    }

    let browser = Browser::open(&stack).await;
    browser.sign_in("packer-gus", "warehouse").await;
    let ticked_all = format!("/console/warehouse?location={location}&select=AWAITING_PICK");
    browser.goto(&ticked_all).await;
    for id in &ids {
        let tick = browser
            .client
            .find(Locator::Css(&format!(
                "#shipment-{id}-1 input[name=shipment]"
            )))
            .await
            .unwrap();
        assert!(tick.is_selected().await.unwrap(), "{id} is ticked");
    }
    // The pick list of the ticked: every unit by SKU, each shipment to sort into, one A4 page.
    browser.submit("#bulk-pick-list").await;
    let items = browser.text("#pick-items").await;
    assert!(items.contains(&sku), "{items}");
    let sorted = browser.text("#pick-shipments").await;
    for id in &ids {
        assert!(sorted.contains(&format!("{id}-1")), "{sorted}");
    }
    let a4 = fantoccini::wd::PrintConfiguration::builder()
        .size(fantoccini::wd::PrintSize::A4)
        .build()
        .unwrap();
    let pdf = browser
        .client
        .print(a4.clone())
        .await
        .expect("the pick list printed");
    assert_eq!(pdf_pages(&pdf), 1, "one A4 page");
    std::fs::write(
        format!(
            "{}/../target/console-screenshots/pick-list.pdf",
            env!("CARGO_MANIFEST_DIR")
        ),
        &pdf,
    )
    .expect("keeping the printed pick list");
    browser.screenshot("pick-list").await;

    // All ticked, then one is picked elsewhere before the bulk pick: the rest are picked, that
    // one is left as it is now.
    browser.goto(&ticked_all).await;
    let shown = browser
        .client
        .find_all(Locator::Css("#section-AWAITING_PICK input[name=shipment]"))
        .await
        .unwrap()
        .len();
    stack.pick_pack_ship(&format!("{}-1", ids[0]), None).await;
    browser.submit("#bulk-pick-button").await;
    assert_eq!(
        browser.text("#banner").await,
        format!(
            "Picked {} of the {shown} selected shipments; the others changed since the page was \
             loaded (picked by someone else, moved or cancelled) and are shown as they are now.",
            shown - 1
        )
    );
    let warehouse = stack.token("warehouse-tests", Some("oms:warehouse"));
    for id in &ids[1..] {
        let shipment = stack
            .get(&format!("/fulfillments/{id}-1"), &warehouse)
            .await;
        assert_eq!(shipment.body["status"], "PICKED", "{id}");
    }
    assert!(
        !browser
            .text("#section-AWAITING_PICK")
            .await
            .contains(&ids[1]),
        "off the list to pick"
    );

    // Their packing slips, one per page.
    browser
        .goto(&format!(
            "/console/warehouse?location={location}&select=PICKED"
        ))
        .await;
    browser.submit("#bulk-slips-button").await;
    let slips = browser
        .client
        .find_all(Locator::Css("#slips .slip"))
        .await
        .unwrap()
        .len();
    assert!(slips >= 2, "{slips}");
    for id in &ids[1..] {
        assert!(browser.text(&format!("#slip-{id}-1")).await.contains(&sku));
    }
    let pdf = browser.client.print(a4).await.expect("the slips printed");
    assert_eq!(pdf_pages(&pdf), slips, "a page per slip");
    browser.screenshot("packing-slips").await;

    // Each pick is on the version its row showed: an older one picks nothing.
    let (_, waiting, _) = stack.order_in_warehouse(&[(&sku, 1)]).await;
    let shipment = stack
        .get(&format!("/fulfillments/{waiting}-1"), &warehouse)
        .await;
    let current = shipment.body["version"].as_u64().unwrap();
    let packer = stack.console_session("packer-gus", "warehouse").await;
    let older = format!("{waiting}-1@{}", current - 1);
    let (status, _) = packer
        .post(
            "/console/warehouse/bulk",
            &[("location", location), ("do", "pick"), ("shipment", &older)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let shipment = stack
        .get(&format!("/fulfillments/{waiting}-1"), &warehouse)
        .await;
    assert_eq!(
        shipment.body["status"], "AWAITING_PICK",
        "not picked on an older version"
    );
    // A location that is not one, and a staff member without the warehouse's scope: refused.
    let (status, _) = packer
        .post(
            "/console/warehouse/bulk",
            &[
                ("location", "NOWHERE-9"),
                ("do", "pick"),
                ("shipment", &older),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let customer = stack.console_session("customer-lou", "customer").await;
    let current = format!("{waiting}-1@{current}");
    let (status, _) = customer
        .post(
            "/console/warehouse/bulk",
            &[
                ("location", location),
                ("do", "pick"),
                ("shipment", &current),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = packer
        .post(
            "/console/warehouse/bulk",
            &[
                ("location", location),
                ("do", "pick"),
                ("shipment", &current),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let shipment = stack
        .get(&format!("/fulfillments/{waiting}-1"), &warehouse)
        .await;
    assert_eq!(
        shipment.body["status"], "PICKED",
        "picked on the version shown"
    );
}

#[tokio::test]
async fn every_screen_fits_a_phone_without_scrolling_sideways() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("CONSOLEPHONE", 5).await;
    let (_, id, _) = stack.order_in_warehouse(&[(&sku, 1)]).await;
    let browser = Browser::open_phone(&stack).await;
    browser.sign_in("staff-pia", "admin").await;
    let width = |browser: &Browser| {
        let client = browser.client.clone();
        async move {
            let measured = client
                .execute(
                    "const wide = [...document.querySelectorAll('body *')]
                       .filter(e => e.getBoundingClientRect().right > screen.width + 0.5)
                       .filter(e => !e.closest('table'))
                       .map(e => e.tagName + '.' + e.className + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right))
                       .slice(0, 5);
                     return [document.documentElement.scrollWidth, screen.width, wide.join('; ')];",
                    vec![],
                )
                .await
                .unwrap();
            (
                measured[0].as_u64().unwrap(),
                measured[1].as_u64().unwrap(),
                measured[2].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    // An approved return on its way, to be received on the warehouse screen.
    let (customer, delivered) = stack
        .delivered_order(&[(&sku, 1)], &chrono::Utc::now().to_rfc3339())
        .await;
    let delivered_id = delivered["orderId"].as_str().unwrap().to_owned();
    let opened = stack
        .post(
            &format!("/orders/{delivered_id}/returns"),
            &stack.token(&customer, None),
            &[("idempotency-key", &unique("return"))],
            json!({"lines": [{"sku": sku, "quantity": 1, "reason": "DAMAGED", "comment": "the seam split on the first wash"}]}),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{:?}", opened.body);
    let rma = opened.body["returnId"].as_str().unwrap().to_owned();
    let screens = [
        ("orders", "/console/orders".to_owned()),
        ("order", format!("/console/orders/{id}")),
        ("inventory", "/console/inventory".to_owned()),
        ("product", format!("/console/inventory/{sku}")),
        ("locations", "/console/locations".to_owned()),
        ("returns", "/console/returns".to_owned()),
        ("exceptions", "/console/exceptions".to_owned()),
        ("warehouse", "/console/warehouse".to_owned()),
        (
            "warehouse-shipment",
            format!("/console/warehouse?order={id}"),
        ),
        ("pick-list", "/console/warehouse/pick-list".to_owned()),
        ("packing-slip", format!("/console/warehouse/{id}-1/slip")),
        (
            "warehouse-return",
            format!("/console/warehouse?order={rma}"),
        ),
        ("not-found", "/console/no-such-screen".to_owned()),
        // A refusal: the shipment is worked at the location that holds its units.
        (
            "conflict",
            format!("/console/warehouse?order={id}&location=AMS-1"),
        ),
    ];
    // The states no other test pictures at a desktop's width, pictured here at both.
    let desktop = Browser::open(&stack).await;
    desktop.sign_in("staff-pia", "admin").await;
    let pictured_here = [
        "warehouse-shipment",
        "warehouse-return",
        "not-found",
        "conflict",
    ];
    for (name, path) in screens {
        browser.goto(&path).await;
        let (scrolled, viewport, wide) = width(&browser).await;
        assert_eq!(viewport, 390, "a phone's width");
        assert!(
            scrolled <= viewport,
            "{path} is {scrolled} px wide on a {viewport} px phone: {wide}"
        );
        browser.screenshot(&format!("{name}-phone")).await;
        if pictured_here.contains(&name) {
            desktop.goto(&path).await;
            desktop.screenshot(name).await;
        }
    }
    assert!(
        browser.body().await.contains("switch to BER-1"),
        "the refusal says where to go"
    );
    // A page that does not exist keeps the navigation and leads home.
    browser.goto("/console/no-such-screen").await;
    assert_eq!(browser.text("#message-title").await, "Not found");
    assert!(browser.text("nav").await.contains("Exceptions"));
    browser.submit("#back-home").await;
    assert_eq!(browser.path().await, "/console/orders");
    // The stylesheet, linked by its digest, is kept a year: fetched once, not with every page.
    let sheet = browser
        .client
        .find(Locator::Css("link[rel=stylesheet]"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .expect("the stylesheet's address");
    let fetched = reqwest::get(format!("{}{sheet}", stack.api)).await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(
        fetched.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    // A search's answer, and a packer's refusal of an administrator's screen.
    browser.goto("/console/orders").await;
    browser.fill("#search", &id[id.len() - 6..]).await;
    browser.submit("#find").await;
    assert!(browser.body().await.contains(&id));
    let (scrolled, viewport, wide) = width(&browser).await;
    assert!(scrolled <= viewport, "a search: {scrolled} px: {wide}");
    browser.screenshot("orders-search-phone").await;
    let packer = Browser::open_phone(&stack).await;
    packer.sign_in("packer-pat", "warehouse").await;
    packer.goto("/console/orders").await;
    assert_eq!(packer.text("#message-title").await, "Not allowed");
    let (scrolled, viewport, wide) = width(&packer).await;
    assert!(scrolled <= viewport, "a refusal: {scrolled} px: {wide}");
    packer.screenshot("forbidden-phone").await;
    // A dead-letter queue's messages: one no other test reads (reading holds them a minute).
    let quiet = stack.resource("NotifierDeadLetterQueue");
    browser
        .goto(&format!("/console/exceptions/dead-letters/{quiet}"))
        .await;
    let (scrolled, viewport, wide) = width(&browser).await;
    assert!(
        scrolled <= viewport,
        "a dead-letter queue: {scrolled} px: {wide}"
    );
    browser.screenshot("dead-letters-phone").await;
}

/// Customer service calls off two of an order's three units on its page: the stock is back, the
/// total shrinks, the page lists the change; the same form sent again after the back button
/// changes nothing more, and a form from a second tab that showed the order before is refused.
#[tokio::test]
async fn staff_cancel_some_units_of_an_order_from_its_page_once() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("CONSOLEUNITS", 5).await;
    let (_, id, placed) = stack.order_in_warehouse(&[(&sku, 3)]).await;
    assert_eq!(stack.stock(&sku).await, (2, 3, 5));
    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-uma", "admin").await;
    let path = format!("/console/orders/{id}");
    browser.goto(&path).await;
    let first = browser.client.window().await.unwrap();
    let second = browser.client.new_window(true).await.unwrap().handle;
    browser
        .client
        .switch_to_window(second.clone())
        .await
        .unwrap();
    browser.goto(&path).await;
    browser.client.switch_to_window(first).await.unwrap();

    let field = format!("#units-{sku}");
    browser.fill(&field, "2").await;
    browser
        .fill("#cancel-units-reason", "the customer wants one")
        .await;
    browser.submit("#cancel-units").await;
    assert!(browser.path().await.contains("done="));
    let listed = browser.text("#unit-cancellations").await;
    assert!(listed.contains(&format!("2 × {sku}")), "{listed}");
    assert!(listed.contains("the customer wants one"), "{listed}");
    let order = stack.order_as_staff(&id).await;
    assert_eq!(order["lines"][0]["quantity"], 1);
    let before = placed["totals"]["total"]["amount"].as_i64().unwrap();
    let after = order["totals"]["total"]["amount"].as_i64().unwrap();
    assert!(after < before, "{after} < {before}");
    assert_eq!(stack.stock(&sku).await, (4, 1, 5), "two units back");
    browser
        .client
        .execute(
            "document.getElementById('units-cancelled-h').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    browser.screenshot("cancel-units").await;

    // The sent form again, from the back-forward cache: recorded once.
    browser.client.back().await.unwrap();
    browser.fill(&field, "2").await;
    browser
        .fill("#cancel-units-reason", "the customer wants one")
        .await;
    browser.submit("#cancel-units").await;
    assert_eq!(stack.stock(&sku).await, (4, 1, 5), "the same form, once");
    assert_eq!(
        stack.order_as_staff(&id).await["unitCancellations"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The second tab showed the order before: its form is refused, nothing changed.
    browser.client.switch_to_window(second).await.unwrap();
    browser.fill(&field, "1").await;
    browser.fill("#cancel-units-reason", "again").await;
    browser.submit("#cancel-units").await;
    let refusal = browser.text("#form-refused").await;
    assert!(refusal.contains("Nothing was changed"), "{refusal}");
    assert_eq!(stack.stock(&sku).await, (4, 1, 5));
}

/// Staff change where an order goes from its page: an unserved method to the new country is
/// refused naming it; to France by STANDARD it costs more, so the order waits for the
/// customer's authorization of the new total (off the pick list); the same form sent again, or
/// from a tab that showed the order before, changes nothing more.
#[tokio::test]
async fn staff_change_where_an_order_ships_from_its_page_once() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("CONSOLEEDIT", 5).await;
    let (_, id, placed) = stack.order_in_warehouse(&[(&sku, 1)]).await;
    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-eve", "admin").await;
    let path = format!("/console/orders/{id}");
    browser.goto(&path).await;
    let first = browser.client.window().await.unwrap();
    let second = browser.client.new_window(true).await.unwrap().handle;
    browser
        .client
        .switch_to_window(second.clone())
        .await
        .unwrap();
    browser.goto(&path).await;
    browser.client.switch_to_window(first).await.unwrap();

    // OVERNIGHT goes nowhere outside Germany: refused, naming the country, nothing changed.
    let version = stack.order_as_staff(&id).await["version"].clone();
    browser.click("#edit-method option[value=OVERNIGHT]").await;
    browser.fill("#edit-line1", "12 Rue de Rivoli").await;
    browser.fill("#edit-city", "Paris").await;
    browser.fill("#edit-postal-code", "75001").await;
    browser.fill("#edit-country", "FR").await;
    browser.fill("#edit-reason", "the customer moved").await;
    browser.submit("#edit").await;
    let body = browser.body().await;
    assert!(body.contains("does not ship to FR"), "{body}");
    assert_eq!(stack.order_as_staff(&id).await["version"], version);

    // By STANDARD: dearer, so the order waits for the customer's new authorization.
    browser.goto(&path).await;
    browser.click("#edit-method option[value=STANDARD]").await;
    browser.fill("#edit-line1", "12 Rue de Rivoli").await;
    browser.fill("#edit-city", "Paris").await;
    browser.fill("#edit-postal-code", "75001").await;
    browser.fill("#edit-country", "FR").await;
    browser.fill("#edit-reason", "the customer moved").await;
    browser.submit("#edit").await;
    assert!(browser.path().await.contains("done="));
    let listed = browser.text("#edits").await;
    assert!(listed.contains("DE → FR"), "{listed}");
    assert!(listed.contains("AWAITING_PAYMENT"), "{listed}");
    assert!(browser
        .text("#order-status")
        .await
        .contains("EDIT_AWAITING_PAYMENT"));
    assert!(
        !browser.body().await.contains("id=\"cancel-units-form\""),
        "no units are called off while an edit waits for its payment"
    );
    let order = stack.order_as_staff(&id).await;
    assert_eq!(order["shipping"]["address"]["country"], "FR");
    let before = placed["totals"]["total"]["amount"].as_i64().unwrap();
    let after = order["totals"]["total"]["amount"].as_i64().unwrap();
    assert!(after > before, "{after} > {before}");
    browser
        .client
        .execute(
            "document.getElementById('edits-h').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    browser.screenshot("edit").await;

    // The sent form again, from the back-forward cache: recorded once.
    browser.client.back().await.unwrap();
    browser.submit("#edit").await;
    assert_eq!(
        stack.order_as_staff(&id).await["edits"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The second tab showed the order before: its form is refused, nothing changed.
    browser.client.switch_to_window(second).await.unwrap();
    browser.fill("#edit-reason", "again").await;
    browser.submit("#edit").await;
    let refusal = browser.text("#form-refused").await;
    assert!(refusal.contains("Nothing was changed"), "{refusal}");
    assert_eq!(
        stack.order_as_staff(&id).await["edits"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// A page opened with no session (or one that ran out mid-task) signs in and comes back to
/// that page, not to the home screen; a page elsewhere is never come back to.
#[tokio::test]
async fn a_page_opened_without_a_session_is_opened_again_once_signed_in() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("SIGNIN", 3).await;
    let browser = Browser::open(&stack).await;
    let page = format!("/console/inventory/{sku}?history=");
    let landed = browser.sign_in_at(&page, "staff-back", "admin").await;
    assert_eq!(landed, page, "back where the sign-in started");
    assert!(browser.body().await.contains(&sku));
}

/// Staff let a SKU be backordered from its page, see the orders waiting for it oldest first,
/// and the delivery they record on its purchase order fills them: the order goes to the
/// warehouse.
#[tokio::test]
async fn staff_allow_backorders_see_the_waiting_orders_and_a_delivery_fills_them() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("CONSOLEBACK", 1).await;
    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-bo", "admin").await;
    let page = format!("/console/inventory/{sku}");
    browser.goto(&page).await;
    assert!(browser
        .text("#selling")
        .await
        .contains("Only what is available"));
    browser
        .click("#selling-policy option[value=BACKORDER]")
        .await;
    browser.fill("#selling-limit", "5").await;
    browser.submit("#save-selling").await;
    assert!(browser.path().await.contains("done="));
    assert!(browser
        .body()
        .await
        .contains("The selling policy was saved"));
    assert!(
        browser.text("#selling").await.contains("up to 5 units"),
        "{}",
        browser.text("#selling").await
    );

    // An order of three: one in stock, two wait.
    let customer = unique("customer");
    let placed = stack
        .place_then_pay(&customer, &unique("key"), &[(&sku, 3)])
        .await;
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let reserved = stack.wait_decided(&customer, &id).await;
    assert_eq!(reserved["status"], "RESERVED");
    assert_eq!(reserved["hold"], "BACKORDERED");
    browser.goto(&page).await;
    assert_eq!(browser.text("#backordered").await, "2");
    assert!(browser.text("#waiting-orders").await.contains(&id));
    browser.screenshot("backorders").await;
    browser.goto(&format!("/console/orders/{id}")).await;
    assert!(browser.text("#order-status").await.contains("BACKORDERED"));
    assert!(browser.body().await.contains("2 waiting for stock"));
    // The backorder queue: every order waiting for stock, with what it waits for.
    browser.goto("/console/orders").await;
    browser.click("#backorder-queue").await;
    let row = browser.text(&format!("#order-{id}")).await;
    assert!(row.contains("2 waiting"), "{row}");

    // Two are ordered from the supplier and arrive: the order goes to the warehouse.
    let admin = stack.token("staff-bo", Some("oms:admin"));
    let next_week = (chrono::Utc::now() + chrono::Duration::days(7)).date_naive();
    let po = stack
        .post(
            &format!("/inventory/{sku}/purchase-orders"),
            &admin,
            &[("idempotency-key", &unique("po"))],
            json!({"quantity": 2, "expectedOn": next_week.to_string()}),
        )
        .await;
    assert_eq!(po.status, StatusCode::CREATED, "{:?}", po.body);
    let po = po.body["id"].as_str().unwrap().to_owned();
    browser.goto(&page).await;
    browser.fill(&format!("#arrived-{po}"), "2").await;
    browser.submit(&format!("#receive-{po}")).await;
    assert!(browser.path().await.contains("done="));
    stack.wait_status(&customer, &id, "FULFILLING").await;
    browser.goto(&page).await;
    assert!(
        !browser.body().await.contains("id=\"waiting-orders\""),
        "no one waits any more"
    );
    browser.goto("/console/orders?hold=waiting").await;
    assert!(
        !browser.body().await.contains(&id),
        "out of the backorder queue"
    );
    assert_eq!(stack.stock(&sku).await, (0, 3, 3));
}

/// Staff tick "send what is in stock now" on the page of a paid order waiting whole for a
/// backordered unit: one edit; the page then says the order ships what is there, lists the
/// edit, and no longer offers it.
#[tokio::test]
async fn staff_send_what_is_in_stock_ahead_from_an_orders_page() {
    let stack = Stack::connect().await;
    let sku = stack.create_sku("CONSOLEAHEAD", 1).await;
    stack.sell_past_stock(&sku, 5).await;
    let customer = unique("customer");
    let placed = stack
        .place_then_pay(&customer, &unique("key"), &[(&sku, 2)])
        .await;
    let id = placed.body["orderId"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while stack.order_as_staff(&id).await["payment"]["status"] != "AUTHORIZED" {
        assert!(Instant::now() < deadline, "never authorized");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let browser = Browser::open(&stack).await;
    browser.sign_in("staff-eve", "admin").await;
    let path = format!("/console/orders/{id}");
    browser.goto(&path).await;
    browser.click("#edit-ship-ahead").await;
    browser
        .fill("#edit-reason", "the customer asked by phone")
        .await;
    browser.submit("#edit").await;
    assert!(browser.path().await.contains("done="));
    let listed = browser.text("#edits").await;
    assert!(listed.contains("what is in stock sent ahead"), "{listed}");
    let started = stack.wait_status(&customer, &id, "FULFILLING").await;
    assert_eq!(started["shipping"]["shipComplete"], false);
    assert_eq!(started["lines"][0]["backordered"], 1);
    browser.goto(&path).await;
    assert!(browser
        .text("#ships-ahead")
        .await
        .contains("What is in stock ships first"));
    assert!(
        !browser
            .body()
            .await
            .contains("Send what is in stock now; the backordered units follow"),
        "offered while it waits whole only"
    );
    assert_eq!(
        stack.order_as_staff(&id).await["edits"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
