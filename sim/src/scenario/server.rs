//! The extent server: one per storage node, one store per disk, serving Put and Get over the network.
//!
//! Boot: each disk is formatted the first time (until a format has completed: the provisioning flag is
//! the operator's knowledge, kept outside the node) and opened, with crash recovery, on every later
//! boot. A disk whose store fails to open stays out of service; its acknowledged extents then fail
//! the liveness check, as they should. Requests are served one at a time, in arrival order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tessera_env::{Net, Rng};

use super::store::{ExtentStore, StoreKind};
use super::wire::{ExtentRef, Message};
use crate::cluster::NodeEnv;

/// Per-disk "format completed" flags of one node, shared across its boots.
pub type Provisioned = Arc<Vec<AtomicBool>>;

pub async fn serve(env: NodeEnv, kind: StoreKind, cluster_id: u128, provisioned: Provisioned) {
    let NodeEnv { id, disks, net, mut rng, trace, .. } = env;
    let source = id.to_string();
    let mut stores: Vec<Option<ExtentStore>> = Vec::new();
    for (i, disk) in disks.into_iter().enumerate() {
        let device_id = (u128::from(id.0) << 32) | i as u128;
        let opened = if provisioned[i].load(Ordering::Relaxed) {
            ExtentStore::open(kind, disk).await
        } else {
            let formatted = ExtentStore::format(kind, disk, cluster_id, device_id).await;
            if formatted.is_ok() {
                provisioned[i].store(true, Ordering::Relaxed);
            }
            formatted
        };
        match opened {
            Ok(store) => {
                trace.record(&source, format_args!("disk{i}: store ready, {} extents", store.extent_count()));
                stores.push(Some(store));
            }
            Err(e) => {
                trace.record(&source, format_args!("disk{i}: store unavailable: {e}"));
                stores.push(None);
            }
        }
    }
    loop {
        let Ok((from, bytes)) = net.recv().await else { return };
        let Some(request) = Message::decode(&bytes) else {
            trace.record(&source, format_args!("malformed request from {from}"));
            continue;
        };
        let reply = match request {
            Message::Put { req_id, data } => {
                let usable: Vec<usize> = (0..stores.len()).filter(|&i| stores[i].is_some()).collect();
                if usable.is_empty() {
                    Message::PutErr { req_id, reason: "no usable disk".into() }
                } else {
                    let disk = usable[rng.below(usable.len() as u64) as usize];
                    let store = stores[disk].as_mut().expect("usable");
                    match store.write_extent(&data).await {
                        Ok(extent) => Message::PutOk { req_id, at: ExtentRef { disk: disk as u32, extent } },
                        Err(reason) => Message::PutErr { req_id, reason },
                    }
                }
            }
            Message::Get { req_id, at } => match stores.get(at.disk as usize) {
                Some(Some(store)) => match store.read_extent(at.extent).await {
                    Ok(data) => Message::GetOk { req_id, data },
                    Err(reason) => Message::GetErr { req_id, reason },
                },
                _ => Message::GetErr { req_id, reason: format!("disk{} has no usable store", at.disk) },
            },
            other => {
                trace.record(&source, format_args!("unexpected {other:?} from {from}"));
                continue;
            }
        };
        trace.record(&source, format_args!("reply to {from}: {}", describe(&reply)));
        // A lost reply is the client's problem (it retries); a closed endpoint means we are stopping.
        if net.send(from, reply.encode()).await.is_err() {
            return;
        }
    }
}

fn describe(m: &Message) -> String {
    match m {
        Message::PutOk { req_id, at } => format!("PutOk #{req_id} {at}"),
        Message::PutErr { req_id, reason } => format!("PutErr #{req_id} {reason}"),
        Message::GetOk { req_id, data } => format!("GetOk #{req_id} {} bytes", data.len()),
        Message::GetErr { req_id, reason } => format!("GetErr #{req_id} {reason}"),
        other => format!("{other:?}"),
    }
}
