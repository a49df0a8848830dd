//! Pub/Sub: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, PUBSUB.
//!
//! Messages travel to subscribers through a bounded per-client queue; a
//! subscriber that falls too far behind is disconnected instead of letting
//! its backlog grow without limit (Redis's pub/sub output buffer limit).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{CmdResult, Ctx, err, name_of};
use std::sync::Arc;

use crate::store::client::{ClientHandle, PushMsg, Pushed};
use crate::store::glob;

/// Subscription registry.
#[derive(Default)]
pub struct PubSub {
    channels: HashMap<Bytes, HashMap<u64, Arc<ClientHandle>>>,
    patterns: HashMap<Bytes, HashMap<u64, Arc<ClientHandle>>>,
}

impl PubSub {
    /// Number of channels with subscribers.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Number of distinct subscribed patterns.
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Drops every subscription of a client.
    pub fn remove_client(&mut self, id: u64, subs: &HashSet<Bytes>, psubs: &HashSet<Bytes>) {
        for (map, set) in [(&mut self.channels, subs), (&mut self.patterns, psubs)] {
            for c in set {
                if let Some(m) = map.get_mut(c) {
                    m.remove(&id);
                    if m.is_empty() {
                        map.remove(c);
                    }
                }
            }
        }
    }

    /// Unsubscribes every client of `user` holding a subscription that
    /// `allowed(channel, is_pattern)` no longer grants, from everything it
    /// is subscribed to, and returns those clients, which the caller
    /// disconnects (Redis closes them).
    pub fn revoke(
        &mut self,
        user: &str,
        allowed: impl Fn(&[u8], bool) -> bool,
    ) -> Vec<Arc<ClientHandle>> {
        let mut lost: HashMap<u64, Arc<ClientHandle>> = HashMap::new();
        for (map, pattern) in [(&self.channels, false), (&self.patterns, true)] {
            for (name, subs) in map {
                for (id, h) in subs {
                    if !lost.contains_key(id) && *h.user.lock() == user && !allowed(name, pattern) {
                        lost.insert(*id, h.clone());
                    }
                }
            }
        }
        if !lost.is_empty() {
            for map in [&mut self.channels, &mut self.patterns] {
                map.retain(|_, subs| {
                    subs.retain(|id, _| !lost.contains_key(id));
                    !subs.is_empty()
                });
            }
        }
        lost.into_values().collect()
    }

    /// Delivers a message; returns the number of receivers. Returns the ids
    /// of clients whose queue overflowed (more than `limit` bytes pending)
    /// so the caller can disconnect them.
    ///
    /// Messages for the publisher itself (`me`, a RESP3 client subscribed to
    /// what it publishes) are returned rather than queued, so that it can
    /// write them ahead of PUBLISH's reply, in Redis's order.
    pub fn publish(
        &self,
        channel: &Bytes,
        data: &Bytes,
        limit: usize,
        me: u64,
    ) -> (usize, Vec<u64>, Vec<PushMsg>) {
        let mut n = 0;
        let mut overflow = Vec::new();
        let mut mine = Vec::new();
        let mut send = |id: u64, h: &ClientHandle, m: PushMsg| {
            if id == me {
                n += 1;
                mine.push(m);
                return;
            }
            match h.try_push(m, limit) {
                Pushed::Queued => n += 1,
                Pushed::Overflow => overflow.push(id),
                Pushed::Gone => {}
            }
        };
        if let Some(subs) = self.channels.get(channel) {
            for (id, tx) in subs {
                send(
                    *id,
                    tx,
                    PushMsg::Message {
                        channel: channel.clone(),
                        data: data.clone(),
                    },
                );
            }
        }
        for (pat, subs) in &self.patterns {
            if glob::matches(pat, channel) {
                for (id, tx) in subs {
                    send(
                        *id,
                        tx,
                        PushMsg::PMessage {
                            pattern: pat.clone(),
                            channel: channel.clone(),
                            data: data.clone(),
                        },
                    );
                }
            }
        }
        (n, overflow, mine)
    }
}

fn confirm(ctx: &mut Ctx<'_, '_>, kind: &[u8], chan: Option<&[u8]>) {
    let count = ctx.client.subs.len() + ctx.client.psubs.len();
    ctx.keep_reply = true;
    ctx.out.push(3);
    ctx.out.bulk(kind);
    match chan {
        Some(c) => ctx.out.bulk(c),
        None => ctx.out.null(),
    }
    ctx.out.int(count as i64);
}

/// SUBSCRIBE / UNSUBSCRIBE / PSUBSCRIBE / PUNSUBSCRIBE
pub fn subscribe(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let name = name_of(args);
    let pattern = name.starts_with('p');
    let id = ctx.client.handle.id;
    let handle = ctx.client.handle.clone();
    if name.ends_with("unsubscribe") {
        let targets: Vec<Bytes> = if args.len() > 1 {
            args[1..].to_vec()
        } else if pattern {
            ctx.client.psubs.iter().cloned().collect()
        } else {
            ctx.client.subs.iter().cloned().collect()
        };
        let kind: &[u8] = if pattern {
            b"punsubscribe"
        } else {
            b"unsubscribe"
        };
        if targets.is_empty() {
            confirm(ctx, kind, None);
        }
        for t in targets {
            let set = if pattern {
                &mut ctx.client.psubs
            } else {
                &mut ctx.client.subs
            };
            if set.remove(&t) {
                let one: HashSet<Bytes> = [t.clone()].into_iter().collect();
                let empty = HashSet::new();
                let mut ps = ctx.shared.pubsub.lock();
                if pattern {
                    ps.remove_client(id, &empty, &one);
                } else {
                    ps.remove_client(id, &one, &empty);
                }
            }
            confirm(ctx, kind, Some(&t));
        }
    } else {
        let kind: &[u8] = if pattern { b"psubscribe" } else { b"subscribe" };
        for t in &args[1..] {
            // Own copy: a slice would keep the whole request buffer alive.
            let t = &Bytes::copy_from_slice(t);
            let newly = if pattern {
                ctx.client.psubs.insert(t.clone())
            } else {
                ctx.client.subs.insert(t.clone())
            };
            if newly {
                let mut ps = ctx.shared.pubsub.lock();
                let map = if pattern {
                    &mut ps.patterns
                } else {
                    &mut ps.channels
                };
                map.entry(t.clone()).or_default().insert(id, handle.clone());
            }
            confirm(ctx, kind, Some(t));
        }
    }
    let h = &ctx.client.handle;
    h.subs.store(
        ctx.client.subs.len() + ctx.client.psubs.len(),
        Ordering::Relaxed,
    );
    h.psubs.store(ctx.client.psubs.len(), Ordering::Relaxed);
    Ok(())
}

/// PUBLISH channel message
pub fn publish(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    // Copies: queued messages must not pin the publisher's read buffer.
    let channel = Bytes::copy_from_slice(&args[1]);
    let data = Bytes::copy_from_slice(&args[2]);
    // The publisher enforces only the hard limit; the soft one needs time
    // and is the subscriber's own connection's business.
    let limit = ctx.shared.config.output_buffer_limit_pubsub.hard_bytes();
    let me = ctx.client.handle.id;
    let (n, overflow, mine) = ctx.shared.pubsub.lock().publish(&channel, &data, limit, me);
    // Exactly where Redis writes them, inside an EXEC reply array too:
    // RESP3 clients take push frames wherever they arrive.
    for m in &mine {
        crate::store::connection::encode_push(ctx.out.buf, ctx.out.resp3, m);
    }
    if !overflow.is_empty() {
        let clients = ctx.shared.clients.lock();
        for id in overflow {
            if let Some(h) = clients.get(&id) {
                tracing::warn!(client = id, "pub/sub backlog limit reached, closing");
                ctx.shared.audit.event(
                    "client_output_buffer_limit",
                    h.addr.ip(),
                    serde_json::json!({
                        "client": id,
                        "class": "pubsub",
                        "pending": h.push_bytes.load(Ordering::Relaxed),
                        "limit": limit,
                    }),
                );
                h.kill();
            }
        }
    }
    ctx.out.int(n as i64);
    Ok(())
}

/// PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT | HELP
pub fn pubsub(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let ps = ctx.shared.pubsub.lock();
    match sub.as_str() {
        "channels" if args.len() <= 3 => {
            let mut v: Vec<&Bytes> = ps
                .channels
                .keys()
                .filter(|c| args.get(2).is_none_or(|p| glob::matches(p, c)))
                .collect();
            v.sort();
            ctx.out.array(v.len());
            for c in v {
                ctx.out.bulk(c);
            }
        }
        "numsub" => {
            // A flat array even in RESP3, as Redis 7.0 replies (clients
            // such as redis-py parse it pairwise).
            ctx.out.array((args.len() - 2) * 2);
            for c in &args[2..] {
                ctx.out.bulk(c);
                ctx.out
                    .int(ps.channels.get(c).map(|m| m.len()).unwrap_or(0) as i64);
            }
        }
        "numpat" if args.len() == 2 => ctx.out.int(ps.patterns.len() as i64),
        "help" => {
            ctx.out.array(4);
            ctx.out
                .simple("PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
            ctx.out.simple("CHANNELS [<pattern>]");
            ctx.out.simple("NUMPAT");
            ctx.out.simple("NUMSUB [<channel> ...]");
        }
        "numpat" => {
            return Err(err("wrong number of arguments for 'pubsub|numpat' command"));
        }
        "channels" => {
            return Err(err(format!(
                "unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
                String::from_utf8_lossy(&args[1])
            )));
        }
        _ => {
            return Err(super::unknown_subcommand(&args[1], "pubsub"));
        }
    }
    Ok(())
}
