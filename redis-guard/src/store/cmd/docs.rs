//! `COMMAND DOCS`: what redis-cli builds its hints and `HELP` from, and what
//! client libraries read to learn a command's arguments.
//!
//! The argument structures (names, types, tokens, flags, nesting), the
//! `since` versions and the groups are interface facts, not prose: they
//! are kept in `command_docs.json` exactly as redis-server 7.0.15 reports
//! them through `COMMAND DOCS`, restricted to the commands and
//! subcommands this store implements, so that clients see the syntax they
//! already know. The one-line summaries are ours.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::store::frame::Out;

/// One argument of a command, as `COMMAND DOCS` describes it.
#[derive(Debug, Deserialize)]
struct Arg {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    token: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    arguments: Vec<Arg>,
}

/// The documentation of one command or subcommand.
#[derive(Debug, Deserialize)]
struct Doc {
    since: String,
    group: String,
    #[serde(default)]
    arguments: Vec<Arg>,
    #[serde(default)]
    subcommands: BTreeMap<String, Doc>,
}

fn table() -> &'static BTreeMap<String, Doc> {
    static TABLE: OnceLock<BTreeMap<String, Doc>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // Checked by a unit test; a broken file is a build mistake.
        serde_json::from_str(include_str!("command_docs.json")).unwrap_or_default()
    })
}

/// Writes the `COMMAND DOCS` entry of `name` (lowercase) as its value in
/// the reply map; false if there is none.
pub fn write(out: &mut Out<'_>, name: &str) -> bool {
    let Some(doc) = table().get(name) else {
        return false;
    };
    write_doc(out, name, doc);
    true
}

fn write_doc(out: &mut Out<'_>, name: &str, doc: &Doc) {
    let fields =
        3 + usize::from(!doc.arguments.is_empty()) + usize::from(!doc.subcommands.is_empty());
    out.map(fields);
    out.bulk(b"summary");
    out.bulk(summary(name).as_bytes());
    out.bulk(b"since");
    out.bulk(doc.since.as_bytes());
    out.bulk(b"group");
    out.bulk(doc.group.as_bytes());
    if !doc.arguments.is_empty() {
        out.bulk(b"arguments");
        write_args(out, &doc.arguments);
    }
    if !doc.subcommands.is_empty() {
        out.bulk(b"subcommands");
        out.map(doc.subcommands.len());
        for (sub, d) in &doc.subcommands {
            out.bulk(sub.as_bytes());
            write_doc(out, sub, d);
        }
    }
}

fn write_args(out: &mut Out<'_>, args: &[Arg]) {
    out.array(args.len());
    for a in args {
        let fields = 2
            + usize::from(a.token.is_some())
            + usize::from(!a.flags.is_empty())
            + usize::from(!a.arguments.is_empty());
        out.map(fields);
        out.bulk(b"name");
        out.bulk(a.name.as_bytes());
        out.bulk(b"type");
        out.bulk(a.kind.as_bytes());
        if let Some(t) = &a.token {
            out.bulk(b"token");
            out.bulk(t.as_bytes());
        }
        if !a.flags.is_empty() {
            // redis-cli requires status replies here.
            out.bulk(b"flags");
            out.set(a.flags.len());
            for f in &a.flags {
                out.simple(f);
            }
        }
        if !a.arguments.is_empty() {
            out.bulk(b"arguments");
            write_args(out, &a.arguments);
        }
    }
}

/// One line on what a command does, in `HELP` and `COMMAND DOCS`.
fn summary(name: &str) -> &'static str {
    match name {
        "acl" => "Inspect users and their permissions (subcommands below)",
        "acl|cat" => "List the ACL categories, or the commands in one",
        "acl|deluser" => "Remove users (only with store.acl_runtime_changes)",
        "acl|dryrun" => "Tell whether a user could run a command, without running it",
        "acl|genpass" => "Generate a random password from the OS's secure source",
        "acl|getuser" => "Show one user's rules",
        "acl|help" => "List the ACL subcommands",
        "acl|list" => "Show every user's rules in ACL syntax",
        "acl|log" => "Show or reset the log of refused commands and failed logins",
        "acl|setuser" => "Create or change a user (only with store.acl_runtime_changes)",
        "acl|users" => "List the user names",
        "acl|whoami" => "Name the user of this connection",
        "append" => "Add bytes to the end of a string, creating it if needed",
        "auth" => "Log this connection in as a user",
        "bgrewriteaof" => "Compact the command log in the background",
        "bgsave" => "Write a snapshot in the background",
        "blmove" => "Move an element between lists, waiting for one if the source is empty",
        "blmpop" => "Pop elements from the first non-empty list, waiting if all are empty",
        "blpop" => "Pop the first element of the first non-empty list, waiting if needed",
        "brpop" => "Pop the last element of the first non-empty list, waiting if needed",
        "brpoplpush" => "Move a list's last element to another list's head, waiting if needed",
        "bzmpop" => "Pop members by score from the first non-empty sorted set, waiting if needed",
        "bzpopmax" => {
            "Pop the highest-scored member of the first non-empty sorted set, waiting if needed"
        }
        "bzpopmin" => {
            "Pop the lowest-scored member of the first non-empty sorted set, waiting if needed"
        }
        "client" => "Inspect and manage client connections (subcommands below)",
        "client|getname" => "Return this connection's name",
        "client|help" => "List the CLIENT subcommands",
        "client|id" => "Return this connection's id",
        "client|info" => "Describe this connection",
        "client|kill" => "Close connections by address, id, type, user or address filters",
        "client|list" => "Describe every connection",
        "client|no-evict" => "Exempt this connection from client eviction",
        "client|pause" => "Hold the commands of every client (or only writes) for a while",
        "client|reply" => "Turn this connection's replies on, off, or off for one command",
        "client|setname" => "Name this connection",
        "client|unblock" => "Wake a client waiting in a blocking command",
        "client|unpause" => "End a CLIENT PAUSE",
        "command" => "Describe the commands this server knows",
        "command|count" => "Count the commands",
        "command|docs" => "Document commands: summary, version, group, arguments",
        "command|getkeys" => "Name the keys a full command line would touch",
        "command|help" => "List the COMMAND subcommands",
        "command|info" => "Describe commands: arity, flags, keys, categories",
        "command|list" => "List command names, optionally filtered",
        "config" => "Read the server's configuration (subcommands below)",
        "config|get" => "Read configuration values by name or glob",
        "config|help" => "List the CONFIG subcommands",
        "copy" => "Copy a key's value to another key, optionally in another database",
        "dbsize" => "Count the keys of the selected database",
        "decr" => "Subtract one from an integer string",
        "decrby" => "Subtract an integer from an integer string",
        "del" => "Remove keys",
        "discard" => "Drop the commands queued since MULTI",
        "dump" => "Serialize a key's value in Redis's RESTORE format",
        "echo" => "Return the given message",
        "exec" => "Run the commands queued since MULTI, all at once",
        "exists" => "Count how many of the given keys exist",
        "expire" => "Set a key's time to live in seconds",
        "expireat" => "Set the Unix time, in seconds, at which a key expires",
        "expiretime" => "Return the Unix time, in seconds, at which a key expires",
        "flushall" => "Remove every key of every database",
        "flushdb" => "Remove every key of the selected database",
        "get" => "Return a string's value",
        "getdel" => "Return a string's value and remove the key",
        "getex" => "Return a string's value and change or clear its expiry",
        "getrange" => "Return part of a string by byte offsets",
        "getset" => "Set a string and return its old value",
        "hdel" => "Remove fields from a hash",
        "hello" => "Choose the protocol version, and optionally log in and name the connection",
        "hexists" => "Tell whether a hash has a field",
        "hget" => "Return one field's value of a hash",
        "hgetall" => "Return every field and value of a hash",
        "hincrby" => "Add an integer to a hash field",
        "hincrbyfloat" => "Add a floating-point number to a hash field",
        "hkeys" => "Return a hash's field names",
        "hlen" => "Count a hash's fields",
        "hmget" => "Return several fields' values of a hash",
        "hmset" => "Set several hash fields (older form of HSET)",
        "hrandfield" => "Return random fields of a hash",
        "hscan" => "Walk a hash's fields incrementally",
        "hset" => "Set hash fields, creating the hash if needed",
        "hsetnx" => "Set a hash field only if it does not exist",
        "hstrlen" => "Return the length of a hash field's value",
        "hvals" => "Return a hash's values",
        "incr" => "Add one to an integer string",
        "incrby" => "Add an integer to an integer string",
        "incrbyfloat" => "Add a floating-point number to a numeric string",
        "info" => "Report the server's state and statistics by section",
        "keys" => "List the keys matching a glob pattern (use SCAN on large databases)",
        "lastsave" => "Return the Unix time of the last successful save",
        "latency" => "Latency monitoring reports (subcommands below)",
        "latency|doctor" => "Explain the latency samples in words",
        "latency|graph" => "Draw one event's latency samples",
        "latency|help" => "List the LATENCY subcommands",
        "latency|histogram" => "Per-command latency histograms",
        "latency|history" => "Return one event's latency samples",
        "latency|latest" => "Return the latest sample of each event",
        "latency|reset" => "Forget latency samples",
        "lcs" => "Find the longest common subsequence of two strings",
        "lindex" => "Return a list element by index",
        "linsert" => "Insert an element before or after another in a list",
        "llen" => "Count a list's elements",
        "lmove" => "Pop an element from one end of a list and push it onto another list",
        "lmpop" => "Pop elements from the first non-empty list",
        "lpop" => "Pop elements from the head of a list",
        "lpos" => "Find the positions of matching elements in a list",
        "lpush" => "Push elements onto the head of a list",
        "lpushx" => "Push elements onto the head of a list only if it exists",
        "lrange" => "Return a range of list elements",
        "lrem" => "Remove elements equal to a value from a list",
        "lset" => "Replace a list element by index",
        "ltrim" => "Keep only a range of a list's elements",
        "memory" => "Memory reports (subcommands below)",
        "memory|doctor" => "Explain the memory figures in words",
        "memory|help" => "List the MEMORY subcommands",
        "memory|malloc-stats" => "Report the allocator's statistics",
        "memory|purge" => "Ask the allocator to return free memory to the OS",
        "memory|stats" => "Report the memory figures as name-value pairs",
        "memory|usage" => "Estimate the memory a key and its value use",
        "mget" => "Return the values of several strings",
        "monitor" => "Stream every command the server runs (passwords hidden)",
        "move" => "Move a key to another database",
        "mset" => "Set several strings at once",
        "msetnx" => "Set several strings only if none of the keys exists",
        "multi" => "Start queueing commands for EXEC",
        "object" => "Inspect a key's internals (subcommands below)",
        "object|encoding" => "Return the internal encoding of a key's value",
        "object|freq" => "Return a key's access frequency counter (LFU)",
        "object|help" => "List the OBJECT subcommands",
        "object|idletime" => "Return the seconds since a key was last accessed",
        "object|refcount" => "Return a value's reference count",
        "persist" => "Remove a key's expiry",
        "pexpire" => "Set a key's time to live in milliseconds",
        "pexpireat" => "Set the Unix time, in milliseconds, at which a key expires",
        "pexpiretime" => "Return the Unix time, in milliseconds, at which a key expires",
        "ping" => "Check that the server answers",
        "psetex" => "Set a string with a time to live in milliseconds",
        "psubscribe" => "Listen for messages on channels matching patterns",
        "pttl" => "Return a key's time to live in milliseconds",
        "publish" => "Send a message to a channel's subscribers",
        "pubsub" => "Inspect the Pub/Sub state (subcommands below)",
        "pubsub|channels" => "List the channels that have subscribers",
        "pubsub|help" => "List the PUBSUB subcommands",
        "pubsub|numpat" => "Count the pattern subscriptions",
        "pubsub|numsub" => "Count the subscribers of channels",
        "punsubscribe" => "Stop listening on patterns",
        "quit" => "Close the connection",
        "randomkey" => "Return a random key",
        "rename" => "Rename a key, replacing any key of the new name",
        "renamenx" => "Rename a key only if the new name is free",
        "reset" => "Reset the connection's state, as if newly connected",
        "restore" => "Create a key from a DUMP payload",
        "role" => "Return this server's replication role",
        "rpop" => "Pop elements from the tail of a list",
        "rpoplpush" => "Move a list's last element to another list's head",
        "rpush" => "Push elements onto the tail of a list",
        "rpushx" => "Push elements onto the tail of a list only if it exists",
        "sadd" => "Add members to a set",
        "save" => "Write a snapshot now, waiting for it",
        "scan" => "Walk the keys of the selected database incrementally",
        "scard" => "Count a set's members",
        "sdiff" => "Return the members of the first set that are in no other",
        "sdiffstore" => "Store the difference of sets in a key",
        "select" => "Choose the database for this connection",
        "set" => "Set a string, with optional conditions and expiry",
        "setex" => "Set a string with a time to live in seconds",
        "setnx" => "Set a string only if the key does not exist",
        "setrange" => "Overwrite part of a string at a byte offset",
        "sinter" => "Return the members common to all sets",
        "sintercard" => "Count the members common to all sets",
        "sinterstore" => "Store the intersection of sets in a key",
        "sismember" => "Tell whether a value is a member of a set",
        "slowlog" => "The log of slow commands (subcommands below)",
        "slowlog|get" => "Return entries of the slow log",
        "slowlog|help" => "List the SLOWLOG subcommands",
        "slowlog|len" => "Count the slow log's entries",
        "slowlog|reset" => "Empty the slow log",
        "smembers" => "Return every member of a set",
        "smismember" => "Tell, for several values, whether each is a member of a set",
        "smove" => "Move a member from one set to another",
        "spop" => "Remove and return random members of a set",
        "srandmember" => "Return random members of a set",
        "srem" => "Remove members from a set",
        "sscan" => "Walk a set's members incrementally",
        "strlen" => "Return a string's length",
        "subscribe" => "Listen for messages on channels",
        "substr" => "Return part of a string by byte offsets (older form of GETRANGE)",
        "sunion" => "Return the members of any of the sets",
        "sunionstore" => "Store the union of sets in a key",
        "swapdb" => "Exchange the contents of two databases",
        "time" => "Return the server's time",
        "touch" => "Update the access time of keys; count those that exist",
        "ttl" => "Return a key's time to live in seconds",
        "type" => "Return the type of a key's value",
        "unlink" => "Remove keys, freeing large values in the background",
        "unsubscribe" => "Stop listening on channels",
        "unwatch" => "Forget every key watched for the next EXEC",
        "watch" => "Make the next EXEC fail if any of these keys changes",
        "zadd" => "Add members to a sorted set or change their scores",
        "zcard" => "Count a sorted set's members",
        "zcount" => "Count the members of a sorted set within a score range",
        "zdiff" => "Return the members of the first sorted set that are in no other",
        "zdiffstore" => "Store the difference of sorted sets in a key",
        "zincrby" => "Add to a member's score in a sorted set",
        "zinter" => "Return the members common to all sorted sets, with combined scores",
        "zintercard" => "Count the members common to all sorted sets",
        "zinterstore" => "Store the intersection of sorted sets in a key",
        "zlexcount" => "Count the members of a sorted set within a lexical range",
        "zmpop" => "Pop members by score from the first non-empty sorted set",
        "zmscore" => "Return the scores of several members of a sorted set",
        "zpopmax" => "Pop the highest-scored members of a sorted set",
        "zpopmin" => "Pop the lowest-scored members of a sorted set",
        "zrandmember" => "Return random members of a sorted set",
        "zrange" => "Return members of a sorted set by rank, score or lexical range",
        "zrangebylex" => "Return members of a sorted set within a lexical range",
        "zrangebyscore" => "Return members of a sorted set within a score range",
        "zrangestore" => "Store a range of a sorted set in a key",
        "zrank" => "Return a member's rank, lowest score first",
        "zrem" => "Remove members from a sorted set",
        "zremrangebylex" => "Remove the members of a sorted set within a lexical range",
        "zremrangebyrank" => "Remove the members of a sorted set within a rank range",
        "zremrangebyscore" => "Remove the members of a sorted set within a score range",
        "zrevrange" => "Return members of a sorted set by rank, highest score first",
        "zrevrangebylex" => "Return members of a sorted set within a lexical range, in reverse",
        "zrevrangebyscore" => "Return members of a sorted set within a score range, highest first",
        "zrevrank" => "Return a member's rank, highest score first",
        "zscan" => "Walk a sorted set's members incrementally",
        "zscore" => "Return a member's score in a sorted set",
        "zunion" => "Return the members of any of the sorted sets, with combined scores",
        "zunionstore" => "Store the union of sorted sets in a key",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_command_parses_and_has_a_summary() {
        let t = table();
        assert!(t.len() > 150, "command_docs.json did not parse");
        for (name, doc) in t {
            assert!(!summary(name).is_empty(), "no summary for {name}");
            for sub in doc.subcommands.keys() {
                assert!(!summary(sub).is_empty(), "no summary for {sub}");
            }
        }
        for c in super::super::COMMANDS.iter() {
            assert!(t.contains_key(c.name), "COMMAND DOCS lacks {}", c.name);
        }
    }

    /// The dispatcher's subcommand table and the documented subcommands
    /// name the same set, apart from those Redis 7.0 leaves undocumented
    /// here (`ACL LOAD`/`SAVE` answer with an error, `CLIENT SETINFO` is
    /// 7.2's).
    #[test]
    fn documented_subcommands_are_the_dispatched_ones() {
        let documented: Vec<&str> = table()
            .values()
            .flat_map(|d| d.subcommands.keys().map(String::as_str))
            .collect();
        let dispatched: Vec<&str> = super::super::SUBCOMMANDS
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !matches!(*n, "acl|load" | "acl|save" | "client|setinfo"))
            .collect();
        let mut a = documented.clone();
        a.sort();
        let mut b = dispatched.clone();
        b.sort();
        assert_eq!(a, b);
    }
}
