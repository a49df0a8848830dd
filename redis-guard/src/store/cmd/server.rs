//! Server commands: INFO, DBSIZE, TIME, COMMAND, CONFIG GET, MEMORY, FLUSH*, SWAPDB,
//! SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE, ...
//!
//! `CONFIG` is read-only on purpose: changing `dir`, saving to arbitrary
//! paths and similar features are classic Redis attack vectors.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::connection::REDIS_VERSION;
use super::{COMMANDS, CmdError, CmdResult, Command, Ctx, err, int_arg, is, lookup};
use crate::store::cmdstats::Totals;
use crate::store::frame::Out;
use crate::store::glob;
use crate::store::keyspace::Db;
use crate::store::persist::{self, Started};
use crate::store::value::{
    HASH_PACKED_MAX_ENTRIES, INTSET_MAX_ENTRIES, PACKED_MAX_ENTRIES, PACKED_MAX_ITEM,
};

/// DBSIZE
pub fn dbsize(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> CmdResult {
    let n = ctx.db().len();
    ctx.out.int(n as i64);
    Ok(())
}

/// TIME
pub fn time(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> CmdResult {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ctx.out.array(2);
    ctx.out.bulk(d.as_secs().to_string().as_bytes());
    ctx.out.bulk(d.subsec_micros().to_string().as_bytes());
    Ok(())
}

/// LASTSAVE
pub fn lastsave(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> CmdResult {
    let t = ctx.shared.persist.lastsave.load(Ordering::Relaxed);
    ctx.out.int(t as i64);
    Ok(())
}

/// Starts a snapshot; `wait` blocks this client until it is durable.
fn snapshot_now(ctx: &mut Ctx<'_, '_>, what: &str, wait: bool) -> Result<Started, CmdError> {
    if ctx.in_exec {
        // EXEC holds the keyspace lock, and the snapshot needs the log
        // writer's lock first.
        return Err(err(format!("{what} is not allowed inside MULTI/EXEC")));
    }
    // Lock order is log writer, then keyspace: let go of the keyspace.
    ctx.guard = None;
    persist::compact(ctx.shared, wait, what != "BGREWRITEAOF").map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "{what} failed");
        err(format!("{what} failed: {e:#}"))
    })
}

/// Whether the background work now running is a snapshot (else a rewrite).
fn saving(ctx: &Ctx<'_, '_>) -> bool {
    ctx.shared.persist.bg_is_save.load(Ordering::Relaxed)
}

/// SAVE
pub fn save(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> CmdResult {
    let mut started = snapshot_now(ctx, "SAVE", true)?;
    // Redis saves even while an AOF rewrite runs; here both are the same
    // compaction, so SAVE (blocking anyway) waits for the rewrite to end and
    // then saves. Only a save already running refuses it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while started == Started::Busy && !saving(ctx) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
        started = snapshot_now(ctx, "SAVE", true)?;
    }
    match started {
        Started::Yes => ctx.out.ok(),
        Started::Busy => return Err(err("Background save already in progress")),
    }
    Ok(())
}

/// BGSAVE [SCHEDULE]
pub fn bgsave(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let schedule = match args.len() {
        1 => false,
        2 if is(&args[1], "schedule") => true,
        _ => return Err(CmdError::Syntax),
    };
    // EXEC holds the data lock the snapshot needs: as in Redis, a BGSAVE
    // inside a transaction is scheduled and starts once it is over.
    if ctx.in_exec {
        if ctx.shared.persist.bg_in_progress.load(Ordering::Relaxed) && saving(ctx) {
            return Err(err("Background save already in progress"));
        }
        persist::schedule(ctx.shared, true);
        ctx.out.simple("Background saving scheduled");
        return Ok(());
    }
    match snapshot_now(ctx, "BGSAVE", false)? {
        Started::Yes => ctx.out.simple("Background saving started"),
        Started::Busy if saving(ctx) => {
            return Err(err("Background save already in progress"));
        }
        Started::Busy if schedule => {
            persist::schedule(ctx.shared, true);
            ctx.out.simple("Background saving scheduled");
        }
        Started::Busy => {
            return Err(err(
                "Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.",
            ));
        }
    }
    Ok(())
}

/// BGREWRITEAOF: a compaction (new snapshot plus a fresh log tail).
pub fn bgrewriteaof(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> CmdResult {
    if ctx.in_exec {
        if ctx.shared.persist.bg_in_progress.load(Ordering::Relaxed) && !saving(ctx) {
            return Err(err(
                "Background append only file rewriting already in progress",
            ));
        }
        persist::schedule(ctx.shared, false);
        ctx.out
            .simple("Background append only file rewriting scheduled");
        return Ok(());
    }
    match snapshot_now(ctx, "BGREWRITEAOF", false)? {
        Started::Yes => ctx
            .out
            .simple("Background append only file rewriting started"),
        Started::Busy if !saving(ctx) => {
            return Err(err(
                "Background append only file rewriting already in progress",
            ));
        }
        Started::Busy => {
            persist::schedule(ctx.shared, false);
            ctx.out
                .simple("Background append only file rewriting scheduled");
        }
    }
    Ok(())
}

/// ROLE
pub fn role(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> CmdResult {
    ctx.out.array(3);
    ctx.out.bulk(b"master");
    ctx.out.int(0);
    ctx.out.array(0);
    Ok(())
}

fn flush_mode(args: &[Bytes]) -> CmdResult {
    match args.len() {
        1 => Ok(()),
        2 if is(&args[1], "async") || is(&args[1], "sync") => Ok(()),
        _ => Err(CmdError::Syntax),
    }
}

/// FLUSHDB [ASYNC|SYNC]
pub fn flushdb(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    flush_mode(args)?;
    ctx.db().clear();
    ctx.out.ok();
    Ok(())
}

/// FLUSHALL [ASYNC|SYNC]
pub fn flushall(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    flush_mode(args)?;
    for db in ctx.ks().dbs.iter_mut() {
        db.clear();
    }
    ctx.out.ok();
    Ok(())
}

/// SWAPDB index1 index2
pub fn swapdb(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let a = i64::from(super::c_int_arg(&args[1], Some("invalid first DB index"))?);
    let b = i64::from(super::c_int_arg(&args[2], Some("invalid second DB index"))?);
    let n = ctx.shared.config.databases as i64;
    if a < 0 || a >= n || b < 0 || b >= n {
        return Err(err("DB index is out of range"));
    }
    let (a, b) = (a as usize, b as usize);
    if a != b {
        let dbs = &mut ctx.ks().dbs;
        let (lo, hi) = (a.min(b), a.max(b));
        let (left, right) = dbs.split_at_mut(hi);
        Db::swap_contents(&mut left[lo], &mut right[0]);
    }
    ctx.out.ok();
    Ok(())
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{bytes}B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", b / 1024.0 / 1024.0)
    } else {
        format!("{:.2}G", b / 1024.0 / 1024.0 / 1024.0)
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// Physical memory of the host, for `total_system_memory`.
fn total_system_memory() -> u64 {
    // SAFETY: sysinfo only writes the struct it is given.
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    if unsafe { libc::sysinfo(&mut si) } != 0 {
        return 0;
    }
    si.totalram as u64 * u64::from(si.mem_unit)
}

/// `os:` as Redis prints it: the kernel's name, release and machine.
fn os_name() -> String {
    // SAFETY: uname only writes the struct it is given.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return format!("{} {}", std::env::consts::OS, std::env::consts::ARCH);
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!(
        "{} {} {}",
        field(&u.sysname),
        field(&u.release),
        field(&u.machine)
    )
}

/// INFO [section ...]
pub fn info(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    // As in Redis: no argument means `default`, which leaves out the
    // per-command statistics; `all` and `everything` include them.
    let all = wanted.iter().any(|w| w == "all" || w == "everything");
    let default = all || wanted.is_empty() || wanted.iter().any(|w| w == "default");
    let named = |s: &str| wanted.iter().any(|w| w == s);
    let want = |s: &str| default || named(s);
    let shared = ctx.shared.clone();
    // While the dataset loads the loader holds the keyspace: INFO still
    // answers (that is how an operator watches `loading:1`), with the
    // data-derived figures at zero.
    let loading = shared.persist.loading.load(Ordering::Acquire);
    let mut s = String::new();
    let uptime = shared.started.elapsed().as_secs();
    if want("server") {
        let port = shared.addrs.first().map(|a| a.port()).unwrap_or(0);
        let _ = write!(
            s,
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:{:016x}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nserver_name:redis-guard\r\nserver_version:{}\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{port}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nhz:10\r\nconfigured_hz:10\r\nlru_clock:{}\r\nexecutable:redis-guard\r\nconfig_file:\r\nio_threads_active:0\r\n\r\n",
            // Redis prints a hex build hash; clients parse it as a string.
            env!("CARGO_PKG_VERSION")
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64)
                    .wrapping_mul(0x100_0000_01b3)),
            os_name(),
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            shared.run_id,
            ctx.now * 1000,
            uptime / 86400,
            // Redis's LRU clock: seconds, 24 bits.
            (ctx.now / 1000) & ((1 << 24) - 1),
        );
    }
    if want("clients") {
        let (n, pubsub, paused) = {
            let c = shared.clients.lock();
            let p = c
                .values()
                .filter(|h| h.subs.load(Ordering::Relaxed) > 0)
                .count();
            let held = c
                .values()
                .filter(|h| h.paused.load(Ordering::Relaxed))
                .count();
            (c.len(), p, held)
        };
        let (blocked, timed) = if loading {
            (0, 0)
        } else {
            let w = &ctx.ks().waiters;
            (w.len() + paused, w.values().filter(|w| w.timed).count())
        };
        let _ = write!(
            s,
            "# Clients\r\nconnected_clients:{n}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{blocked}\r\ntracking_clients:0\r\nclients_in_timeout_table:{timed}\r\npubsub_clients:{pubsub}\r\n\r\n",
            shared.config.maxclients
        );
    }
    if want("memory") {
        let used = if loading { 0 } else { ctx.ks().used_memory() };
        let peak = shared.mem_peak.fetch_max(used, Ordering::Relaxed).max(used);
        let rss = rss_bytes();
        let max = shared.config.maxmemory.0;
        let system = total_system_memory();
        let _ = write!(
            s,
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\nused_memory_overhead:0\r\nused_memory_startup:0\r\nused_memory_dataset:{used}\r\nused_memory_dataset_perc:{}%\r\ntotal_system_memory:{system}\r\ntotal_system_memory_human:{}\r\nmaxmemory:{max}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nmem_allocator:jemalloc\r\n\r\n",
            human(used),
            human(rss),
            human(peak),
            if peak == 0 {
                0.0
            } else {
                used as f64 * 100.0 / peak as f64
            },
            if used == 0 { "0.00" } else { "100.00" },
            human(system),
            human(max),
            shared.config.maxmemory_policy.as_str(),
        );
    }
    if want("persistence") {
        let p = &shared.persist;
        let changes = if loading {
            0
        } else {
            ctx.ks()
                .dirty
                .saturating_sub(p.saved_dirty.load(Ordering::Relaxed))
        };
        let running = p.bg_in_progress.load(Ordering::Relaxed);
        let is_save = p.bg_is_save.load(Ordering::Relaxed);
        let (bg, rewriting) = ((running && is_save) as u8, (running && !is_save) as u8);
        let status = |ok: bool| if ok { "ok" } else { "err" };
        let save_ok = status(p.last_save_ok.load(Ordering::Relaxed));
        let rewrite_ok = status(p.last_rewrite_ok.load(Ordering::Relaxed));
        let running_secs = (ctx
            .now
            .saturating_sub(p.bg_started_ms.load(Ordering::Relaxed))
            / 1000) as i64;
        let current = |on: u8| if on == 1 { running_secs } else { -1 };
        let (save_now, rewrite_now) = (current(bg), current(rewriting));
        let tail = p.tail_size.load(Ordering::Relaxed);
        let base = p.base_size.load(Ordering::Relaxed);
        let _ = write!(
            s,
            "# Persistence\r\nloading:{}\r\nasync_loading:0\r\nrdb_changes_since_last_save:{changes}\r\nrdb_bgsave_in_progress:{bg}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{save_ok}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{save_now}\r\nrdb_saves:{}\r\nrdb_last_cow_size:0\r\nrdb_last_load_keys_expired:{}\r\nrdb_last_load_keys_loaded:{}\r\naof_enabled:{}\r\naof_rewrite_in_progress:{rewriting}\r\naof_rewrite_scheduled:{}\r\naof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:{rewrite_now}\r\naof_last_bgrewrite_status:{rewrite_ok}\r\naof_rewrites:{}\r\naof_rewrites_consecutive_failures:{}\r\naof_last_write_status:{}\r\naof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
            p.loading.load(Ordering::Relaxed) as u8,
            p.lastsave.load(Ordering::Relaxed),
            p.last_save_secs.load(Ordering::Relaxed),
            p.saves.load(Ordering::Relaxed),
            p.load_keys_expired.load(Ordering::Relaxed),
            p.load_keys_loaded.load(Ordering::Relaxed),
            p.appendonly as u8,
            p.rewrite_scheduled.load(Ordering::Relaxed) as u8,
            p.last_rewrite_secs.load(Ordering::Relaxed),
            p.rewrites.load(Ordering::Relaxed),
            p.rewrite_failures.load(Ordering::Relaxed),
            status(p.last_write_ok.load(Ordering::Relaxed) && p.fsync_ok.load(Ordering::Relaxed)),
        );
        // As in Redis, the log's own figures only while it is on. Records
        // reach the OS before their replies, so nothing waits in a buffer
        // and no fsync is ever postponed.
        if p.appendonly {
            let _ = write!(
                s,
                "aof_current_size:{}\r\naof_base_size:{base}\r\naof_pending_rewrite:0\r\naof_buffer_length:0\r\naof_pending_bio_fsync:0\r\naof_delayed_fsync:0\r\naof_fsync:{}\r\n",
                base + tail,
                p.fsync.as_str(),
            );
        }
        s.push_str("\r\n");
    }
    if want("stats") {
        let (expired, evicted, hits, misses) = if loading {
            (0, 0, 0, 0)
        } else {
            let ks = ctx.ks();
            let (hits, misses) = ks.dbs.iter().fold((0, 0), |(h, m), db| {
                let (dh, dm) = db.read_stats();
                (h + dh, m + dm)
            });
            (
                ks.expired_keys(),
                ks.stats.evicted_keys,
                ks.stats.hits + hits,
                ks.stats.misses + misses,
            )
        };
        let (chans, pats) = {
            let p = shared.pubsub.lock();
            (p.channel_count(), p.pattern_count())
        };
        let st = &shared.stats;
        let [cmds, nin, nout] = shared.totals();
        // Redis counts a command once it has run, so INFO never counts
        // itself; here it was counted as it started.
        let cmds = cmds.saturating_sub(1);
        let [ops, in_rate, out_rate] = shared.rates.lock().average();
        let error_replies = shared.errors.lock().total;
        let _ = write!(
            s,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{ops}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ninstantaneous_input_kbps:{:.2}\r\ninstantaneous_output_kbps:{:.2}\r\nrejected_connections:{}\r\nexpired_keys:{expired}\r\nevicted_keys:{evicted}\r\nkeyspace_hits:{hits}\r\nkeyspace_misses:{misses}\r\npubsub_channels:{chans}\r\npubsub_patterns:{pats}\r\ntotal_error_replies:{error_replies}\r\n\r\n",
            st.connections.load(Ordering::Relaxed),
            cmds,
            nin,
            nout,
            in_rate as f64 / 1024.0,
            out_rate as f64 / 1024.0,
            st.rejected.load(Ordering::Relaxed),
        );
    }
    if want("replication") {
        // A primary without replicas and without a backlog, as Redis shows one.
        let _ = write!(
            s,
            "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:1048576\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n\r\n",
            shared.run_id
        );
    }
    if want("cpu") {
        let usage = |who| {
            // SAFETY: getrusage only writes the struct it is given.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(who, &mut ru) };
            let secs = |t: libc::timeval| format!("{}.{:06}", t.tv_sec, t.tv_usec);
            (secs(ru.ru_stime), secs(ru.ru_utime))
        };
        let (sys, user) = usage(libc::RUSAGE_SELF);
        let (csys, cuser) = usage(libc::RUSAGE_CHILDREN);
        let _ = write!(
            s,
            "# CPU\r\nused_cpu_sys:{sys}\r\nused_cpu_user:{user}\r\nused_cpu_sys_children:{csys}\r\nused_cpu_user_children:{cuser}\r\n\r\n"
        );
    }
    if want("modules") {
        s.push_str("# Modules\r\n\r\n");
    }
    if want("security") {
        // True totals: the audit lines themselves are rate-limited.
        s.push_str("# Security\r\n");
        for (kind, n) in shared.audit.counts() {
            let _ = write!(s, "security_events_{kind}:{n}\r\n");
        }
        s.push_str("\r\n");
    }
    if all || named("commandstats") {
        s.push_str("# Commandstats\r\n");
        let mut rows: Vec<(&str, Totals)> = COMMANDS
            .iter()
            .map(|c| (c.name, shared.cmdstats.totals(c.index)))
            .collect();
        let subs = shared.cmdstats.subcommand_totals();
        rows.extend(subs.iter().map(|(n, t)| (n.as_str(), *t)));
        rows.sort_by(|a, b| a.0.cmp(b.0));
        for (name, t) in rows {
            if t.calls == 0 && t.failed == 0 && t.rejected == 0 {
                continue;
            }
            let usec = t.nanos / 1000;
            let per_call = if t.calls == 0 {
                0.0
            } else {
                t.nanos as f64 / 1000.0 / t.calls as f64
            };
            let _ = write!(
                s,
                "cmdstat_{name}:calls={},usec={usec},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
                t.calls, t.rejected, t.failed
            );
        }
        s.push_str("\r\n");
    }
    if want("errorstats") {
        s.push_str("# Errorstats\r\n");
        for (code, n) in &shared.errors.lock().by_code {
            let _ = write!(s, "errorstat_{code}:count={n}\r\n");
        }
        s.push_str("\r\n");
    }
    if want("cluster") {
        s.push_str("# Cluster\r\ncluster_enabled:0\r\n\r\n");
    }
    if want("keyspace") {
        s.push_str("# Keyspace\r\n");
        let dbs: &[_] = if loading { &[] } else { &ctx.ks().dbs };
        for (i, db) in dbs.iter().enumerate() {
            if !db.is_empty() {
                let _ = write!(
                    s,
                    "db{i}:keys={},expires={},avg_ttl={}\r\n",
                    db.len(),
                    db.expires(),
                    db.avg_ttl()
                );
            }
        }
        s.push_str("\r\n");
    }
    while s.ends_with("\r\n\r\n") {
        s.truncate(s.len() - 2);
    }
    ctx.out.verbatim(s.as_bytes());
    Ok(())
}

fn command_info(out: &mut Out<'_>, c: &Command) {
    if c.container {
        return container_info(out, c);
    }
    out.array(10);
    out.bulk(c.name.as_bytes());
    out.int(c.arity as i64);
    out.set(c.flags.len());
    for f in &c.flags {
        out.simple(&f.replace('-', "_"));
    }
    out.int(c.first_key as i64);
    out.int(c.last_key as i64);
    out.int(c.step as i64);
    out.set(c.categories.len());
    for cat in &c.categories {
        out.simple(&format!("@{cat}"));
    }
    out.set(0);
    out.array(0);
    out.array(0);
}

/// A container as Redis 7.0 describes it: no flags or keys of its own,
/// `@slow`, and one entry per subcommand in the tenth element, each with the
/// flags, key positions and categories that subcommand has.
fn container_info(out: &mut Out<'_>, c: &Command) {
    out.array(10);
    out.bulk(c.name.as_bytes());
    out.int(c.arity as i64);
    let flags: &[&str] = if c.name == "command" {
        &["loading", "stale"]
    } else {
        &[]
    };
    out.set(flags.len());
    for f in flags {
        out.simple(f);
    }
    for _ in 0..3 {
        out.int(0);
    }
    let cats = super::container_categories(c.name);
    out.set(cats.len());
    for cat in cats {
        out.simple(&format!("@{cat}"));
    }
    out.set(0);
    out.array(0);
    let subs: Vec<(&str, i32)> = super::SUBCOMMANDS
        .iter()
        .copied()
        .filter(|(full, _)| full.split_once('|').is_some_and(|(p, _)| p == c.name))
        .collect();
    out.array(subs.len());
    for (full, arity) in subs {
        subcommand_info(out, c, full, arity);
    }
}

/// One `container|sub` entry of [`container_info`] (also what `COMMAND INFO
/// container|sub` answers).
fn subcommand_info(out: &mut Out<'_>, c: &Command, full: &str, arity: i32) {
    let sub = full.split_once('|').map_or("", |(_, s)| s);
    let cats = super::sub_categories(c.name, sub).unwrap_or(&c.categories);
    // The subcommands that take a key: MEMORY USAGE and OBJECT's readers.
    let keyed = cats.contains(&"read");
    out.array(10);
    out.bulk(full.as_bytes());
    out.int(arity as i64);
    if keyed {
        out.set(1);
        out.simple("readonly");
    } else {
        out.set(0);
    }
    let (first, last, step) = if keyed { (2, 2, 1) } else { (0, 0, 0) };
    out.int(first);
    out.int(last);
    out.int(step);
    out.set(cats.len());
    for cat in cats {
        out.simple(&format!("@{cat}"));
    }
    out.set(0);
    out.array(0);
    out.array(0);
}

fn group_of(c: &Command) -> &'static str {
    for (cat, group) in [
        ("string", "string"),
        ("hash", "hash"),
        ("list", "list"),
        ("set", "set"),
        ("sortedset", "sorted-set"),
        ("pubsub", "pubsub"),
        ("transaction", "transactions"),
        ("connection", "connection"),
        ("keyspace", "generic"),
    ] {
        if c.categories.contains(&cat) {
            return group;
        }
    }
    "server"
}

/// COMMAND [COUNT | INFO name... | DOCS name... | LIST | GETKEYS cmd args...]
pub fn command(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    if args.len() == 1 {
        ctx.out.array(COMMANDS.len());
        for c in COMMANDS.iter() {
            command_info(&mut ctx.out, c);
        }
        return Ok(());
    }
    let sub = &args[1];
    let sub_name = String::from_utf8_lossy(sub).to_ascii_lowercase();
    let wrong = |n: &str| {
        err(format!(
            "wrong number of arguments for 'command|{n}' command"
        ))
    };
    if sub_name == "count" && args.len() > 2 {
        return Err(wrong("count"));
    }
    if sub_name == "getkeys" && args.len() < 4 {
        return Err(wrong("getkeys"));
    }
    if is(sub, "count") && args.len() == 2 {
        ctx.out.int(COMMANDS.len() as i64);
    } else if is(sub, "list") {
        let keep: Box<dyn Fn(&Command) -> bool> = match &args[2..] {
            [] => Box::new(|_| true),
            // No modules exist here.
            [f, kind, _] if is(f, "filterby") && is(kind, "module") => Box::new(|_| false),
            [f, kind, cat] if is(f, "filterby") && is(kind, "aclcat") => {
                let cat = String::from_utf8_lossy(cat).to_ascii_lowercase();
                Box::new(move |c: &Command| c.categories.contains(&cat.as_str()))
            }
            [f, kind, pat] if is(f, "filterby") && is(kind, "pattern") => {
                Box::new(move |c: &Command| glob::matches_nocase(pat, c.name.as_bytes()))
            }
            _ => return Err(CmdError::Syntax),
        };
        let names: Vec<&str> = COMMANDS
            .iter()
            .filter(|c| keep(c))
            .map(|c| c.name)
            .collect();
        ctx.out.array(names.len());
        for n in names {
            ctx.out.bulk(n.as_bytes());
        }
    } else if is(sub, "help") && args.len() == 2 {
        ctx.out.simple_lines(&[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands in this server.",
            "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
            "    Return a list of all commands in this server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple commands.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple commands.",
            "GETKEYS <full-command>",
            "    Return the keys from a full command.",
            "HELP",
            "    Print this help.",
        ]);
    } else if is(sub, "info") {
        if args.len() == 2 {
            ctx.out.array(COMMANDS.len());
            for c in COMMANDS.iter() {
                command_info(&mut ctx.out, c);
            }
        } else {
            ctx.out.array(args.len() - 2);
            for a in &args[2..] {
                let name = String::from_utf8_lossy(a).to_ascii_lowercase();
                let sub = name.split_once('|').and_then(|(parent, sub)| {
                    let i = lookup(parent.as_bytes()).filter(|&i| COMMANDS[i].container)?;
                    super::subcommand(COMMANDS[i].name, sub.as_bytes())
                        .map(|(full, arity)| (i, full, arity))
                });
                if let Some((i, full, arity)) = sub {
                    subcommand_info(&mut ctx.out, &COMMANDS[i], full, arity);
                    continue;
                }
                match lookup(a) {
                    Some(i) => command_info(&mut ctx.out, &COMMANDS[i]),
                    None => ctx.out.null(),
                }
            }
        }
    } else if is(sub, "docs") {
        let list: Vec<&Command> = if args.len() == 2 {
            COMMANDS.iter().collect()
        } else {
            args[2..]
                .iter()
                .filter_map(|a| lookup(a).map(|i| &COMMANDS[i]))
                .collect()
        };
        ctx.out.map(list.len());
        for c in list {
            ctx.out.bulk(c.name.as_bytes());
            if !super::docs::write(&mut ctx.out, c.name) {
                // Every command has an entry (a unit test checks); this
                // keeps the reply well-formed if one were missing.
                ctx.out.map(1);
                ctx.out.bulk(b"group");
                ctx.out.bulk(group_of(c).as_bytes());
            }
        }
    } else if is(sub, "getkeys") && args.len() >= 3 {
        let Some(i) = lookup(&args[2]) else {
            return Err(err("Invalid command specified"));
        };
        let c = &COMMANDS[i];
        if !super::arity_ok(c, args.len() - 2) {
            return Err(err("Invalid number of arguments specified for command"));
        }
        let keys = c.keys(&args[2..]);
        if keys.is_empty() {
            return Err(err("The command has no key arguments"));
        }
        ctx.out.array(keys.len());
        for k in keys {
            ctx.out.bulk(k);
        }
    } else {
        return Err(super::unknown_subcommand(sub, "command"));
    }
    Ok(())
}

/// CONFIG GET parameter [parameter ...] (read-only).
pub fn config(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    if is(&args[1], "help") && args.len() == 2 {
        let lines = [
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET, REWRITE and RESETSTAT do not exist in redis-guard: the store's",
            "    configuration comes from its file and is fixed at start.",
            "HELP",
            "    Print this help.",
        ];
        ctx.out.simple_lines(&lines);
        return Ok(());
    }
    if !is(&args[1], "get") {
        return Err(super::unknown_subcommand(&args[1], "config"));
    }
    let c = &ctx.shared.config;
    let bind: Vec<String> = c.listen.iter().map(|a| a.ip().to_string()).collect();
    let port = ctx.shared.addrs.first().map(|a| a.port()).unwrap_or(0);
    let params: Vec<(&str, String)> = vec![
        ("save", String::new()),
        ("appendonly", if c.appendonly { "yes" } else { "no" }.into()),
        ("maxmemory", c.maxmemory.0.to_string()),
        ("maxmemory-policy", c.maxmemory_policy.as_str().into()),
        ("maxmemory-samples", "5".into()),
        ("databases", c.databases.to_string()),
        ("maxclients", c.maxclients.to_string()),
        ("timeout", c.timeout.to_string()),
        ("tcp-keepalive", c.tcp_keepalive.to_string()),
        (
            "client-output-buffer-limit",
            format!(
                "normal {} {} {} pubsub {} {} {}",
                c.output_buffer_limit_normal.hard.0,
                c.output_buffer_limit_normal.soft.0,
                c.output_buffer_limit_normal.soft_seconds,
                c.output_buffer_limit_pubsub.hard.0,
                c.output_buffer_limit_pubsub.soft.0,
                c.output_buffer_limit_pubsub.soft_seconds,
            ),
        ),
        ("proto-max-bulk-len", c.proto_max_bulk_len.0.to_string()),
        (
            "client-query-buffer-limit",
            c.client_query_buffer_limit.0.to_string(),
        ),
        ("port", port.to_string()),
        ("bind", bind.join(" ")),
        ("dir", c.data_dir.display().to_string()),
        ("dbfilename", "snapshot-<n>.rgs".into()),
        ("appendfsync", c.appendfsync.as_str().into()),
        (
            "auto-aof-rewrite-percentage",
            c.auto_compact_percentage.to_string(),
        ),
        (
            "auto-aof-rewrite-min-size",
            c.auto_compact_min_size.0.to_string(),
        ),
        ("appendfilename", "log-<n>.aof".into()),
        ("protected-mode", "yes".into()),
        ("lua-time-limit", "5000".into()),
        ("cluster-enabled", "no".into()),
        // The thresholds of the compact encodings OBJECT ENCODING reports
        // (fixed; with Redis 7.0's names and their ziplist-era aliases).
        (
            "hash-max-listpack-entries",
            HASH_PACKED_MAX_ENTRIES.to_string(),
        ),
        ("hash-max-listpack-value", PACKED_MAX_ITEM.to_string()),
        (
            "hash-max-ziplist-entries",
            HASH_PACKED_MAX_ENTRIES.to_string(),
        ),
        ("hash-max-ziplist-value", PACKED_MAX_ITEM.to_string()),
        ("zset-max-listpack-entries", PACKED_MAX_ENTRIES.to_string()),
        ("zset-max-listpack-value", PACKED_MAX_ITEM.to_string()),
        ("zset-max-ziplist-entries", PACKED_MAX_ENTRIES.to_string()),
        ("zset-max-ziplist-value", PACKED_MAX_ITEM.to_string()),
        ("set-max-intset-entries", INTSET_MAX_ENTRIES.to_string()),
        // -2: list chunks of up to 8 KB, as the store's chunks are.
        ("list-max-listpack-size", "-2".into()),
        ("list-max-ziplist-size", "-2".into()),
        ("list-compress-depth", "0".into()),
        // No keyspace notifications are published.
        ("notify-keyspace-events", String::new()),
        (
            "slowlog-log-slower-than",
            c.slowlog_log_slower_than.to_string(),
        ),
        ("slowlog-max-len", c.slowlog_max_len.to_string()),
        ("latency-monitor-threshold", "0".into()),
        ("latency-tracking", "no".into()),
    ];
    // A name without glob characters comes back spelled as asked, as in
    // Redis; patterns list the parameters' own names.
    let mut hits: Vec<(&[u8], &str)> = Vec::new();
    for pat in &args[2..] {
        if !pat.iter().any(|c| b"[*?".contains(c)) {
            if let Some(p) = params
                .iter()
                .find(|p| p.0.as_bytes().eq_ignore_ascii_case(pat))
                && !hits.iter().any(|h| h.0.eq_ignore_ascii_case(pat))
            {
                hits.push((pat, &p.1));
            }
            continue;
        }
        for p in &params {
            if glob::matches_nocase(pat, p.0.as_bytes())
                && !hits
                    .iter()
                    .any(|h| h.0.eq_ignore_ascii_case(p.0.as_bytes()))
            {
                hits.push((p.0.as_bytes(), &p.1));
            }
        }
    }
    ctx.out.map(hits.len());
    for (k, v) in hits {
        ctx.out.bulk(k);
        ctx.out.bulk(v.as_bytes());
    }
    Ok(())
}

/// MEMORY USAGE key [SAMPLES n] | MEMORY HELP
pub fn memory(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    if is(&args[1], "usage") && args.len() >= 3 {
        if args.len() != 3 && !(args.len() == 5 && is(&args[3], "samples")) {
            return Err(CmdError::Syntax);
        }
        // The sample count does not change this store's figure, but Redis
        // refuses a negative one.
        if args.len() == 5 && int_arg(&args[4])? < 0 {
            return Err(CmdError::Syntax);
        }
        let now = ctx.now;
        let m = ctx
            .db()
            .peek(&args[2], now)
            .map(|e| e.value.mem() + args[2].len() + 56);
        match m {
            Some(m) => ctx.out.int(m as i64),
            None => ctx.out.null(),
        }
        return Ok(());
    }
    if is(&args[1], "help") {
        ctx.out.simple_lines(&[
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value.",
        ]);
        return Ok(());
    }
    // Subcommand arities were checked before the command ran
    // (`cmd::check_subcommand`).
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match sub.as_str() {
        "doctor" => {
            let used = ctx.ks().used_memory();
            let peak = ctx.shared.mem_peak.load(Ordering::Relaxed).max(used);
            let max = ctx.shared.config.maxmemory.0;
            let limit = if max == 0 {
                "no maxmemory limit is set".to_string()
            } else {
                format!(
                    "maxmemory is {} ({}% used, policy {})",
                    human(max),
                    used * 100 / max,
                    ctx.shared.config.maxmemory_policy.as_str()
                )
            };
            let report = format!(
                "Dataset: {} (estimated), peak {}; process RSS: {}; {limit}. The allocator (jemalloc) returns freed pages to the system in the background.\n",
                human(used),
                human(peak),
                human(rss_bytes()),
            );
            ctx.out.verbatim(report.as_bytes());
            return Ok(());
        }
        // Redis's reply when its allocator keeps no statistics, as this
        // build's jemalloc does not.
        "malloc-stats" => {
            ctx.out
                .verbatim(b"Stats not supported for the current allocator\n");
            return Ok(());
        }
        // Redis's field names, so that clients' `memory_stats()` and
        // dashboards read them. The dataset estimate is all this store
        // counts (no separate overhead figure), so `overhead.total` is 0,
        // the per-database hash table overheads (`db.N`) are left out, and
        // there is no fragmentation ratio: RSS over a figure without
        // the process's baseline would read in the thousands for small
        // datasets and mean nothing.
        "stats" => {
            let (used, keys) = {
                let ks = ctx.ks();
                let keys: usize = ks.dbs.iter().map(|d| d.len()).sum();
                (ks.used_memory(), keys)
            };
            let peak = ctx
                .shared
                .mem_peak
                .fetch_max(used, Ordering::Relaxed)
                .max(used);
            let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
            let out = &mut ctx.out;
            out.map(14);
            for (name, v) in [
                ("peak.allocated", peak),
                ("total.allocated", used),
                ("startup.allocated", 0),
                ("replication.backlog", 0),
                ("clients.slaves", 0),
                ("clients.normal", 0),
                ("aof.buffer", 0),
                ("lua.caches", 0),
                ("overhead.total", 0),
                ("keys.count", keys as u64),
                (
                    "keys.bytes-per-key",
                    if keys == 0 { 0 } else { used / keys as u64 },
                ),
                ("dataset.bytes", used),
            ] {
                out.bulk(name.as_bytes());
                out.int(v as i64);
            }
            out.bulk(b"dataset.percentage");
            out.double(if used == 0 { 0.0 } else { 100.0 });
            out.bulk(b"peak.percentage");
            out.double(ratio(used, peak) * 100.0);
            return Ok(());
        }
        // jemalloc's background thread already returns dirty pages within
        // about a second (1 s decay); there is nothing to force.
        "purge" => {
            ctx.out.ok();
            return Ok(());
        }
        _ => {}
    }
    Err(super::unknown_subcommand(&args[1], "memory"))
}

/// SLOWLOG GET [count] | LEN | RESET | HELP
pub fn slowlog(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match (sub.as_str(), args.len()) {
        ("get", 2 | 3) => {
            let count = match args.get(2) {
                None => 10,
                Some(a) => match int_arg(a) {
                    Ok(-1) => usize::MAX,
                    Ok(n) if n >= 0 => n as usize,
                    _ => return Err(err("count should be greater than or equal to -1")),
                },
            };
            let log = ctx.shared.slowlog.lock();
            let entries: Vec<_> = log.newest(count).collect();
            ctx.out.array(entries.len());
            for e in entries {
                ctx.out.array(6);
                ctx.out.int(e.id as i64);
                ctx.out.int(e.time as i64);
                ctx.out.int(e.micros as i64);
                ctx.out.array(e.args.len());
                e.args.iter().for_each(|a| ctx.out.bulk(a));
                ctx.out.bulk(e.peer.as_bytes());
                ctx.out.bulk(&e.name);
            }
        }
        ("get", _) => {
            return Err(err(format!(
                "unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
                String::from_utf8_lossy(&args[1])
            )));
        }
        ("len", 2) => {
            let n = ctx.shared.slowlog.lock().len();
            ctx.out.int(n as i64);
        }
        ("reset", 2) => {
            ctx.shared.slowlog.lock().reset();
            ctx.out.ok();
        }
        ("len" | "reset", _) => return Err(super::wrong_args(&format!("slowlog|{sub}"))),
        ("help", 2) => {
            let lines = [
                "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
                "HELP",
                "    Prints this help.",
            ];
            ctx.out.simple_lines(&lines);
        }
        _ => return Err(super::unknown_subcommand(&args[1], "slowlog")),
    }
    Ok(())
}

/// LATENCY LATEST | HISTORY | RESET | GRAPH | DOCTOR | HISTOGRAM | HELP.
///
/// The latency monitor is off, as it is by default in Redis
/// (`latency-monitor-threshold 0`), and per-command histograms are not
/// tracked: the subcommands answer as Redis does when nothing was
/// sampled, so monitoring tools that poll them keep working.
pub fn latency(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match (sub.as_str(), args.len()) {
        ("latest", 2) | ("history", 3) => ctx.out.array(0),
        ("reset", _) => ctx.out.int(0),
        ("histogram", _) => ctx.out.map(0),
        ("graph", 3) => {
            return Err(err(format!(
                "No samples available for event '{}'",
                String::from_utf8_lossy(&args[2])
            )));
        }
        ("doctor", 2) => ctx.out.verbatim(
            b"Latency monitoring is disabled in this redis-guard store \
(latency-monitor-threshold 0), so no latency spikes were sampled. \
SLOWLOG GET lists the commands that ran longer than slowlog_log_slower_than.\n",
        ),
        ("help", 2) => {
            let lines = [
                "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "GRAPH <event>",
                "    Return an ASCII latency graph for the <event> class.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
                "HISTOGRAM [COMMAND ...]",
                "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
                "    If no commands are specified then all histograms are replied.",
                "HELP",
                "    Prints this help.",
            ];
            ctx.out.simple_lines(&lines);
        }
        ("latest" | "history" | "graph" | "doctor", _) => {
            return Err(super::wrong_args(&format!("latency|{sub}")));
        }
        _ => return Err(super::unknown_subcommand(&args[1], "latency")),
    }
    Ok(())
}
