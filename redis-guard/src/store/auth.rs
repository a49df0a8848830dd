//! Users, password digests and Redis 7 ACL rules.
//!
//! Passwords are only ever held as SHA-256 digests and compared in constant
//! time. Rules use Redis's ACL syntax: `on`/`off`, `+cmd`, `-cmd`,
//! `+cmd|sub`, `+@category`, `-@category`, `allcommands`/`nocommands`,
//! `~pattern`, `%R~pattern`, `%W~pattern`, `%RW~pattern`, `allkeys`,
//! `resetkeys`, `&pattern`, `allchannels`, `resetchannels`, selectors in
//! parentheses, `clearselectors`, `reset`, and (at runtime only) the password
//! rules `>pass`, `<pass`, `#hash`, `!hash`, `nopass`, `resetpass`.
//!
//! Command rules are kept as the ordered list the operator wrote instead of
//! a resolved bitmap: "the last rule that mentions this command wins" gives
//! exactly Redis's result, and the list doubles as the `ACL LIST` text.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::store::config::UserConfig;
use crate::store::glob;

/// Redis 7's ACL categories, in the order `ACL CAT` and `COMMAND INFO` list them.
pub const CATEGORIES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// What a command does with one of its keys, as ACL key permissions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyPerm {
    /// The command reads the value (or returns data derived from it).
    pub read: bool,
    /// The command inserts, updates or deletes data.
    pub write: bool,
}

impl KeyPerm {
    /// Read access only.
    pub const R: KeyPerm = KeyPerm {
        read: true,
        write: false,
    };
    /// Write access only (the old value is not returned).
    pub const W: KeyPerm = KeyPerm {
        read: false,
        write: true,
    };
    /// Read and write.
    pub const RW: KeyPerm = KeyPerm {
        read: true,
        write: true,
    };
    /// Neither: metadata such as `EXISTS` or `TYPE`; any key pattern grants it.
    pub const NONE: KeyPerm = KeyPerm {
        read: false,
        write: false,
    };

    fn covers(self, need: KeyPerm) -> bool {
        (self.read || !need.read) && (self.write || !need.write)
    }
}

/// One command-permission step; later steps override earlier ones like in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CmdRule {
    AllowCat(String),
    DenyCat(String),
    /// A command name, or `parent|sub`.
    AllowCmd(String),
    DenyCmd(String),
}

impl CmdRule {
    fn text(&self) -> String {
        match self {
            CmdRule::AllowCat(c) => format!("+@{c}"),
            CmdRule::DenyCat(c) => format!("-@{c}"),
            CmdRule::AllowCmd(c) => format!("+{c}"),
            CmdRule::DenyCmd(c) => format!("-{c}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyPattern {
    pattern: Vec<u8>,
    perm: KeyPerm,
}

/// A set of command, key and channel permissions. Every user has a root
/// selector; extra selectors (`(...)`) each grant a command on their own keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    cmd_rules: Vec<CmdRule>,
    keys: Vec<KeyPattern>,
    channels: Vec<Vec<u8>>,
}

/// Why a command was refused, for the `NOPERM` reply, `ACL LOG` and `ACL DRYRUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The command (name, or `parent|sub`) is not granted.
    Command(String),
    /// A key argument is outside the user's key patterns for that access.
    Key(Vec<u8>),
    /// A channel argument is outside the user's channel patterns.
    Channel(Vec<u8>),
}

impl Denied {
    /// Why a command queued in `MULTI` may no longer run at `EXEC`, in
    /// Redis's words.
    pub fn exec_reason(&self) -> &'static str {
        match self {
            Denied::Command(_) => "no permission to execute the command or subcommand",
            Denied::Key(_) => "no permission to touch the specified keys",
            Denied::Channel(_) => "no permission to access one of the channels used as arguments",
        }
    }

    /// The error reply, exactly as Redis words it.
    pub fn noperm(&self) -> String {
        match self {
            Denied::Command(c) => {
                format!("NOPERM this user has no permissions to run the '{c}' command")
            }
            Denied::Key(_) => {
                "NOPERM this user has no permissions to access one of the keys used as arguments"
                    .into()
            }
            Denied::Channel(_) => "NOPERM this user has no permissions to access one of the channels used as arguments".into(),
        }
    }

    /// The sentence `ACL DRYRUN` answers with.
    pub fn dryrun(&self) -> String {
        match self {
            Denied::Command(c) => format!("This user has no permissions to run the '{c}' command"),
            Denied::Key(k) => format!(
                "This user has no permissions to access the '{}' key",
                String::from_utf8_lossy(k)
            ),
            Denied::Channel(c) => format!(
                "This user has no permissions to access the '{}' channel",
                String::from_utf8_lossy(c)
            ),
        }
    }

    /// `ACL LOG` reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::Command(_) => "command",
            Denied::Key(_) => "key",
            Denied::Channel(_) => "channel",
        }
    }

    /// `ACL LOG` object: the command, key or channel.
    pub fn object(&self) -> String {
        match self {
            Denied::Command(c) => c.clone(),
            Denied::Key(k) | Denied::Channel(k) => String::from_utf8_lossy(k).into_owned(),
        }
    }

    /// How far the check got; the deepest refusal is the one reported.
    fn depth(&self) -> u8 {
        match self {
            Denied::Command(_) => 0,
            Denied::Key(_) | Denied::Channel(_) => 1,
        }
    }
}

/// What a command asks for, computed once per call from the command table.
pub struct Request<'a> {
    /// Lowercase name, `parent|sub` for container commands.
    pub name: &'a str,
    /// Categories of the command (or subcommand), without `@`.
    pub categories: &'a [&'static str],
    /// Key arguments with the access each needs.
    pub keys: Vec<(&'a [u8], KeyPerm)>,
    /// Channel arguments; `true` marks a `PSUBSCRIBE` pattern, which must be
    /// granted literally rather than matched.
    pub channels: Vec<(&'a [u8], bool)>,
    /// The first argument of a plain (non-container) command, which a
    /// `+cmd|arg` rule may allow on its own.
    pub first_arg: Option<&'a [u8]>,
}

/// Decides whether `name` is a command or category the rules may mention.
pub type NameCheck<'a> = &'a dyn Fn(&str) -> bool;

impl Selector {
    fn allows_command(&self, req: &Request<'_>) -> bool {
        let (name, categories) = (req.name, req.categories);
        let parent = name.split('|').next().unwrap_or(name);
        // `+select|0`: the command with that first argument (any case).
        let first_arg_rule = |c: &str| {
            c.split_once('|').is_some_and(|(cmd, arg)| {
                cmd == name
                    && req
                        .first_arg
                        .is_some_and(|a| a.eq_ignore_ascii_case(arg.as_bytes()))
            })
        };
        let mut ok = false;
        for r in &self.cmd_rules {
            match r {
                CmdRule::AllowCat(c) if c == "all" || categories.contains(&c.as_str()) => ok = true,
                CmdRule::DenyCat(c) if c == "all" || categories.contains(&c.as_str()) => ok = false,
                CmdRule::AllowCmd(c) if c == name || c == parent || first_arg_rule(c) => ok = true,
                CmdRule::DenyCmd(c) if c == name || c == parent => ok = false,
                _ => {}
            }
        }
        ok
    }

    fn allows_key(&self, key: &[u8], need: KeyPerm) -> bool {
        self.keys.iter().any(|p| {
            // `~*` is Redis's allkeys flag and so covers the empty key
            // name, which the pattern `*` itself (as in `%R~*`) does not.
            p.perm.covers(need)
                && ((p.perm == KeyPerm::RW && p.pattern == b"*") || glob::matches(&p.pattern, key))
        })
    }

    fn allows_channel(&self, channel: &[u8], literal: bool) -> bool {
        self.channels.iter().any(|p| {
            p.as_slice() == b"*"
                || if literal {
                    p == channel
                } else {
                    glob::matches(p, channel)
                }
        })
    }

    fn check(&self, req: &Request<'_>) -> Result<(), Denied> {
        if !self.allows_command(req) {
            return Err(Denied::Command(req.name.to_string()));
        }
        if !self.all_keys()
            && let Some((k, _)) = req.keys.iter().find(|(k, p)| !self.allows_key(k, *p))
        {
            return Err(Denied::Key(k.to_vec()));
        }
        if let Some((c, _)) = req
            .channels
            .iter()
            .find(|(c, lit)| !self.allows_channel(c, *lit))
        {
            return Err(Denied::Channel(c.to_vec()));
        }
        Ok(())
    }

    /// `+@all` as the only command rule.
    fn all_commands(&self) -> bool {
        self.cmd_rules == [CmdRule::AllowCat("all".into())]
    }

    /// `~*` with read and write.
    fn all_keys(&self) -> bool {
        self.keys
            .iter()
            .any(|p| p.pattern == b"*" && p.perm == KeyPerm::RW)
    }

    fn all_channels(&self) -> bool {
        self.channels.iter().any(|p| p == b"*")
    }

    /// Applies one command, key or channel rule. `Ok(false)` if `tok` is not
    /// one of those (the caller tries user-level rules).
    fn apply(&mut self, tok: &str, known: NameCheck<'_>) -> Result<bool, String> {
        let lower = tok.to_ascii_lowercase();
        match lower.as_str() {
            "allcommands" | "+@all" => self.cmd_rules = vec![CmdRule::AllowCat("all".into())],
            "nocommands" | "-@all" => self.cmd_rules.clear(),
            "allkeys" | "~*" => {
                self.keys = vec![KeyPattern {
                    pattern: b"*".to_vec(),
                    perm: KeyPerm::RW,
                }]
            }
            "resetkeys" => self.keys.clear(),
            "allchannels" | "&*" => self.channels = vec![b"*".to_vec()],
            "resetchannels" => self.channels.clear(),
            _ => {
                // Redis's refusals: a pattern with a space cannot be listed
                // back as one rule, and one after `*` would do nothing.
                let pattern_ok = |p: &str, all: bool, kind: &str, reset: &str| {
                    if p.contains(' ') {
                        return Err(format!("'{tok}': Syntax error"));
                    }
                    if all {
                        return Err(format!(
                            "'{tok}': Adding a pattern after the * pattern (or the 'all{kind}' \
                             flag) is not valid and does not have any effect. Try '{reset}' to \
                             start with an empty list of {}",
                            if kind == "keys" {
                                "patterns"
                            } else {
                                "channels"
                            }
                        ));
                    }
                    Ok(())
                };
                if let Some(p) = tok.strip_prefix('~') {
                    pattern_ok(p, self.all_keys(), "keys", "resetkeys")?;
                    self.add_key(p, KeyPerm::RW);
                } else if let Some(rest) = tok.strip_prefix('%') {
                    let (flags, p) = rest
                        .split_once('~')
                        .ok_or_else(|| format!("'{tok}': a %R/%W key rule needs '~pattern'"))?;
                    let mut perm = KeyPerm::NONE;
                    for f in flags.chars() {
                        // Each flag once, as Redis reads them.
                        match f.to_ascii_uppercase() {
                            'R' if !perm.read => perm.read = true,
                            'W' if !perm.write => perm.write = true,
                            _ => return Err(format!("'{tok}': Syntax error")),
                        }
                    }
                    if perm == KeyPerm::NONE {
                        return Err(format!("'{tok}': Syntax error"));
                    }
                    pattern_ok(p, self.all_keys(), "keys", "resetkeys")?;
                    self.add_key(p, perm);
                } else if let Some(p) = tok.strip_prefix('&') {
                    pattern_ok(p, self.all_channels(), "channels", "resetchannels")?;
                    self.channels.push(p.as_bytes().to_vec());
                } else if let Some(c) = lower.strip_prefix("+@") {
                    check_category(tok, c)?;
                    self.cmd_rules.push(CmdRule::AllowCat(c.to_string()));
                } else if let Some(c) = lower.strip_prefix("-@") {
                    check_category(tok, c)?;
                    self.cmd_rules.push(CmdRule::DenyCat(c.to_string()));
                } else if let Some(c) = lower.strip_prefix('+') {
                    check_command(tok, c, known)?;
                    self.cmd_rules.push(CmdRule::AllowCmd(c.to_string()));
                } else if let Some(c) = lower.strip_prefix('-') {
                    check_command(tok, c, known)?;
                    self.cmd_rules.push(CmdRule::DenyCmd(c.to_string()));
                } else {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    fn add_key(&mut self, pattern: &str, perm: KeyPerm) {
        if self.all_keys() {
            return;
        }
        if pattern == "*" && perm == KeyPerm::RW {
            self.keys = vec![KeyPattern {
                pattern: b"*".to_vec(),
                perm,
            }];
            return;
        }
        // The same pattern twice merges its permissions, as in Redis.
        if let Some(p) = self
            .keys
            .iter_mut()
            .find(|p| p.pattern == pattern.as_bytes())
        {
            p.perm.read |= perm.read;
            p.perm.write |= perm.write;
            return;
        }
        self.keys.push(KeyPattern {
            pattern: pattern.as_bytes().to_vec(),
            perm,
        });
    }

    /// Key rules as `ACL LIST` prints them.
    pub fn keys_text(&self) -> String {
        if self.all_keys() {
            return "~*".into();
        }
        self.keys
            .iter()
            .map(|p| {
                let pat = String::from_utf8_lossy(&p.pattern);
                match (p.perm.read, p.perm.write) {
                    (true, true) => format!("~{pat}"),
                    (true, false) => format!("%R~{pat}"),
                    _ => format!("%W~{pat}"),
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Channel rules as `ACL LIST` prints them.
    pub fn channels_text(&self) -> String {
        if self.all_channels() {
            return "&*".into();
        }
        self.channels
            .iter()
            .map(|p| format!("&{}", String::from_utf8_lossy(p)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Command rules as `ACL LIST` prints them: `-@all` first unless the
    /// list starts from `+@all`, so the text reproduces the permissions.
    pub fn commands_text(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.cmd_rules.first() != Some(&CmdRule::AllowCat("all".into())) {
            parts.push("-@all".into());
        }
        parts.extend(self.cmd_rules.iter().map(CmdRule::text));
        parts.join(" ")
    }

    /// As Redis 7.0 writes it: the key patterns (nothing when there are
    /// none), then `&*` or `resetchannels` followed by the channel patterns,
    /// then the command rules.
    fn describe(&self) -> String {
        let keys = self.keys_text();
        let chans = if self.all_channels() {
            "&*".to_string()
        } else {
            let mut c = String::from("resetchannels");
            for p in &self.channels {
                c.push_str(" &");
                c.push_str(&String::from_utf8_lossy(p));
            }
            c
        };
        [keys, chans, self.commands_text()]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn check_category(tok: &str, c: &str) -> Result<(), String> {
    if c == "all" || CATEGORIES.contains(&c) {
        Ok(())
    } else {
        Err(format!("'{tok}': Unknown command or category name in ACL"))
    }
}

/// Validates a command rule as Redis 7.0 does: a command, a container's real
/// subcommand, or (allowing only) a plain command with its first argument
/// (`+select|0`, which Redis 7.0 still accepts).
fn check_command(tok: &str, c: &str, known: NameCheck<'_>) -> Result<(), String> {
    let unknown = || Err(format!("'{tok}': Unknown command or category name in ACL"));
    let mut parts = c.split('|');
    let parent = parts.next().unwrap_or(c);
    let (sub, rest) = (parts.next(), parts.next());
    if c.is_empty() || c.ends_with('|') || !known(parent) || parts.next().is_some() {
        return unknown();
    }
    let Some(sub) = sub else { return Ok(()) };
    if is_container(parent) {
        if !known_subcommand(&format!("{parent}|{sub}")) {
            return unknown();
        }
        if rest.is_some() {
            return Err(format!(
                "'{tok}': Allowing first-arg of a subcommand is not supported"
            ));
        }
        return Ok(());
    }
    if rest.is_some() || !tok.starts_with('+') {
        return unknown();
    }
    Ok(())
}

/// Parsed ACL state of one user: flag, passwords and selectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    enabled: bool,
    nopass: bool,
    /// Redis's `sanitize-payload` (true) / `skip-sanitize-payload` (false)
    /// flag, kept and shown as Redis shows it; RESTORE here always checks
    /// its payload whatever it says.
    sanitize: Option<bool>,
    hashes: Vec<[u8; 32]>,
    root: Selector,
    selectors: Vec<Selector>,
}

/// Where a rule string comes from: the policy file may not carry passwords
/// (they have their own keys, and a plaintext one must never sit in TOML).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSource {
    /// `[[store.users]] rules`.
    Policy,
    /// `ACL SETUSER` arguments.
    Runtime,
}

/// Splits a rule string into rules; a selector `( ... )` is one rule even
/// when it contains spaces.
pub fn tokenize(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut open: Option<String> = None;
    for tok in s.split_whitespace() {
        match open.as_mut() {
            Some(sel) => {
                sel.push(' ');
                sel.push_str(tok);
                if tok.ends_with(')') {
                    out.extend(open.take());
                }
            }
            None if tok.starts_with('(') && !tok.ends_with(')') => open = Some(tok.to_string()),
            None => out.push(tok.to_string()),
        }
    }
    if let Some(sel) = open {
        return Err(format!(
            "'{sel}': Unmatched parenthesis in acl selector starting at '('."
        ));
    }
    Ok(out)
}

impl Rules {
    /// A user that can do nothing: what `ACL SETUSER` starts a new user from.
    pub fn empty() -> Rules {
        Rules {
            enabled: false,
            nopass: false,
            sanitize: None,
            hashes: Vec::new(),
            root: Selector::default(),
            selectors: Vec::new(),
        }
    }

    /// Applies one rule (or one whole selector in parentheses).
    pub fn apply(
        &mut self,
        tok: &str,
        src: RuleSource,
        known: NameCheck<'_>,
    ) -> Result<(), String> {
        if let Some(inner) = tok.strip_prefix('(') {
            let inner = inner
                .strip_suffix(')')
                .ok_or_else(|| format!("'{tok}': Unmatched parenthesis in acl selector"))?;
            let mut sel = Selector::default();
            for t in inner.split_whitespace() {
                if !sel.apply(t, known)? {
                    return Err(format!("'{t}': Syntax error"));
                }
            }
            self.selectors.push(sel);
            return Ok(());
        }
        if self.root.apply(tok, known)? {
            return Ok(());
        }
        let lower = tok.to_ascii_lowercase();
        let is_password_rule = matches!(lower.as_str(), "nopass" | "resetpass")
            || tok.starts_with(['>', '<', '#', '!']);
        if is_password_rule && src == RuleSource::Policy {
            return Err(format!(
                "'{tok}': passwords are not set in rules; use password_sha256, password_file, password_env or nopass = true"
            ));
        }
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.hashes.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.hashes.clear();
            }
            "clearselectors" => self.selectors.clear(),
            "reset" => {
                *self = Rules::empty();
                self.sanitize = Some(true);
            }
            "sanitize-payload" => self.sanitize = Some(true),
            "skip-sanitize-payload" => self.sanitize = Some(false),
            _ => {
                if let Some(p) = tok.strip_prefix('>') {
                    let h: [u8; 32] = Sha256::digest(p.as_bytes()).into();
                    if !self.hashes.contains(&h) {
                        self.hashes.push(h);
                    }
                    self.nopass = false;
                } else if let Some(p) = tok.strip_prefix('<') {
                    let h: [u8; 32] = Sha256::digest(p.as_bytes()).into();
                    let before = self.hashes.len();
                    self.hashes.retain(|x| *x != h);
                    if before == self.hashes.len() {
                        return Err(format!("'{tok}': no such password for this user"));
                    }
                } else if let Some(hex) = tok.strip_prefix('#') {
                    let h = parse_hash(hex).ok_or_else(|| {
                        format!("'{tok}': The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")
                    })?;
                    if !self.hashes.contains(&h) {
                        self.hashes.push(h);
                    }
                    self.nopass = false;
                } else if let Some(hex) = tok.strip_prefix('!') {
                    let h = parse_hash(hex).ok_or_else(|| {
                        format!("'{tok}': The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")
                    })?;
                    let before = self.hashes.len();
                    self.hashes.retain(|x| *x != h);
                    if before == self.hashes.len() {
                        return Err(format!("'{tok}': no such password hash for this user"));
                    }
                } else {
                    return Err(format!("'{tok}': Syntax error"));
                }
            }
        }
        Ok(())
    }

    /// Whether the user is enabled (`on`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether any password (or none) is accepted.
    pub fn nopass(&self) -> bool {
        self.nopass
    }

    /// Checks a request against the root selector, then every other selector;
    /// any one granting it all is enough.
    pub fn check(&self, req: &Request<'_>) -> Result<(), Denied> {
        let mut worst = match self.root.check(req) {
            Ok(()) => return Ok(()),
            Err(d) => d,
        };
        for s in &self.selectors {
            match s.check(req) {
                Ok(()) => return Ok(()),
                Err(d) if d.depth() > worst.depth() => worst = d,
                Err(_) => {}
            }
        }
        Err(worst)
    }

    /// The `ACL LIST` line after `user <name> `.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.flags().into_iter().map(String::from).collect();
        parts.extend(self.hashes.iter().map(|h| format!("#{}", hex::encode(h))));
        parts.push(self.root.describe());
        parts.extend(self.selectors.iter().map(|s| format!("({})", s.describe())));
        parts.join(" ")
    }

    /// `ACL GETUSER` flags.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize {
            Some(false) => f.push("skip-sanitize-payload"),
            Some(true) => f.push("sanitize-payload"),
            None => {}
        }
        f
    }

    /// Hex password digests, for `ACL GETUSER`.
    pub fn password_hashes(&self) -> Vec<String> {
        self.hashes.iter().map(hex::encode).collect()
    }

    /// The root selector.
    pub fn root(&self) -> &Selector {
        &self.root
    }

    /// The extra selectors.
    pub fn selectors(&self) -> &[Selector] {
        &self.selectors
    }
}

fn parse_hash(hex_text: &str) -> Option<[u8; 32]> {
    if hex_text.len() != 64 || hex_text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(hex_text).ok()?.try_into().ok()
}

/// Whether a command name may appear in rules: one the store has, or one it
/// refuses by design (so that `-flushall` or `-debug` in a policy is valid).
pub fn known_command(name: &str) -> bool {
    crate::store::cmd::lookup(name.as_bytes()).is_some()
        || crate::store::cmd::REFUSED_COMMANDS.contains(&name)
        || REDIS_ONLY_COMMANDS.binary_search(&name).is_ok()
}

/// Whether `name` is a container command in Redis 7.0 or here.
fn is_container(name: &str) -> bool {
    crate::store::cmd::CONTAINERS.contains(&name)
        || REDIS_SUBCOMMANDS
            .iter()
            .any(|s| s.split_once('|').is_some_and(|(p, _)| p == name))
}

/// Whether `full` (`container|sub`) names a real subcommand.
fn known_subcommand(full: &str) -> bool {
    REDIS_SUBCOMMANDS.binary_search(&full).is_ok()
        || crate::store::cmd::SUBCOMMANDS
            .iter()
            .any(|(n, _)| *n == full)
}

/// Redis 7.0 commands this store does not implement (streams, bitmaps,
/// HyperLogLog, geo, SORT, WAIT, cluster, sharded pub/sub). Rules may name
/// them, so that a policy written for Redis (`+@all -sort`) loads here too;
/// they match nothing, since nothing here runs them.
pub const REDIS_ONLY_COMMANDS: &[&str] = &[
    "asking",
    "bitcount",
    "bitfield",
    "bitfield_ro",
    "bitop",
    "bitpos",
    "cluster",
    "geoadd",
    "geodist",
    "geohash",
    "geopos",
    "georadius",
    "georadius_ro",
    "georadiusbymember",
    "georadiusbymember_ro",
    "geosearch",
    "geosearchstore",
    "getbit",
    "lolwut",
    "pfadd",
    "pfcount",
    "pfdebug",
    "pfmerge",
    "pfselftest",
    "readonly",
    "readwrite",
    "replconf",
    "restore-asking",
    "setbit",
    "sort",
    "sort_ro",
    "spublish",
    "ssubscribe",
    "sunsubscribe",
    "wait",
    "xack",
    "xadd",
    "xautoclaim",
    "xclaim",
    "xdel",
    "xgroup",
    "xinfo",
    "xlen",
    "xpending",
    "xrange",
    "xread",
    "xreadgroup",
    "xrevrange",
    "xsetid",
    "xtrim",
];

/// Every subcommand of a Redis 7.0 container command (`COMMAND LIST` on
/// redis-server 7.0.15), for validating `+container|sub` rules.
pub const REDIS_SUBCOMMANDS: &[&str] = &[
    "acl|cat",
    "acl|deluser",
    "acl|dryrun",
    "acl|genpass",
    "acl|getuser",
    "acl|help",
    "acl|list",
    "acl|load",
    "acl|log",
    "acl|save",
    "acl|setuser",
    "acl|users",
    "acl|whoami",
    "client|caching",
    "client|getname",
    "client|getredir",
    "client|help",
    "client|id",
    "client|info",
    "client|kill",
    "client|list",
    "client|no-evict",
    "client|pause",
    "client|reply",
    "client|setname",
    "client|tracking",
    "client|trackinginfo",
    "client|unblock",
    "client|unpause",
    "cluster|addslots",
    "cluster|addslotsrange",
    "cluster|bumpepoch",
    "cluster|count-failure-reports",
    "cluster|countkeysinslot",
    "cluster|delslots",
    "cluster|delslotsrange",
    "cluster|failover",
    "cluster|flushslots",
    "cluster|forget",
    "cluster|getkeysinslot",
    "cluster|help",
    "cluster|info",
    "cluster|keyslot",
    "cluster|links",
    "cluster|meet",
    "cluster|myid",
    "cluster|nodes",
    "cluster|replicas",
    "cluster|replicate",
    "cluster|reset",
    "cluster|saveconfig",
    "cluster|set-config-epoch",
    "cluster|setslot",
    "cluster|shards",
    "cluster|slaves",
    "cluster|slots",
    "command|count",
    "command|docs",
    "command|getkeys",
    "command|getkeysandflags",
    "command|help",
    "command|info",
    "command|list",
    "config|get",
    "config|help",
    "config|resetstat",
    "config|rewrite",
    "config|set",
    "function|delete",
    "function|dump",
    "function|flush",
    "function|help",
    "function|kill",
    "function|list",
    "function|load",
    "function|restore",
    "function|stats",
    "latency|doctor",
    "latency|graph",
    "latency|help",
    "latency|histogram",
    "latency|history",
    "latency|latest",
    "latency|reset",
    "memory|doctor",
    "memory|help",
    "memory|malloc-stats",
    "memory|purge",
    "memory|stats",
    "memory|usage",
    "module|help",
    "module|list",
    "module|load",
    "module|loadex",
    "module|unload",
    "object|encoding",
    "object|freq",
    "object|help",
    "object|idletime",
    "object|refcount",
    "pubsub|channels",
    "pubsub|help",
    "pubsub|numpat",
    "pubsub|numsub",
    "pubsub|shardchannels",
    "pubsub|shardnumsub",
    "script|debug",
    "script|exists",
    "script|flush",
    "script|help",
    "script|kill",
    "script|load",
    "slowlog|get",
    "slowlog|help",
    "slowlog|len",
    "slowlog|reset",
    "xgroup|create",
    "xgroup|createconsumer",
    "xgroup|delconsumer",
    "xgroup|destroy",
    "xgroup|help",
    "xgroup|setid",
    "xinfo|consumers",
    "xinfo|groups",
    "xinfo|help",
    "xinfo|stream",
];

/// Parses a rule string from the policy file. An empty string means
/// `on ~* &* +@all`, so that a user given only a password can use the store.
pub fn parse_rules(s: &str) -> Result<Rules, String> {
    let s = if s.trim().is_empty() {
        "on ~* &* +@all"
    } else {
        s
    };
    // Users declared in the policy are meant to be used: `on` unless it says `off`.
    let mut r = Rules::empty();
    r.enabled = true;
    for tok in tokenize(s)? {
        r.apply(&tok, RuleSource::Policy, &known_command)?;
    }
    Ok(r)
}

/// A user: a name and its rules. Replaced whole (never mutated) on `ACL SETUSER`.
#[derive(Debug)]
pub struct User {
    /// Name used with `AUTH name pass`.
    pub name: String,
    /// ACL state.
    pub rules: Rules,
    unrestricted: bool,
}

impl User {
    /// Whether the user may subscribe to `channel` (a pattern when not
    /// `literal`, which must then be granted as written), through its
    /// root rules or any selector, as Redis checks live subscriptions
    /// after an `ACL SETUSER`.
    pub fn allows_channel(&self, channel: &[u8], literal: bool) -> bool {
        self.unrestricted
            || self.rules.root.allows_channel(channel, literal)
            || self
                .rules
                .selectors
                .iter()
                .any(|s| s.allows_channel(channel, literal))
    }

    /// Builds a user, precomputing whether it may skip per-command checks.
    pub fn new(name: String, rules: Rules) -> User {
        let unrestricted =
            rules.root.all_commands() && rules.root.all_keys() && rules.root.all_channels();
        User {
            name,
            rules,
            unrestricted,
        }
    }

    /// Whether the user is enabled (`on`).
    pub fn enabled(&self) -> bool {
        self.rules.enabled
    }

    /// `nopass`: any password (or none) is accepted.
    pub fn nopass(&self) -> bool {
        self.rules.nopass
    }

    /// All commands, keys and channels: no per-command ACL work needed.
    pub fn unrestricted(&self) -> bool {
        self.unrestricted
    }

    /// Checks one request.
    pub fn check(&self, req: &Request<'_>) -> Result<(), Denied> {
        if self.unrestricted {
            return Ok(());
        }
        self.rules.check(req)
    }

    fn check_password(&self, password: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(password).into();
        // Every stored digest is compared, matched or not, so the time taken
        // says nothing about which one (if any) matched.
        let mut ok = false;
        for h in &self.rules.hashes {
            ok |= ct_eq(h, &digest);
        }
        if self.rules.hashes.is_empty() {
            let _ = ct_eq(&[0u8; 32], &digest);
        }
        ok || self.rules.nopass
    }
}

/// Constant-time equality of two digests.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for i in 0..32 {
        diff |= a[i] ^ b[i];
    }
    std::hint::black_box(diff) == 0
}

/// All users. The table is swapped for a new one on `ACL SETUSER/DELUSER`;
/// connections hold `Arc<User>` snapshots and refresh them when the table's
/// epoch moves.
#[derive(Debug)]
pub struct Users {
    map: HashMap<String, Arc<User>>,
    dummy: [u8; 32],
}

impl Users {
    /// Builds the user table, reading `password_file`/`password_env` now.
    /// With no users configured, a `default` user with `nopass` and all permissions exists.
    pub fn from_config(users: &[UserConfig]) -> anyhow::Result<Users> {
        let mut map = HashMap::new();
        if users.is_empty() {
            let u = UserConfig {
                name: "default".into(),
                nopass: true,
                rules: "on ~* &* +@all".into(),
                ..Default::default()
            };
            map.insert(u.name.clone(), Arc::new(build_user(&u, 0)?));
        }
        for (i, u) in users.iter().enumerate() {
            map.insert(u.name.clone(), Arc::new(build_user(u, i)?));
        }
        Ok(Users {
            map,
            dummy: Sha256::digest(b"redis-guard-dummy").into(),
        })
    }

    /// The user a new connection is logged in as without `AUTH`, if any:
    /// an enabled `default` user with `nopass`, or, when no enabled user has a
    /// password at all, the first enabled `nopass` user.
    pub fn autologin(&self) -> Option<Arc<User>> {
        if let Some(u) = self.map.get("default")
            && u.nopass()
            && u.enabled()
        {
            return Some(u.clone());
        }
        if self.map.values().any(|u| u.enabled() && !u.nopass()) {
            return None;
        }
        let mut names: Vec<&String> = self.map.keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|n| &self.map[n])
            .find(|u| u.enabled() && u.nopass())
            .cloned()
    }

    /// Looks a user up by name.
    pub fn get(&self, name: &str) -> Option<Arc<User>> {
        self.map.get(name).cloned()
    }

    /// User names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.map.keys().cloned().collect();
        v.sort();
        v
    }

    /// Adds or replaces a user.
    pub fn insert(&mut self, user: User) {
        self.map.insert(user.name.clone(), Arc::new(user));
    }

    /// Removes a user; whether it existed.
    pub fn remove(&mut self, name: &str) -> bool {
        self.map.remove(name).is_some()
    }

    /// Checks a name/password pair; `None` for unknown users, wrong passwords and disabled users.
    pub fn authenticate(&self, name: &[u8], password: &[u8]) -> Option<Arc<User>> {
        let name = std::str::from_utf8(name).ok();
        match name.and_then(|n| self.map.get(n)) {
            Some(u) => {
                let ok = u.check_password(password);
                (ok && u.enabled()).then(|| u.clone())
            }
            None => {
                let digest: [u8; 32] = Sha256::digest(password).into();
                let _ = ct_eq(&self.dummy, &digest);
                None
            }
        }
    }
}

fn build_user(u: &UserConfig, i: usize) -> anyhow::Result<User> {
    let mut rules =
        parse_rules(&u.rules).map_err(|e| anyhow::anyhow!("store.users[{i}].rules: {e}"))?;
    let hash: Option<[u8; 32]> = if let Some(h) = &u.password_sha256 {
        let bytes = hex::decode(h).with_context(|| format!("store.users[{i}].password_sha256"))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("store.users[{i}].password_sha256: must be 32 bytes"))?;
        Some(arr)
    } else if let Some(p) = &u.password_file {
        let text = std::fs::read(p)
            .with_context(|| format!("store.users[{i}].password_file: reading {}", p.display()))?;
        let mut t: &[u8] = &text;
        while let [rest @ .., b'\n' | b'\r'] = t {
            t = rest;
        }
        if t.is_empty() {
            anyhow::bail!("store.users[{i}].password_file: {} is empty", p.display());
        }
        Some(Sha256::digest(t).into())
    } else if let Some(var) = &u.password_env {
        let v = std::env::var_os(var)
            .with_context(|| format!("store.users[{i}].password_env: ${var} is not set"))?;
        if v.is_empty() {
            anyhow::bail!("store.users[{i}].password_env: ${var} is empty");
        }
        Some(Sha256::digest(v.as_encoded_bytes()).into())
    } else {
        None
    };
    rules.hashes.extend(hash);
    rules.nopass = u.nopass;
    Ok(User::new(u.name.clone(), rules))
}

/// Hex SHA-256 of a password, as expected in `password_sha256`.
pub fn sha256_hex(password: &[u8]) -> String {
    hex::encode(Sha256::digest(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &str) -> User {
        build_user(
            &UserConfig {
                name: "a".into(),
                nopass: true,
                rules: rules.into(),
                ..Default::default()
            },
            0,
        )
        .unwrap()
    }

    fn req<'a>(
        name: &'a str,
        cats: &'a [&'static str],
        keys: Vec<(&'a [u8], KeyPerm)>,
    ) -> Request<'a> {
        Request {
            name,
            categories: cats,
            keys,
            channels: Vec::new(),
            first_arg: None,
        }
    }

    #[test]
    fn command_rules_last_one_wins() {
        let u = user("on ~app:* +@read -get");
        assert!(u.check(&req("mget", &["read", "string"], vec![])).is_ok());
        assert_eq!(
            u.check(&req("get", &["read", "string"], vec![])),
            Err(Denied::Command("get".into()))
        );
        assert!(u.check(&req("set", &["write", "string"], vec![])).is_err());
        let u = user("on ~* -@all +config|get");
        assert!(u.check(&req("config|get", &["admin"], vec![])).is_ok());
        assert!(u.check(&req("config|set", &["admin"], vec![])).is_err());
    }

    #[test]
    fn key_permissions() {
        let u = user("on +@all %R~r:* %W~w:* ~rw:*");
        let ok = |k: &'static [u8], p| u.check(&req("x", &["read"], vec![(k, p)])).is_ok();
        assert!(ok(b"r:1", KeyPerm::R));
        assert!(!ok(b"r:1", KeyPerm::W));
        assert!(ok(b"w:1", KeyPerm::W));
        assert!(!ok(b"w:1", KeyPerm::R));
        assert!(!ok(b"w:1", KeyPerm::RW));
        assert!(ok(b"rw:1", KeyPerm::RW));
        assert!(ok(b"w:1", KeyPerm::NONE));
        assert!(!ok(b"other", KeyPerm::NONE));
        assert_eq!(u.rules.root().keys_text(), "%R~r:* %W~w:* ~rw:*");
    }

    #[test]
    fn selectors_grant_independently() {
        let u = user("on ~app:* +@read (~log:* +rpush)");
        assert!(
            u.check(&req("get", &["read"], vec![(b"app:1", KeyPerm::R)]))
                .is_ok()
        );
        assert!(
            u.check(&req("rpush", &["write"], vec![(b"log:1", KeyPerm::W)]))
                .is_ok()
        );
        assert_eq!(
            u.check(&req("rpush", &["write"], vec![(b"app:1", KeyPerm::W)])),
            Err(Denied::Key(b"app:1".to_vec()))
        );
        assert!(
            u.check(&req("get", &["read"], vec![(b"log:1", KeyPerm::R)]))
                .is_err()
        );
        assert_eq!(
            u.rules.describe(),
            "on nopass ~app:* resetchannels -@all +@read (~log:* resetchannels -@all +rpush)"
        );
    }

    #[test]
    fn policy_rules_refuse_passwords_and_unknown_names() {
        assert!(
            parse_rules("on >secret +@all")
                .unwrap_err()
                .contains("password_sha256")
        );
        assert!(parse_rules("on nopass").is_err());
        assert!(
            parse_rules("on +@nosuch")
                .unwrap_err()
                .contains("Unknown command")
        );
        assert!(parse_rules("on +nosuchcommand").is_err());
        assert!(parse_rules("on +@all -flushall -debug -keys").is_ok());
        assert!(
            parse_rules("on (~a +get")
                .unwrap_err()
                .contains("Unmatched")
        );
    }

    #[test]
    fn passwords() {
        let users = Users::from_config(&[UserConfig {
            name: "default".into(),
            password_sha256: Some(sha256_hex(b"secret")),
            ..Default::default()
        }])
        .unwrap();
        assert!(users.autologin().is_none());
        assert!(users.authenticate(b"default", b"secret").is_some());
        assert!(users.authenticate(b"default", b"nope").is_none());
        assert!(users.authenticate(b"ghost", b"secret").is_none());
    }

    #[test]
    fn runtime_password_rules() {
        let mut r = Rules::empty();
        for t in ["on", ">one", ">two", "+@all", "~*"] {
            r.apply(t, RuleSource::Runtime, &known_command).unwrap();
        }
        let u = User::new("u".into(), r.clone());
        assert!(u.check_password(b"one") && u.check_password(b"two"));
        r.apply("<one", RuleSource::Runtime, &known_command)
            .unwrap();
        let u = User::new("u".into(), r);
        assert!(!u.check_password(b"one") && u.check_password(b"two"));
    }
}
