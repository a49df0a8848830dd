//! Command table, argument helpers and dispatch.
//!
//! Every command is one [`Command`] entry in a static table: the same data
//! drives arity checks, ACL category checks, key extraction for ACL key
//! patterns, `MULTI` queueing, the `maxmemory` check and the `COMMAND`
//! introspection replies, so they cannot drift apart.

pub mod acl;
pub mod blocking;
pub mod connection;
pub mod docs;
pub mod hashes;
pub mod keys;
pub mod lists;
pub mod monitor;
pub mod pubsub;
pub mod server;
pub mod sets;
pub mod strings;
pub mod transactions;
pub mod zsets;

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use parking_lot::MutexGuard;

use crate::store::auth::{KeyPerm, Request};
use crate::store::client::{ClientState, ReplyMode};
use crate::store::cmdstats::{Outcome, SAMPLE_EVERY};
use crate::store::frame::Out;
use crate::store::keyspace::{Db, Keyspace, WrongType, now_ms};
use crate::store::server::Shared;
use crate::store::value::{HashVal, Members, SetVal, ZSetVal};

/// A command failure, rendered as a Redis error reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CmdError {
    /// Type mismatch.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// Integer argument or value did not parse.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// Float argument or value did not parse.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// Bad option combination.
    #[error("ERR syntax error")]
    Syntax,
    /// `maxmemory` reached under `noeviction`.
    #[error("OOM command not allowed when used memory > 'maxmemory'.")]
    Oom,
    /// Missing key where one is required.
    #[error("ERR no such key")]
    NoSuchKey,
    /// Any other error; the text includes its code (`ERR ...`).
    #[error("{0}")]
    Msg(String),
}

impl From<WrongType> for CmdError {
    fn from(_: WrongType) -> Self {
        CmdError::WrongType
    }
}

/// Builds an `ERR`-coded error.
pub fn err(msg: impl std::fmt::Display) -> CmdError {
    CmdError::Msg(format!("ERR {msg}"))
}

/// Result of a command handler.
pub type CmdResult = Result<(), CmdError>;

/// A command handler: arguments include the command name at index 0.
pub type Handler = fn(&mut Ctx<'_, '_>, &[Bytes]) -> CmdResult;

/// One entry of the command table.
pub struct Command {
    /// Lowercase name.
    pub name: &'static str,
    /// Redis arity: positive = exact, negative = minimum argument count (name included).
    pub arity: i32,
    /// Redis command flags (`write`, `readonly`, `denyoom`, `fast`, ...).
    pub flags: Vec<&'static str>,
    /// First key argument index (0 = no keys).
    pub first_key: i32,
    /// Last key argument index (-1 = last argument).
    pub last_key: i32,
    /// Step between key arguments.
    pub step: i32,
    /// ACL categories without `@`.
    pub categories: Vec<&'static str>,
    /// Implementation.
    pub handler: Handler,
    /// Allowed before authentication.
    pub no_auth: bool,
    /// May need memory: refused with `-OOM` at the limit.
    pub deny_oom: bool,
    /// Allowed in RESP2 subscribed mode.
    pub pubsub_ok: bool,
    /// Executed immediately even inside `MULTI`.
    pub tx_control: bool,
    /// Has the `write` flag: a successful run is recorded in the command log.
    pub write: bool,
    /// Has the `fast` flag (O(1) or O(log N)).
    pub fast: bool,
    /// May appear in the slow log (its arguments never carry a secret).
    pub recordable: bool,
    /// Position in [`COMMANDS`] (per-command statistics are indexed by it).
    pub index: usize,
    /// One of [`CONTAINERS`]: its first argument names a subcommand.
    pub container: bool,
}

impl Command {
    /// Whether the command has the flag.
    pub fn has_flag(&self, f: &str) -> bool {
        self.flags.contains(&f)
    }

    /// Key arguments per the first/last/step spec (plus command-specific
    /// `numkeys` forms), for ACL key checks.
    pub fn keys<'a>(&self, args: &'a [Bytes]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        if let Some(v) = numkeys_keys(self.name, args) {
            return v;
        }
        if self.first_key <= 0 || args.len() <= self.first_key as usize {
            return out;
        }
        let last = if self.last_key < 0 {
            args.len() as i32 + self.last_key
        } else {
            self.last_key.min(args.len() as i32 - 1)
        };
        let mut i = self.first_key;
        while i <= last {
            out.push(&args[i as usize][..]);
            i += self.step.max(1);
        }
        out
    }
}

/// The access a command needs to its `pos`-th key, modelled on Redis 7's key
/// specs: commands that only insert, update or delete (`SET`, `LPUSH`, `DEL`)
/// need write access, those that return data need read access, and metadata
/// commands (`EXISTS`, `TYPE`) need neither, only a matching pattern.
pub fn key_perm(cmd: &Command, args: &[Bytes], pos: usize) -> KeyPerm {
    // From Redis 7.0's key specs: read access is needed only where the spec
    // says `access` (the command returns data derived from the value), write
    // where it inserts, updates or deletes. Lengths, membership tests and
    // WATCH do neither, so any key pattern, %R~ or %W~, admits them.
    match cmd.name {
        "exists" | "type" | "touch" | "object" | "memory" | "strlen" | "llen" | "hlen"
        | "hstrlen" | "hexists" | "scard" | "sismember" | "zcard" | "watch" => KeyPerm::NONE,
        // RESTORE only writes: it returns nothing of what it replaces.
        "restore" => KeyPerm::W,
        "set" if args.iter().skip(3).any(|a| is(a, "get")) => KeyPerm::RW,
        "set" | "setex" | "psetex" | "setnx" | "mset" | "msetnx" | "del" | "unlink" | "lpush"
        | "rpush" | "lpushx" | "rpushx" | "sadd" | "hset" | "hmset" | "hsetnx" | "zadd"
        | "expire" | "pexpire" | "expireat" | "pexpireat" | "persist" | "append" | "setrange"
        | "linsert" | "lset" | "ltrim" | "lrem" | "srem" | "hdel" | "zrem" | "zremrangebyscore"
        | "zremrangebyrank" | "zremrangebylex" => KeyPerm::W,
        "sinterstore" | "sunionstore" | "sdiffstore" | "zunionstore" | "zinterstore"
        | "zdiffstore" | "zrangestore" => {
            if pos == 0 {
                KeyPerm::W
            } else {
                KeyPerm::R
            }
        }
        "copy" => {
            if pos == 0 {
                KeyPerm::R
            } else {
                KeyPerm::W
            }
        }
        "lmove" | "rpoplpush" | "blmove" | "brpoplpush" | "smove" | "rename" | "renamenx" => {
            if pos == 0 { KeyPerm::RW } else { KeyPerm::W }
        }
        _ if cmd.has_flag("write") => KeyPerm::RW,
        _ => KeyPerm::R,
    }
}

/// Commands whose first argument names a subcommand that ACL rules can
/// address on its own (`+config|get`).
pub const CONTAINERS: [&str; 9] = [
    "acl", "client", "config", "command", "object", "memory", "pubsub", "slowlog", "latency",
];

/// The subcommands this store implements, as `container|sub`, each with
/// Redis's arity for it (counting the container; negative means at least).
/// Redis refuses an unknown subcommand or a wrong subcommand arity before
/// the command runs, so inside `MULTI` it dooms the transaction instead of
/// being queued. `client|setinfo` is Redis 7.2's: client libraries send it
/// on connect.
pub const SUBCOMMANDS: &[(&str, i32)] = &[
    ("acl|cat", -2),
    ("acl|deluser", -3),
    ("acl|dryrun", -4),
    ("acl|genpass", -2),
    ("acl|getuser", 3),
    ("acl|help", 2),
    ("acl|list", 2),
    ("acl|load", 2),
    ("acl|log", -2),
    ("acl|save", 2),
    ("acl|setuser", -3),
    ("acl|users", 2),
    ("acl|whoami", 2),
    ("client|getname", 2),
    ("client|help", 2),
    ("client|id", 2),
    ("client|info", 2),
    ("client|kill", -3),
    ("client|list", -2),
    ("client|no-evict", 3),
    ("client|pause", -3),
    ("client|reply", 3),
    ("client|setinfo", 4),
    ("client|setname", 3),
    ("client|unblock", -3),
    ("client|unpause", 2),
    ("command|count", 2),
    ("command|docs", -2),
    ("command|getkeys", -4),
    ("command|help", 2),
    ("command|info", -2),
    ("command|list", -2),
    ("config|get", -3),
    ("config|help", 2),
    ("latency|doctor", 2),
    ("latency|graph", 3),
    ("latency|help", 2),
    ("latency|histogram", -2),
    ("latency|history", 3),
    ("latency|latest", 2),
    ("latency|reset", -2),
    ("memory|doctor", 2),
    ("memory|help", 2),
    ("memory|malloc-stats", 2),
    ("memory|purge", 2),
    ("memory|stats", 2),
    ("memory|usage", -3),
    ("object|encoding", 3),
    ("object|freq", 3),
    ("object|help", 2),
    ("object|idletime", 3),
    ("object|refcount", 3),
    ("pubsub|channels", -2),
    ("pubsub|help", 2),
    ("pubsub|numpat", 2),
    ("pubsub|numsub", -2),
    ("slowlog|get", -2),
    ("slowlog|help", 2),
    ("slowlog|len", 2),
    ("slowlog|reset", 2),
];

/// The `container|sub` name and arity of an implemented subcommand, matched
/// without regard to case; `container` is lowercase.
pub fn subcommand(container: &str, sub: &[u8]) -> Option<(&'static str, i32)> {
    subcommand_index(container, sub).map(|i| SUBCOMMANDS[i])
}

/// The position in [`SUBCOMMANDS`] of `container`'s subcommand `sub`.
pub fn subcommand_index(container: &str, sub: &[u8]) -> Option<usize> {
    SUBCOMMANDS.iter().position(|(name, _)| {
        name.strip_prefix(container)
            .and_then(|r| r.strip_prefix('|'))
            .is_some_and(|s| s.as_bytes().eq_ignore_ascii_case(sub))
    })
}

/// Checks a container command's subcommand and its arity as Redis does
/// before running anything: the error to refuse it with, if any.
pub fn check_subcommand(cmd: &Command, args: &[Bytes]) -> Result<(), CmdError> {
    if !cmd.container || args.len() < 2 {
        return Ok(());
    }
    match subcommand(cmd.name, &args[1]) {
        None => Err(unknown_subcommand(&args[1], cmd.name)),
        Some((name, arity)) if !arity_matches(arity, args.len()) => Err(wrong_args(name)),
        Some(_) => Ok(()),
    }
}

/// Categories of a subcommand where they differ from its container's:
/// `ACL WHOAMI` is harmless, `ACL SETUSER` is administration.
pub fn sub_categories(parent: &str, sub: &str) -> Option<&'static [&'static str]> {
    match (parent, sub) {
        ("acl", "whoami" | "cat" | "help" | "genpass") => Some(&["slow"]),
        ("acl", _) => Some(&["admin", "slow", "dangerous"]),
        // What a client says about itself is not administration; what it
        // does to other clients is.
        (
            "client",
            "id" | "info" | "getname" | "setname" | "setinfo" | "reply" | "caching" | "getredir"
            | "tracking" | "trackinginfo" | "no-touch" | "help",
        ) => Some(&["slow", "connection"]),
        ("client", _) => Some(&["admin", "slow", "dangerous", "connection"]),
        // HELP is harmless everywhere; each container's other subcommands
        // are as Redis 7.0 files them (`ACL CAT` on redis-server).
        ("slowlog" | "latency" | "config" | "memory" | "pubsub", "help") => Some(&["slow"]),
        ("slowlog" | "latency" | "config", _) => Some(&["admin", "slow", "dangerous"]),
        ("memory", "usage") => Some(&["read", "slow"]),
        ("memory", _) => Some(&["slow"]),
        ("object", "help") => Some(&["keyspace", "slow"]),
        ("object", _) => Some(&["keyspace", "read", "slow"]),
        ("pubsub", _) => Some(&["pubsub", "slow"]),
        ("command", _) => Some(&["slow", "connection"]),
        _ => None,
    }
}

/// Categories `ACL CAT` files a container command itself under: Redis 7.0
/// gives containers no flags of their own, so `@slow` (and `COMMAND` its
/// `@connection`); what a call may do is decided by its subcommand.
pub fn container_categories(name: &str) -> &'static [&'static str] {
    match name {
        "command" => &["slow", "connection"],
        _ => &["slow"],
    }
}

/// The name Redis reports for a command: `client|id` for a container's
/// subcommand, else the command's own. `name_buf` holds the `parent|sub`
/// name when there is one.
pub fn full_name<'a>(cmd: &'a Command, args: &[Bytes], name_buf: &'a mut String) -> &'a str {
    if CONTAINERS.contains(&cmd.name) && args.len() > 1 {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        *name_buf = format!("{}|{}", cmd.name, sub);
        name_buf.as_str()
    } else {
        cmd.name
    }
}

/// Builds what ACL rules judge for one call of `cmd` (see [`full_name`]
/// for `name_buf`).
pub fn acl_request<'a>(
    cmd: &'a Command,
    args: &'a [Bytes],
    name_buf: &'a mut String,
) -> Request<'a> {
    let name = full_name(cmd, args, name_buf);
    let categories: &'a [&'static str] = name
        .split_once('|')
        .and_then(|(parent, sub)| sub_categories(parent, sub))
        .unwrap_or(&cmd.categories);
    let keys = cmd
        .keys(args)
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k, key_perm(cmd, args, i)))
        .collect();
    let channels = match cmd.name {
        "publish" => vec![(&args[1][..], false)],
        "subscribe" => args[1..].iter().map(|a| (&a[..], false)).collect(),
        "psubscribe" => args[1..].iter().map(|a| (&a[..], true)).collect(),
        _ => Vec::new(),
    };
    Request {
        name,
        categories,
        keys,
        channels,
        first_arg: if cmd.container {
            None
        } else {
            args.get(1).map(|a| &a[..])
        },
    }
}

/// Names of the Redis commands the store refuses by design (they write
/// files, load code, stop the server or contact another host). ACL rules may
/// still mention them, so that a policy written for Redis stays valid.
pub const REFUSED_COMMANDS: &[&str] = &[
    "module",
    "debug",
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "script",
    "function",
    "fcall",
    "fcall_ro",
    "shutdown",
    "replicaof",
    "slaveof",
    "migrate",
    "sync",
    "psync",
    "failover",
];

/// Keys of commands whose key count is an argument.
fn numkeys_keys<'a>(name: &str, args: &'a [Bytes]) -> Option<Vec<&'a [u8]>> {
    let (nk_at, dest) = match name {
        "zunionstore" | "zinterstore" | "zdiffstore" => (2, true),
        "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" | "lmpop" | "zmpop" => {
            (1, false)
        }
        "blmpop" | "bzmpop" => (2, false),
        _ => return None,
    };
    let n = args
        .get(nk_at)
        .and_then(|a| std::str::from_utf8(a).ok()?.parse::<usize>().ok())
        .unwrap_or(0);
    let mut v: Vec<&[u8]> = Vec::new();
    if dest {
        v.push(&args[1]);
    }
    v.extend(args.iter().skip(nk_at + 1).take(n).map(|a| &a[..]));
    Some(v)
}

fn words(s: &'static str) -> Vec<&'static str> {
    s.split_whitespace().collect()
}

/// Declares a table entry: name, arity, flags, first, last, step, categories, handler.
fn c(
    name: &'static str,
    arity: i32,
    flags: &'static str,
    keys: (i32, i32, i32),
    cats: &'static str,
    handler: Handler,
) -> Command {
    let mut flags = words(flags);
    // Key positions that depend on a numkeys argument (see `numkeys_keys`).
    if matches!(
        name,
        "zunionstore"
            | "zinterstore"
            | "zdiffstore"
            | "zunion"
            | "zinter"
            | "zdiff"
            | "zintercard"
            | "sintercard"
            | "lmpop"
            | "zmpop"
            | "blmpop"
            | "bzmpop"
    ) {
        flags.push("movablekeys");
    }
    let mut categories = words(cats);
    for (flag, cat) in [
        ("write", "write"),
        ("readonly", "read"),
        ("fast", "fast"),
        ("admin", "admin"),
        ("admin", "dangerous"),
        ("blocking", "blocking"),
        ("pubsub", "pubsub"),
    ] {
        if flags.contains(&flag) && !categories.contains(&cat) {
            categories.push(cat);
        }
    }
    if !categories.contains(&"fast") && !categories.contains(&"slow") {
        categories.push("slow");
    }
    // Redis lists categories in the order of its category table.
    const ORDER: [&str; 21] = crate::store::auth::CATEGORIES;
    categories.sort_by_key(|c| ORDER.iter().position(|o| o == c).unwrap_or(ORDER.len()));
    categories.dedup();
    Command {
        name,
        arity,
        no_auth: flags.contains(&"no-auth"),
        deny_oom: flags.contains(&"denyoom"),
        pubsub_ok: matches!(
            name,
            "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe" | "ping" | "quit" | "reset"
        ),
        tx_control: matches!(
            name,
            "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
        ),
        write: flags.contains(&"write"),
        fast: flags.contains(&"fast"),
        recordable: crate::store::slowlog::recordable(name),
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        categories,
        handler,
        index: 0,
        container: CONTAINERS.contains(&name),
    }
}

const NOKEY: (i32, i32, i32) = (0, 0, 0);
const K1: (i32, i32, i32) = (1, 1, 1);
const K12: (i32, i32, i32) = (1, 2, 1);
const KALL: (i32, i32, i32) = (1, -1, 1);

/// The command table.
pub static COMMANDS: LazyLock<Vec<Command>> = LazyLock::new(|| {
    use self::acl;
    use self::blocking as b;
    use self::connection as cn;
    use self::hashes as h;
    use self::keys as k;
    use self::lists as l;
    use self::pubsub as ps;
    use self::server as sv;
    use self::sets as s;
    use self::strings as st;
    use self::transactions as tx;
    use self::zsets as z;
    let mut table = vec![
        // connection
        c("ping", -1, "fast", NOKEY, "connection", cn::ping),
        c("echo", 2, "fast", NOKEY, "connection", cn::echo),
        c("hello", -1, "no-auth fast", NOKEY, "connection", cn::hello),
        c("auth", -2, "no-auth fast", NOKEY, "connection", cn::auth),
        c("select", 2, "fast", NOKEY, "connection", cn::select),
        c("quit", -1, "no-auth fast", NOKEY, "connection", cn::quit),
        c("reset", 1, "no-auth fast", NOKEY, "connection", cn::reset),
        c("client", -2, "admin", NOKEY, "connection", cn::client),
        c("acl", -2, "", NOKEY, "", acl::acl),
        c("monitor", 1, "admin", NOKEY, "", monitor::monitor),
        // server
        c(
            "swapdb",
            3,
            "write fast",
            NOKEY,
            "keyspace dangerous",
            sv::swapdb,
        ),
        c("info", -1, "", NOKEY, "dangerous", sv::info),
        c("dbsize", 1, "readonly fast", NOKEY, "keyspace", sv::dbsize),
        c("time", 1, "fast", NOKEY, "", sv::time),
        c("command", -1, "", NOKEY, "connection", sv::command),
        c(
            "lastsave",
            1,
            "fast",
            NOKEY,
            "admin dangerous",
            sv::lastsave,
        ),
        c("role", 1, "fast", NOKEY, "admin dangerous", sv::role),
        // Snapshots: they only ever write the fixed file names inside
        // data_dir, which no command can change.
        c("save", 1, "admin noscript", NOKEY, "", sv::save),
        c("bgsave", -1, "admin noscript", NOKEY, "", sv::bgsave),
        c(
            "bgrewriteaof",
            1,
            "admin noscript",
            NOKEY,
            "",
            sv::bgrewriteaof,
        ),
        c("memory", -2, "readonly", (2, 2, 1), "", sv::memory),
        c("config", -2, "admin", NOKEY, "", sv::config),
        c("slowlog", -2, "admin", NOKEY, "", sv::slowlog),
        c("latency", -2, "admin", NOKEY, "", sv::latency),
        c(
            "flushdb",
            -1,
            "write",
            NOKEY,
            "keyspace dangerous",
            sv::flushdb,
        ),
        c(
            "flushall",
            -1,
            "write",
            NOKEY,
            "keyspace dangerous",
            sv::flushall,
        ),
        // keys
        c("del", -2, "write", KALL, "keyspace", k::del),
        c("unlink", -2, "write fast", KALL, "keyspace", k::del),
        c("exists", -2, "readonly fast", KALL, "keyspace", k::exists),
        c("type", 2, "readonly fast", K1, "keyspace", k::type_),
        c("expire", -3, "write fast", K1, "keyspace", k::expire),
        c("pexpire", -3, "write fast", K1, "keyspace", k::expire),
        c("expireat", -3, "write fast", K1, "keyspace", k::expire),
        c("pexpireat", -3, "write fast", K1, "keyspace", k::expire),
        c("ttl", 2, "readonly fast", K1, "keyspace", k::ttl),
        c("pttl", 2, "readonly fast", K1, "keyspace", k::ttl),
        c("expiretime", 2, "readonly fast", K1, "keyspace", k::ttl),
        c("pexpiretime", 2, "readonly fast", K1, "keyspace", k::ttl),
        c("persist", 2, "write fast", K1, "keyspace", k::persist),
        c("rename", 3, "write", K12, "keyspace", k::rename),
        c("renamenx", 3, "write fast", K12, "keyspace", k::rename),
        c("copy", -3, "write denyoom", K12, "keyspace", k::copy),
        c("move", 3, "write fast", K1, "keyspace", k::move_),
        c("scan", -2, "readonly", NOKEY, "keyspace", k::scan),
        c("keys", 2, "readonly", NOKEY, "keyspace dangerous", k::keys),
        c("randomkey", 1, "readonly", NOKEY, "keyspace", k::randomkey),
        c("touch", -2, "readonly fast", KALL, "keyspace", k::touch),
        c("object", -2, "readonly", (2, 2, 1), "keyspace", k::object),
        c("dump", 2, "readonly", K1, "keyspace", k::dump),
        c(
            "restore",
            -4,
            "write denyoom",
            K1,
            "keyspace dangerous",
            k::restore,
        ),
        // strings
        c("get", 2, "readonly fast", K1, "string", st::get),
        c("set", -3, "write denyoom", K1, "string", st::set),
        c("setnx", 3, "write denyoom fast", K1, "string", st::setnx),
        c("setex", 4, "write denyoom", K1, "string", st::setex),
        c("psetex", 4, "write denyoom", K1, "string", st::setex),
        c("mget", -2, "readonly fast", KALL, "string", st::mget),
        c("mset", -3, "write denyoom", (1, -1, 2), "string", st::mset),
        c(
            "msetnx",
            -3,
            "write denyoom",
            (1, -1, 2),
            "string",
            st::mset,
        ),
        c("getset", 3, "write denyoom fast", K1, "string", st::getset),
        c("getdel", 2, "write fast", K1, "string", st::getdel),
        c("getex", -2, "write fast", K1, "string", st::getex),
        c("incr", 2, "write denyoom fast", K1, "string", st::incr),
        c("decr", 2, "write denyoom fast", K1, "string", st::incr),
        c("incrby", 3, "write denyoom fast", K1, "string", st::incr),
        c("decrby", 3, "write denyoom fast", K1, "string", st::incr),
        c(
            "incrbyfloat",
            3,
            "write denyoom fast",
            K1,
            "string",
            st::incrbyfloat,
        ),
        c("append", 3, "write denyoom fast", K1, "string", st::append),
        c("strlen", 2, "readonly fast", K1, "string", st::strlen),
        c("getrange", 4, "readonly", K1, "string", st::getrange),
        c("substr", 4, "readonly", K1, "string", st::getrange),
        c("setrange", 4, "write denyoom", K1, "string", st::setrange),
        c("lcs", -3, "readonly", K12, "string", st::lcs),
        // hashes
        c("hset", -4, "write denyoom fast", K1, "hash", h::hset),
        c("hmset", -4, "write denyoom fast", K1, "hash", h::hset),
        c("hsetnx", 4, "write denyoom fast", K1, "hash", h::hsetnx),
        c("hget", 3, "readonly fast", K1, "hash", h::hget),
        c("hmget", -3, "readonly fast", K1, "hash", h::hmget),
        c(
            "hdel",
            -3,
            "write fast",
            K1,
            "hash",
            remove_members::<HashVal>,
        ),
        c(
            "hlen",
            2,
            "readonly fast",
            K1,
            "hash",
            count_members::<HashVal>,
        ),
        c("hstrlen", 3, "readonly fast", K1, "hash", h::hstrlen),
        c("hexists", 3, "readonly fast", K1, "hash", h::hexists),
        c("hkeys", 2, "readonly", K1, "hash", h::hgetall),
        c("hvals", 2, "readonly", K1, "hash", h::hgetall),
        c("hgetall", 2, "readonly", K1, "hash", h::hgetall),
        c("hincrby", 4, "write denyoom fast", K1, "hash", h::hincrby),
        c(
            "hincrbyfloat",
            4,
            "write denyoom fast",
            K1,
            "hash",
            h::hincrbyfloat,
        ),
        c("hrandfield", -2, "readonly", K1, "hash", h::hrandfield),
        c("hscan", -3, "readonly", K1, "hash", h::hscan),
        // lists
        c("lpush", -3, "write denyoom fast", K1, "list", l::push),
        c("rpush", -3, "write denyoom fast", K1, "list", l::push),
        c("lpushx", -3, "write denyoom fast", K1, "list", l::push),
        c("rpushx", -3, "write denyoom fast", K1, "list", l::push),
        c("lpop", -2, "write fast", K1, "list", l::pop),
        c("rpop", -2, "write fast", K1, "list", l::pop),
        c("llen", 2, "readonly fast", K1, "list", l::llen),
        c("lrange", 4, "readonly", K1, "list", l::lrange),
        c("lindex", 3, "readonly", K1, "list", l::lindex),
        c("lset", 4, "write denyoom", K1, "list", l::lset),
        c("linsert", 5, "write denyoom", K1, "list", l::linsert),
        c("lrem", 4, "write", K1, "list", l::lrem),
        c("ltrim", 4, "write", K1, "list", l::ltrim),
        c("lpos", -3, "readonly", K1, "list", l::lpos),
        c("lmove", 5, "write denyoom", K12, "list", l::lmove),
        c("rpoplpush", 3, "write denyoom", K12, "list", l::lmove),
        c("lmpop", -4, "write", NOKEY, "list", l::lmpop),
        // sets
        c("sadd", -3, "write denyoom fast", K1, "set", s::sadd),
        c(
            "srem",
            -3,
            "write fast",
            K1,
            "set",
            remove_members::<SetVal>,
        ),
        c(
            "scard",
            2,
            "readonly fast",
            K1,
            "set",
            count_members::<SetVal>,
        ),
        c("sismember", 3, "readonly fast", K1, "set", s::sismember),
        c("smismember", -3, "readonly fast", K1, "set", s::sismember),
        c("smembers", 2, "readonly", K1, "set", s::smembers),
        c("spop", -2, "write fast", K1, "set", s::spop),
        c("srandmember", -2, "readonly", K1, "set", s::srandmember),
        c("smove", 4, "write fast", K12, "set", s::smove),
        c("sinter", -2, "readonly", KALL, "set", s::setop),
        c("sunion", -2, "readonly", KALL, "set", s::setop),
        c("sdiff", -2, "readonly", KALL, "set", s::setop),
        c("sinterstore", -3, "write denyoom", KALL, "set", s::setop),
        c("sunionstore", -3, "write denyoom", KALL, "set", s::setop),
        c("sdiffstore", -3, "write denyoom", KALL, "set", s::setop),
        c("sintercard", -3, "readonly", NOKEY, "set", s::sintercard),
        c("sscan", -3, "readonly", K1, "set", s::sscan),
        // sorted sets
        c("zadd", -4, "write denyoom fast", K1, "sortedset", z::zadd),
        c(
            "zincrby",
            4,
            "write denyoom fast",
            K1,
            "sortedset",
            z::zincrby,
        ),
        c(
            "zrem",
            -3,
            "write fast",
            K1,
            "sortedset",
            remove_members::<ZSetVal>,
        ),
        c(
            "zcard",
            2,
            "readonly fast",
            K1,
            "sortedset",
            count_members::<ZSetVal>,
        ),
        c("zcount", 4, "readonly fast", K1, "sortedset", z::zcount),
        c("zlexcount", 4, "readonly fast", K1, "sortedset", z::zcount),
        c("zscore", 3, "readonly fast", K1, "sortedset", z::zscore),
        c("zmscore", -3, "readonly fast", K1, "sortedset", z::zscore),
        c("zrank", 3, "readonly fast", K1, "sortedset", z::zrank),
        c("zrevrank", 3, "readonly fast", K1, "sortedset", z::zrank),
        c("zrange", -4, "readonly", K1, "sortedset", z::zrange),
        c("zrangebyscore", -4, "readonly", K1, "sortedset", z::zrange),
        c(
            "zrevrangebyscore",
            -4,
            "readonly",
            K1,
            "sortedset",
            z::zrange,
        ),
        c("zrangebylex", -4, "readonly", K1, "sortedset", z::zrange),
        c("zrevrangebylex", -4, "readonly", K1, "sortedset", z::zrange),
        c("zrevrange", -4, "readonly", K1, "sortedset", z::zrange),
        c(
            "zrangestore",
            -5,
            "write denyoom",
            K12,
            "sortedset",
            z::zrange,
        ),
        c(
            "zremrangebyscore",
            4,
            "write",
            K1,
            "sortedset",
            z::zremrange,
        ),
        c("zremrangebyrank", 4, "write", K1, "sortedset", z::zremrange),
        c("zremrangebylex", 4, "write", K1, "sortedset", z::zremrange),
        c("zpopmin", -2, "write fast", K1, "sortedset", z::zpop),
        c("zpopmax", -2, "write fast", K1, "sortedset", z::zpop),
        c("zmpop", -4, "write", NOKEY, "sortedset", z::zmpop),
        c("zunion", -3, "readonly", NOKEY, "sortedset", z::zsetop),
        c("zinter", -3, "readonly", NOKEY, "sortedset", z::zsetop),
        c("zdiff", -3, "readonly", NOKEY, "sortedset", z::zsetop),
        c(
            "zunionstore",
            -4,
            "write denyoom",
            K1,
            "sortedset",
            z::zsetop,
        ),
        c(
            "zinterstore",
            -4,
            "write denyoom",
            K1,
            "sortedset",
            z::zsetop,
        ),
        c(
            "zdiffstore",
            -4,
            "write denyoom",
            K1,
            "sortedset",
            z::zsetop,
        ),
        c(
            "zintercard",
            -3,
            "readonly",
            NOKEY,
            "sortedset",
            z::zintercard,
        ),
        c(
            "zrandmember",
            -2,
            "readonly",
            K1,
            "sortedset",
            z::zrandmember,
        ),
        c("zscan", -3, "readonly", K1, "sortedset", z::zscan),
        // transactions
        c("multi", 1, "fast", NOKEY, "transaction", tx::multi),
        c("exec", 1, "", NOKEY, "transaction", tx::exec),
        c("discard", 1, "fast", NOKEY, "transaction", tx::discard),
        c("watch", -2, "fast", KALL, "transaction", tx::watch),
        c("unwatch", 1, "fast", NOKEY, "transaction", tx::unwatch),
        // pub/sub
        c("subscribe", -2, "pubsub", NOKEY, "", ps::subscribe),
        c("unsubscribe", -1, "pubsub", NOKEY, "", ps::subscribe),
        c("psubscribe", -2, "pubsub", NOKEY, "", ps::subscribe),
        c("punsubscribe", -1, "pubsub", NOKEY, "", ps::subscribe),
        c("publish", 3, "pubsub fast", NOKEY, "", ps::publish),
        c("pubsub", -2, "pubsub", NOKEY, "", ps::pubsub),
        // blocking
        c("blpop", -3, "write blocking", (1, -2, 1), "list", b::bpop),
        c("brpop", -3, "write blocking", (1, -2, 1), "list", b::bpop),
        c("blmove", 6, "write denyoom blocking", K12, "list", b::bmove),
        c(
            "brpoplpush",
            4,
            "write denyoom blocking",
            K12,
            "list",
            b::bmove,
        ),
        c("blmpop", -5, "write blocking", NOKEY, "list", b::bmpop),
        c(
            "bzpopmin",
            -3,
            "write blocking fast",
            (1, -2, 1),
            "sortedset",
            b::bzpop,
        ),
        c(
            "bzpopmax",
            -3,
            "write blocking fast",
            (1, -2, 1),
            "sortedset",
            b::bzpop,
        ),
        c(
            "bzmpop",
            -5,
            "write blocking",
            NOKEY,
            "sortedset",
            b::bzmpop,
        ),
    ];
    for (i, c) in table.iter_mut().enumerate() {
        c.index = i;
    }
    table
});

/// HDEL / SREM / ZREM key member [member ...]: removes the members that
/// exist and replies with their number; an emptied key goes away.
pub fn remove_members<K: Members>(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    let n = db
        .write_changed::<K, _>(&args[1], now, clock, false, |v| {
            let n = args[2..].iter().filter(|m| v.remove_member(m)).count();
            (n, n > 0)
        })?
        .unwrap_or(0);
    ctx.out.int(n as i64);
    Ok(())
}

/// Checks the count of HRANDFIELD, SRANDMEMBER and ZRANDMEMBER: Redis
/// takes any count but `i64::MIN`.
pub fn random_count(c: i64) -> Result<i64, CmdError> {
    if c == i64::MIN {
        return Err(err(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    Ok(c)
}

/// A negative count repeats members and its reply is materialised here,
/// so it is bounded to 2^24 picks (Redis would try to build any size of
/// reply, and a huge one takes the server down). Checked once the key is
/// found: a missing key answers an empty array whatever the count, as in
/// Redis.
pub fn check_repeats(count: Option<i64>) -> Result<(), CmdError> {
    match count {
        Some(c) if c < -(1 << 24) => Err(err("value is out of range")),
        _ => Ok(()),
    }
}

/// Reads the `[count [WITHVALUES|WITHSCORES]]` tail of HRANDFIELD and
/// ZRANDMEMBER (`word` names the flag) in Redis's order: the count, then the
/// syntax, then the range a count with values must keep to (its reply has
/// two entries per pick).
pub fn random_count_with(args: &[Bytes], word: &str) -> Result<(Option<i64>, bool), CmdError> {
    let Some(c) = args.get(2) else {
        return Ok((None, false));
    };
    let c = int_arg(c)?;
    if c == i64::MIN {
        random_count(c)?;
    }
    let with = match args.len() {
        3 => false,
        4 if is(&args[3], word) => true,
        _ => return Err(CmdError::Syntax),
    };
    if with && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&c) {
        return Err(err("value is out of range"));
    }
    Ok((Some(random_count(c)?), with))
}

/// What HRANDFIELD, SRANDMEMBER and ZRANDMEMBER pick from `items` (`len`
/// of them): one for no count, up to `count` distinct ones for a positive
/// count, and `-count` with repetition for a negative one.
pub fn pick_random<T: Copy>(
    items: impl Iterator<Item = T>,
    len: usize,
    count: Option<i64>,
) -> Vec<T> {
    use rand::Rng;
    use rand::seq::IteratorRandom;
    let mut rng = rand::rng();
    match count {
        None => items.choose(&mut rng).into_iter().collect(),
        Some(c) if c >= 0 => items.choose_multiple(&mut rng, (c as usize).min(len)),
        Some(c) => {
            let all: Vec<T> = items.collect();
            if all.is_empty() {
                return Vec::new();
            }
            (0..c.unsigned_abs())
                .map(|_| all[rng.random_range(0..all.len())])
                .collect()
        }
    }
}

/// HLEN / SCARD / ZCARD key
pub fn count_members<K: Members>(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    let n = db.read::<K, _>(&args[1], now, clock, |v| v.count())?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

/// Command indexes bucketed by name length and lowercase first byte. A
/// request's name is matched against the few names in its bucket, case
/// folded on the fly: no copy, no hash and no UTF-8 check on the path every
/// request takes (a hash-map lookup was 3% of the store's CPU at `-P 16`).
static BY_SHAPE: LazyLock<Vec<Vec<usize>>> = LazyLock::new(|| {
    let mut t = vec![Vec::new(); (NAME_MAX + 1) * 26];
    for (i, c) in COMMANDS.iter().enumerate() {
        if let Some(b) = shape(c.name.as_bytes()) {
            t[b].push(i);
        }
    }
    t
});

/// Longest command name the table holds.
const NAME_MAX: usize = 32;

fn shape(name: &[u8]) -> Option<usize> {
    let first = name.first()?.to_ascii_lowercase();
    if name.len() > NAME_MAX || !first.is_ascii_lowercase() {
        return None;
    }
    Some(name.len() * 26 + (first - b'a') as usize)
}

/// Finds a command by (any-case) name without allocating.
pub fn lookup(name: &[u8]) -> Option<usize> {
    BY_SHAPE[shape(name)?]
        .iter()
        .copied()
        .find(|&i| COMMANDS[i].name.as_bytes().eq_ignore_ascii_case(name))
}

/// A request to block, registered under the keyspace lock by a blocking command.
pub struct BlockRequest {
    /// Receives the pre-encoded reply when a push serves this client.
    pub rx: tokio::sync::oneshot::Receiver<Vec<u8>>,
    /// Waiter id, to deregister on timeout or disconnect.
    pub waiter: u64,
    /// Timeout; `None` blocks forever.
    pub timeout: Option<std::time::Duration>,
    /// `CLIENT REPLY OFF`/`SKIP` covered the command: its eventual reply
    /// (served or timed out) is not sent.
    pub silent: bool,
}

/// Everything a command handler can touch.
pub struct Ctx<'a, 's> {
    /// Server-wide state.
    pub shared: &'s Arc<Shared>,
    /// The calling client.
    pub client: &'a mut ClientState,
    /// Reply writer.
    pub out: Out<'a>,
    /// The keyspace lock, taken on first use and held until the command (or `EXEC`) ends.
    pub guard: Option<MutexGuard<'s, Keyspace>>,
    /// Command start time (Unix ms), one clock reading per command.
    pub now: u64,
    /// Running inside `EXEC`: blocking commands must not block.
    pub in_exec: bool,
    /// Set by blocking commands that found nothing to pop.
    pub block: Option<BlockRequest>,
    /// How long the last handler run took, when the slow log wants it
    /// timed (see [`slowlog_times`]); nanoseconds.
    pub timed: Option<u64>,
    /// The reply holds (un)subscribe confirmations, which `CLIENT REPLY
    /// OFF`/`SKIP` do not silence in Redis 7.0 (messages neither).
    pub keep_reply: bool,
}

impl<'a, 's> Ctx<'a, 's> {
    /// The keyspace, locking it on first use.
    pub fn ks(&mut self) -> &mut Keyspace {
        let shared = self.shared;
        self.guard.get_or_insert_with(|| shared.ks.lock())
    }

    /// The selected database.
    pub fn db(&mut self) -> &mut Db {
        let i = self.client.db;
        &mut self.ks().dbs[i]
    }

    /// The database and the reply writer at once, for replies streamed while reading.
    pub fn db_out(&mut self) -> (&mut Db, &mut Out<'a>, u32, u64) {
        let i = self.client.db;
        let now = self.now;
        let shared = self.shared;
        let ks = self.guard.get_or_insert_with(|| shared.ks.lock());
        let clock = ks.clock_at(now);
        (&mut ks.dbs[i], &mut self.out, clock, now)
    }

    /// The database and the LRU clock together.
    pub fn db_clock(&mut self) -> (&mut Db, u32, u64) {
        let i = self.client.db;
        let now = self.now;
        let ks = self.ks();
        let clock = ks.clock_at(now);
        (&mut ks.dbs[i], clock, now)
    }
}

/// Builds Redis's unknown-command error text: the name and then quoted
/// arguments until the list reaches 128 bytes, each shown as C's `%.*s`
/// prints it (cut at a NUL byte and at the room left).
pub fn unknown_command(args: &[Bytes]) -> String {
    let mut list = String::new();
    for a in args.iter().skip(1) {
        if list.len() >= 128 {
            break;
        }
        list.push('\'');
        list.push_str(&c_text(a, 128 - list.len() + 1));
        list.push_str("' ");
    }
    format!(
        "ERR unknown command '{}', with args beginning with: {list}",
        c_text(&args[0], 128)
    )
}

/// `ERR unknown subcommand '…'. Try X HELP.` with Redis's 128-byte cut.
pub fn unknown_subcommand(sub: &[u8], container: &str) -> CmdError {
    err(format!(
        "unknown subcommand '{}'. Try {} HELP.",
        c_text(sub, 128),
        container.to_ascii_uppercase()
    ))
}

/// An argument as Redis's error replies show it: up to the first NUL and
/// at most `max` bytes, with CR and LF as spaces so the reply stays one
/// line.
fn c_text(b: &[u8], max: usize) -> String {
    let b = &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())];
    let b = &b[..b.len().min(max)];
    String::from_utf8_lossy(b)
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

/// `ERR wrong number of arguments for 'x' command`.
pub fn wrong_args(name: &str) -> CmdError {
    err(format!("wrong number of arguments for '{name}' command"))
}

/// Checks a command's arity.
pub fn arity_ok(cmd: &Command, n: usize) -> bool {
    arity_matches(cmd.arity, n)
}

/// Whether `n` arguments (the name included) fit Redis arity `a`.
fn arity_matches(a: i32, n: usize) -> bool {
    if a >= 0 {
        n == a as usize
    } else {
        n >= (-a) as usize
    }
}

/// Runs one already-validated command: ACL, subscribed-mode, `MULTI` queueing
/// and `maxmemory` checks, then the handler. Replies are written to `ctx.out`.
pub fn execute(ctx: &mut Ctx<'_, '_>, idx: usize, args: &[Bytes]) {
    let cmd = &COMMANDS[idx];
    let start = ctx.out.buf.len();
    let r = execute_inner(ctx, cmd, args);
    if let Err(e) = r {
        // A command refused while queueing (ACL, OOM, ...) dooms the transaction.
        if ctx.client.multi.is_some() && !cmd.tx_control {
            ctx.client.multi_error = true;
        }
        ctx.out.buf.truncate(start);
        ctx.out.error(&e.to_string());
    }
}

fn execute_inner(ctx: &mut Ctx<'_, '_>, cmd: &Command, args: &[Bytes]) -> CmdResult {
    if ctx.client.acl_epoch
        != ctx
            .shared
            .acl_epoch
            .load(std::sync::atomic::Ordering::Acquire)
    {
        acl::refresh_user(ctx)?;
    }
    // Cloned only for restricted users: every client of an unrestricted user
    // shares one Arc, and bumping its count per command would bounce that
    // cache line between cores. `no-auth` commands (AUTH, HELLO, QUIT,
    // RESET) are open to every user, as in Redis: a user limited to
    // `+@read` must still be able to switch user, renegotiate or leave.
    if let Some(user) = ctx
        .client
        .user
        .as_ref()
        .filter(|u| !u.unrestricted() && !cmd.no_auth)
        .cloned()
    {
        let mut name_buf = String::new();
        let req = acl_request(cmd, args, &mut name_buf);
        if let Err(denied) = user.check(&req) {
            acl::log_denied(ctx, &user.name, &denied);
            ctx.shared.cmdstats.rejected(cmd.index);
            return reject(ctx, cmd, CmdError::Msg(denied.noperm()));
        }
    }
    if ctx.client.in_subscribed_mode() && !cmd.pubsub_ok {
        // Redis names a known subcommand in full (`client|id`).
        let mut name_buf = String::new();
        let name = full_name(cmd, args, &mut name_buf);
        let e = err(format!(
            "Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        ));
        ctx.shared.cmdstats.rejected(cmd.index);
        return reject(ctx, cmd, e);
    }
    if ctx.client.multi.is_some() && !cmd.tx_control {
        // Redis's `no-multi` flag: refused while queuing, which aborts EXEC.
        if cmd.name == "save" {
            ctx.shared.cmdstats.rejected(cmd.index);
            return Err(err("Command not allowed inside a transaction"));
        }
        // Over `maxmemory` nothing is queued, reads included, as in Redis:
        // the queue itself is memory a client could grow without bound, and
        // counts toward the limit as Redis counts it.
        let pending = ctx
            .client
            .handle
            .multi_mem
            .load(std::sync::atomic::Ordering::Relaxed)
            + args.iter().map(|a| a.len() + 16).sum::<usize>();
        if ctx.shared.config.maxmemory.0 > 0 && !ctx.ks().make_room_for(pending) {
            ctx.client.multi_error = true;
            ctx.shared.cmdstats.rejected(cmd.index);
            return Err(CmdError::Oom);
        }
        // The queue is input a client holds back, so it shares the query
        // buffer's limit; `used_memory` does not count it, so without a cap
        // of its own one client could queue gigabytes. The fixed ceiling
        // keeps the queued commands, logged as one record, well within the
        // log's 32-bit record length (what a command logs as its effect,
        // SPOP's chosen members, is not known until it runs).
        let bytes: usize = args.iter().map(|a| a.len() + 16).sum();
        let queued = ctx
            .client
            .handle
            .multi_mem
            .load(std::sync::atomic::Ordering::Relaxed);
        let limit = (ctx.shared.config.client_query_buffer_limit.0 as usize).min(MAX_TX_BYTES);
        if queued + bytes > limit {
            ctx.client.multi_error = true;
            ctx.shared.cmdstats.rejected(cmd.index);
            return Err(err(format!(
                "transaction too large: its queued commands would pass {limit} bytes (client_query_buffer_limit)"
            )));
        }
        if let Some(q) = ctx.client.multi.as_mut() {
            // Own copies: slices would pin every request buffer until EXEC.
            q.push(args.iter().map(|a| Bytes::copy_from_slice(a)).collect());
            ctx.client
                .handle
                .multi_mem
                .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
            ctx.client
                .handle
                .multi
                .store(q.len(), std::sync::atomic::Ordering::Relaxed);
        }
        ctx.out.simple("QUEUED");
        return Ok(());
    }
    run_handler(ctx, cmd, args)
}

/// The most a `MULTI` queue may hold (arguments plus 16 bytes each), far
/// below the 4 GiB a log record's length field can describe.
const MAX_TX_BYTES: usize = 2 << 30;

/// Refuses a command before it runs. Redis words a refused `EXEC` as the
/// transaction's abort (`EXECABORT Transaction discarded because of: …`)
/// and discards the queue; other commands get the error itself.
fn reject(ctx: &mut Ctx<'_, '_>, cmd: &Command, e: CmdError) -> CmdResult {
    // Refused before it ran: dooms an open transaction whatever the command
    // (an ACL-denied WATCH too), as Redis's rejectCommand does.
    if ctx.client.multi.is_some() {
        ctx.client.multi_error = true;
    }
    if cmd.name == "exec" {
        transactions::abort_exec(ctx, &e.to_string());
        return Ok(());
    }
    Err(e)
}

/// Whether the slow log times every run of `cmd` (with threshold
/// `slowlog-log-slower-than`). Commands Redis flags `fast` cannot run long
/// by design and are timed only when every command is recorded: two clock
/// readings per command were 4-5% of the store's CPU at `-P 16`.
pub fn slowlog_times(cmd: &Command, threshold: i64) -> bool {
    !(threshold < 0 || (threshold > 0 && cmd.fast) || !cmd.recordable)
}

/// The clock commands are timed with. Redis reads the OS clock around every
/// command; a slow-log-timed command (SET among them) spent 7% of its CPU in
/// those two readings here. Calibrated when the store starts
/// ([`warm_clock`]), not on the first command.
static CLOCK: std::sync::LazyLock<quanta::Clock> = std::sync::LazyLock::new(quanta::Clock::new);

/// Calibrates the command clock ahead of the first command.
pub fn warm_clock() {
    std::sync::LazyLock::force(&CLOCK);
}

/// Runs the handler itself (also used by `EXEC` for queued commands), and
/// counts it in `INFO commandstats`.
pub fn run_handler(ctx: &mut Ctx<'_, '_>, cmd: &Command, args: &[Bytes]) -> CmdResult {
    let stats = &ctx.shared.cmdstats;
    // Inside EXEC memory was checked once, for the whole transaction, before
    // it started: checking each command could apply half of it.
    // As Redis does before every command: evict while over the limit (reads
    // too, so an overshoot is undone without waiting for the next write),
    // counting the request's own bytes; only a command that may grow the
    // data is refused when no room can be made.
    if !ctx.in_exec && ctx.shared.config.maxmemory.0 > 0 {
        // Only a command that may grow the data has its request counted.
        let request: usize = if cmd.deny_oom {
            args.iter().map(|a| a.len() + 16).sum()
        } else {
            0
        };
        if !ctx.ks().make_room_for(request) && cmd.deny_oom {
            stats.rejected(cmd.index);
            return Err(CmdError::Oom);
        }
    }
    // Only this client's own execution writes its count (a blocked client
    // is served while its task waits), so no locked increment is needed.
    crate::store::cmdstats::bump(&ctx.client.handle.commands, 1);
    let sub = container_sub(cmd, args);
    let exact = slowlog_times(cmd, ctx.shared.config.slowlog_log_slower_than);
    let sampled = sub.is_none() && stats.begin(cmd.index);
    let started = (exact || sampled || sub.is_some()).then(|| CLOCK.raw());
    let reply_start = ctx.out.buf.len();
    let r = (cmd.handler)(ctx, args);
    let nanos = started.map_or(0, |t| CLOCK.delta_as_nanos(t, CLOCK.raw()));
    ctx.timed = exact.then_some(nanos);
    let outcome = if r.is_err() || ctx.out.buf.get(reply_start) == Some(&b'-') {
        Outcome::Failed
    } else {
        Outcome::Ok
    };
    let stats = &ctx.shared.cmdstats;
    match sub {
        Some(name) => stats.subcommand(name, nanos, outcome),
        None if exact => stats.record(cmd.index, nanos, outcome),
        None => stats.record(cmd.index, nanos * SAMPLE_EVERY, outcome),
    }
    // A blocked command has done nothing yet: its pop is logged by whoever
    // serves it (see `blocking::try_op`).
    if r.is_ok()
        && cmd.write
        && ctx.block.is_none()
        && let Some(ks) = ctx.guard.as_mut()
    {
        ks.log_command(ctx.now, ctx.client.db, args);
        ctx.client.wrote = true;
    }
    r
}

/// `container|sub` for a container command with a subcommand this store
/// implements: the name `INFO commandstats` counts it under. Unknown
/// subcommands get none, so a client cannot grow the table.
fn container_sub(cmd: &Command, args: &[Bytes]) -> Option<&'static str> {
    if args.len() < 2 || !cmd.container {
        return None;
    }
    subcommand(cmd.name, &args[1]).map(|(name, _)| name)
}

/// Finishes a command: wakes clients blocked on keys it wrote and applies
/// `CLIENT REPLY` suppression. The caller decides when to release the lock.
pub fn finish(ctx: &mut Ctx<'_, '_>, reply_start: usize) {
    if let Some(ks) = ctx.guard.as_mut() {
        blocking::serve_ready(ks);
        if ks.oplog.enabled {
            ks.log_pending(ctx.now);
            // Replies go out only once everything this client may have
            // seen is in the log, not only its own writes.
            ctx.client.aof_seq = ks.oplog.seq();
        }
    }
    let silence = !std::mem::take(&mut ctx.keep_reply);
    let silenced = silence && ctx.client.reply != ReplyMode::On;
    if silenced {
        ctx.out.buf.truncate(reply_start);
    }
    match ctx.client.reply {
        ReplyMode::On | ReplyMode::Off => {}
        ReplyMode::Skip => ctx.client.reply = ReplyMode::SkipThis,
        ReplyMode::SkipThis => ctx.client.reply = ReplyMode::On,
    }
    // A command that blocked answers later, when served or timed out; that
    // answer is the one the mode silences, as in Redis, where the skip
    // only ends once the blocked command completes.
    if let Some(b) = ctx.block.as_mut() {
        b.silent = silenced;
    }
}

// ---- argument helpers ----

/// Resolves list and sorted-set ranks: inclusive `start..=end`, negative
/// counting from the end, as LRANGE, LTRIM, ZRANGE and ZREMRANGEBYRANK do.
/// `start` is clamped to 0 and `end` to the last element, but an `end`
/// that still lies before the first element selects nothing (`LRANGE l 0
/// -100` on a short list is empty, and `ZREMRANGEBYRANK z 0 -100` removes
/// nothing).
pub fn index_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let s = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let e = if end < 0 { len + end } else { end.min(len - 1) };
    if s > e || s >= len {
        return None;
    }
    Some((s as usize, e as usize))
}

/// Parses an integer argument (`ERR value is not an integer or out of range`).
pub fn int_arg(a: &[u8]) -> Result<i64, CmdError> {
    crate::store::protocol::parse_int(a).ok_or(CmdError::NotInteger)
}

/// A C `int` argument as Redis reads one (`getIntFromObjectOrReply`): any
/// failure answers `msg` when there is one, else Redis's own two texts
/// (not an integer; outside the 32-bit range).
pub fn c_int_arg(a: &[u8], msg: Option<&str>) -> Result<i32, CmdError> {
    let v = int_arg(a);
    if let Some(v) = v.as_ref().ok().and_then(|&v| i32::try_from(v).ok()) {
        return Ok(v);
    }
    Err(match (msg, v) {
        (Some(m), _) => err(m.to_string()),
        (None, Err(e)) => e,
        (None, Ok(_)) => {
            err("value is out of range, value must between -2147483648 and 2147483647")
        }
    })
}

/// The database a SELECT, MOVE or COPY ... DB names: a C `int`, then one of
/// the `databases` configured.
pub fn db_index_arg(a: &[u8], databases: usize) -> Result<usize, CmdError> {
    let d = c_int_arg(a, None)?;
    usize::try_from(d)
        .ok()
        .filter(|&d| d < databases)
        .ok_or_else(|| err("DB index is out of range"))
}

/// Parses a float as Redis's `string2d` does: the whole text, no leading
/// space, no NaN; `inf`/`-inf` spelled out are fine, but a number that
/// overflows to infinity or underflows to zero is not a valid float.
pub fn parse_float(a: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(a).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let v = strtod(s)?;
    if v.is_infinite() && !s.to_ascii_lowercase().contains("inf") {
        return None;
    }
    if v == 0.0 {
        let mantissa = s.split(['e', 'E']).next().unwrap_or("");
        if mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
            return None;
        }
    }
    Some(v)
}

/// The whole of `s` as C's `strtod` reads it: decimal or hexadecimal,
/// `inf`/`infinity` spelled out, no NaN; out-of-range values become ±inf
/// or 0 (callers that refuse those check for them).
pub fn strtod(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        l if l.contains("nan") || l.contains("inf") => None,
        _ => parse_hex_float(s).or_else(|| s.parse().ok()),
    }
}

/// C's hexadecimal floats (`0x10`, `-0x1.8p3`), which Redis accepts because
/// it parses with `strtod`; `None` for anything else.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let rest = rest
        .strip_prefix("0x")
        .or_else(|| rest.strip_prefix("0X"))?;
    let (mant, exp) = match rest.find(['p', 'P']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp);
    Some(if neg { -v } else { v })
}

/// Parses a float argument (`ERR value is not a valid float`).
pub fn float_arg(a: &[u8]) -> Result<f64, CmdError> {
    parse_float(a).ok_or(CmdError::NotFloat)
}

/// Case-insensitive keyword comparison.
pub fn is(a: &[u8], kw: &str) -> bool {
    a.eq_ignore_ascii_case(kw.as_bytes())
}

/// Lowercase command name of `args[0]` as stored in the table.
pub fn name_of(args: &[Bytes]) -> &'static str {
    lookup(&args[0])
        .map(|i| COMMANDS[i].name)
        .unwrap_or("unknown")
}

/// Current Unix time in milliseconds (re-exported for command modules).
pub fn now() -> u64 {
    now_ms()
}

/// Parses `COUNT`-style options of the `SCAN` family: returns (match, count, type).
pub fn scan_opts(
    args: &[Bytes],
    allow_type: bool,
) -> Result<(Option<Bytes>, usize, Option<Bytes>), CmdError> {
    let mut pat = None;
    let mut count = 10usize;
    let mut ty = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if is(a, "match") && i + 1 < args.len() {
            // A lone `*` is no filter in Redis: it also lists an empty
            // name, which no other pattern matches.
            pat = (&args[i + 1][..] != b"*").then(|| args[i + 1].clone());
            i += 2;
        } else if is(a, "count") && i + 1 < args.len() {
            let n = int_arg(&args[i + 1])?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            count = n as usize;
            i += 2;
        } else if allow_type && is(a, "type") && i + 1 < args.len() {
            ty = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok((pat, count, ty))
}

/// Parses a `SCAN` cursor (`ERR invalid cursor`).
pub fn cursor_arg(a: &[u8]) -> Result<u64, CmdError> {
    // Redis reads the cursor with strtoul: an optional sign, and a negative
    // number wraps around (`-1` is 2^64-1); an empty cursor is 0.
    if a.is_empty() {
        return Ok(0);
    }
    let (neg, digits) = match a[0] {
        b'-' => (true, &a[1..]),
        b'+' => (false, &a[1..]),
        _ => (false, a),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(err("invalid cursor"));
    }
    let v = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u64>().ok())
        .ok_or_else(|| err("invalid cursor"))?;
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// For HSCAN/SSCAN/ZSCAN: as in Redis, a missing key answers an empty scan
/// and another type WRONGTYPE before the options are looked at. False when
/// the reply is already written.
pub fn scan_target<K: crate::store::value::Kind>(
    ctx: &mut Ctx<'_, '_>,
    key: &[u8],
) -> Result<bool, CmdError> {
    let now = ctx.now;
    if !ctx.db().check::<K>(key, now)? {
        ctx.out.array(2);
        ctx.out.bulk(b"0");
        ctx.out.array(0);
        return Ok(false);
    }
    Ok(true)
}

/// Iterates a collection in `SCAN` fashion: items are ordered by a fixed hash,
/// the cursor is the next hash to visit. Returns (next cursor, items).
/// `compact` says the collection has one of Redis's compact encodings (an
/// intset of up to 512 members), which Redis returns whole in one call.
pub fn scan_collection<'a, T: 'a>(
    items: impl Iterator<Item = (&'a [u8], T)>,
    cursor: u64,
    count: usize,
    pat: Option<&[u8]>,
    compact: bool,
) -> (u64, Vec<(&'a [u8], T)>) {
    use std::hash::BuildHasher;
    let all: Vec<(&'a [u8], T)> = items.collect();
    // Small collections come back whole and in their natural order, like
    // Redis's compact encodings (listpacks hold up to 128 entries).
    if compact || all.len() <= 128 {
        let out = all
            .into_iter()
            .filter(|(k, _)| pat.is_none_or(|p| crate::store::glob::matches(p, k)))
            .collect();
        return (0, out);
    }
    let h = crate::store::value::hasher();
    let mut v: Vec<(u64, &'a [u8], T)> = all
        .into_iter()
        // Cursors stay below 2^53, exact for every client (see the
        // keyspace's SCAN).
        .map(|(k, t)| (h.hash_one(k) >> 11, k, t))
        .filter(|(hh, _, _)| *hh >= cursor)
        .collect();
    v.sort_unstable_by_key(|x| x.0);
    let mut out = Vec::new();
    let mut visited = 0;
    let mut iter = v.into_iter().peekable();
    while let Some((hh, k, t)) = iter.next() {
        visited += 1;
        if pat.is_none_or(|p| crate::store::glob::matches(p, k)) {
            out.push((k, t));
        }
        if visited >= count
            && let Some(next) = iter.peek()
            && next.0 != hh
        {
            return (next.0, out);
        }
    }
    (0, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_found_in_any_case() {
        for (i, c) in COMMANDS.iter().enumerate() {
            assert_eq!(lookup(c.name.as_bytes()), Some(i), "{}", c.name);
            let upper = c.name.to_ascii_uppercase();
            assert_eq!(lookup(upper.as_bytes()), Some(i), "{upper}");
            let mixed: Vec<u8> = c
                .name
                .bytes()
                .enumerate()
                .map(|(n, b)| {
                    if n % 2 == 0 {
                        b.to_ascii_uppercase()
                    } else {
                        b
                    }
                })
                .collect();
            assert_eq!(lookup(&mixed), Some(i), "{}", c.name);
        }
    }

    #[test]
    fn near_misses_are_unknown() {
        for name in [
            &b""[..],
            b"ge",
            b"gett",
            b"g\xc3\xa9t",
            b"1get",
            b"\xffget",
            b"get\0",
            b"flushallx",
            &[b'g'; 40],
        ] {
            assert_eq!(lookup(name), None, "{:?}", String::from_utf8_lossy(name));
        }
    }
}
