//! `chorus health`: ask a server how it is and print it.

use std::time::Duration;

use anyhow::{Result, bail};
use chorus_client::{Client, ClientConfig, ClientError};

use crate::args::ConnectArgs;
use crate::target::DEFAULT_URL;

pub(crate) async fn run(args: ConnectArgs) -> Result<()> {
    let url = args.url.clone().unwrap_or_else(|| DEFAULT_URL.to_owned());
    let client =
        Client::new(ClientConfig { url, api_key: args.api_key, timeout: Some(Duration::from_secs(args.timeout)) })?;
    let h = match client.health().await {
        Ok(h) => h,
        Err(e @ (ClientError::Unreachable { .. } | ClientError::Timeout { .. })) => {
            bail!("{e}; start one with `chorus serve`, or pass --url")
        }
        Err(e) => return Err(e.into()),
    };
    println!("status:   {}", h.status);
    println!("url:      {}", client.url());
    println!("model:    {}", h.model);
    println!("uptime:   {}s", h.uptime_s);
    println!("version:  {}", h.version);
    println!("slots:    {} busy / {} total, {} queued", h.slots.busy, h.slots.total, h.slots.queued);
    println!("decode:   {} steps, at most {} sequences in one step", h.decode.steps, h.decode.max_sequences);
    Ok(())
}
