//! The floor: the smallest Lambda function `lambda_runtime` makes, built with the same release
//! profile as the real ones. Its cold start, memory and package size are what no function here
//! can beat; the benchmark reports every function as a ratio to them.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(event.payload) },
    ))
    .await
}
