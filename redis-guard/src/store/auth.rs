//! Users, passwords and the subset of Redis ACL rules the store enforces.
//!
//! Passwords are only ever held as SHA-256 digests and compared in constant
//! time. Rules understood: `on`, `off`, `allcommands`/`+@all`, `nocommands`/`-@all`,
//! `+@category`, `-@category`, `+command`, `-command`, `allkeys`/`~pattern`,
//! `resetkeys`, `allchannels`/`&pattern`, `resetchannels`, `reset`. Other rules
//! (selectors, `%R~`, `>pass`, ...) are kept verbatim for a later issue and
//! grant nothing.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::store::config::UserConfig;
use crate::store::glob;

/// One command-permission step; later steps override earlier ones like in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CmdRule {
    AllowAll,
    DenyAll,
    AllowCat(String),
    DenyCat(String),
    AllowCmd(String),
    DenyCmd(String),
}

/// Parsed ACL rules of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    enabled: bool,
    cmd_rules: Vec<CmdRule>,
    all_keys: bool,
    key_patterns: Vec<Vec<u8>>,
    all_channels: bool,
    channel_patterns: Vec<Vec<u8>>,
    /// Rules this version does not enforce, kept as written.
    pub unknown: Vec<String>,
}

/// Parses a rule string. An empty string means `on ~* &* +@all`, so that a
/// user given only a password can use the store.
pub fn parse_rules(s: &str) -> Result<Rules, String> {
    let s = if s.trim().is_empty() {
        "on ~* &* +@all"
    } else {
        s
    };
    let mut r = Rules {
        enabled: true,
        cmd_rules: Vec::new(),
        all_keys: false,
        key_patterns: Vec::new(),
        all_channels: false,
        channel_patterns: Vec::new(),
        unknown: Vec::new(),
    };
    for tok in s.split_whitespace() {
        let lower = tok.to_ascii_lowercase();
        match lower.as_str() {
            "on" => r.enabled = true,
            "off" => r.enabled = false,
            "allcommands" | "+@all" => r.cmd_rules = vec![CmdRule::AllowAll],
            "nocommands" | "-@all" => r.cmd_rules = vec![CmdRule::DenyAll],
            "allkeys" | "~*" => r.all_keys = true,
            "resetkeys" => {
                r.all_keys = false;
                r.key_patterns.clear();
            }
            "allchannels" | "&*" => r.all_channels = true,
            "resetchannels" => {
                r.all_channels = false;
                r.channel_patterns.clear();
            }
            "reset" => {
                r.enabled = false;
                r.cmd_rules.clear();
                r.all_keys = false;
                r.key_patterns.clear();
                r.all_channels = false;
                r.channel_patterns.clear();
            }
            _ => {
                if let Some(p) = tok.strip_prefix('~') {
                    r.key_patterns.push(p.as_bytes().to_vec());
                } else if let Some(p) = tok.strip_prefix('&') {
                    r.channel_patterns.push(p.as_bytes().to_vec());
                } else if let Some(c) = lower.strip_prefix("+@") {
                    r.cmd_rules.push(CmdRule::AllowCat(c.to_string()));
                } else if let Some(c) = lower.strip_prefix("-@") {
                    r.cmd_rules.push(CmdRule::DenyCat(c.to_string()));
                } else if let Some(c) = lower.strip_prefix('+') {
                    if c.is_empty() {
                        return Err(format!("invalid rule {tok:?}"));
                    }
                    r.cmd_rules.push(CmdRule::AllowCmd(c.to_string()));
                } else if let Some(c) = lower.strip_prefix('-') {
                    if c.is_empty() {
                        return Err(format!("invalid rule {tok:?}"));
                    }
                    r.cmd_rules.push(CmdRule::DenyCmd(c.to_string()));
                } else {
                    r.unknown.push(tok.to_string());
                }
            }
        }
    }
    Ok(r)
}

/// A configured user.
#[derive(Debug)]
pub struct User {
    /// Name used with `AUTH name pass`.
    pub name: String,
    /// `nopass`: any password (or none) is accepted.
    pub nopass: bool,
    hash: Option<[u8; 32]>,
    /// Parsed rules.
    pub rules: Rules,
    /// Rule string as configured (for `ACL WHOAMI`-style introspection later).
    pub rules_text: String,
    all_commands: bool,
}

impl User {
    /// Whether the user is enabled (`on`).
    pub fn enabled(&self) -> bool {
        self.rules.enabled
    }

    /// Whether the user may run `cmd` (lowercase name, possibly `parent|sub`)
    /// belonging to `categories` (without `@`).
    pub fn can_run(&self, cmd: &str, categories: &[&str]) -> bool {
        if self.all_commands {
            return true;
        }
        let parent = cmd.split('|').next().unwrap_or(cmd);
        let mut ok = false;
        for r in &self.rules.cmd_rules {
            match r {
                CmdRule::AllowAll => ok = true,
                CmdRule::DenyAll => ok = false,
                CmdRule::AllowCat(c) if categories.contains(&c.as_str()) => ok = true,
                CmdRule::DenyCat(c) if categories.contains(&c.as_str()) => ok = false,
                CmdRule::AllowCmd(c) if c == cmd || c == parent => ok = true,
                CmdRule::DenyCmd(c) if c == cmd || c == parent => ok = false,
                _ => {}
            }
        }
        ok
    }

    /// Whether the user may access `key`.
    pub fn can_key(&self, key: &[u8]) -> bool {
        self.rules.all_keys
            || self
                .rules
                .key_patterns
                .iter()
                .any(|p| glob::matches(p, key))
    }

    /// Whether the user may use pub/sub `channel` (or subscribe to the pattern text).
    pub fn can_channel(&self, channel: &[u8]) -> bool {
        self.rules.all_channels
            || self
                .rules
                .channel_patterns
                .iter()
                .any(|p| glob::matches(p, channel))
    }

    /// All commands and all keys: no per-command ACL work needed.
    pub fn unrestricted(&self) -> bool {
        self.all_commands && self.rules.all_keys
    }

    /// Whether the user has unrestricted key access (skips per-key checks).
    pub fn all_keys(&self) -> bool {
        self.rules.all_keys
    }

    fn check_password(&self, password: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(password).into();
        match &self.hash {
            Some(h) => ct_eq(h, &digest),
            None => {
                // Same amount of work as a real comparison.
                let _ = ct_eq(&[0u8; 32], &digest);
                self.nopass
            }
        }
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

/// All users, fixed at start.
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
            && u.nopass
            && u.enabled()
        {
            return Some(u.clone());
        }
        if self.map.values().any(|u| u.enabled() && !u.nopass) {
            return None;
        }
        let mut names: Vec<&String> = self.map.keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|n| &self.map[n])
            .find(|u| u.enabled() && u.nopass)
            .cloned()
    }

    /// Looks a user up by name.
    pub fn get(&self, name: &str) -> Option<Arc<User>> {
        self.map.get(name).cloned()
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
    let rules =
        parse_rules(&u.rules).map_err(|e| anyhow::anyhow!("store.users[{i}].rules: {e}"))?;
    let hash = if let Some(h) = &u.password_sha256 {
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
    let all_commands =
        rules.cmd_rules.last() == Some(&CmdRule::AllowAll) && rules.cmd_rules.len() == 1;
    Ok(User {
        name: u.name.clone(),
        nopass: u.nopass,
        hash,
        rules_text: u.rules.clone(),
        rules,
        all_commands,
    })
}

/// Hex SHA-256 of a password, as expected in `password_sha256`.
pub fn sha256_hex(password: &[u8]) -> String {
    hex::encode(Sha256::digest(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let u = build_user(
            &UserConfig {
                name: "a".into(),
                nopass: true,
                rules: "on ~app:* +@read -get".into(),
                ..Default::default()
            },
            0,
        )
        .unwrap();
        assert!(u.can_run("mget", &["read", "string"]));
        assert!(!u.can_run("get", &["read", "string"]));
        assert!(!u.can_run("set", &["write", "string"]));
        assert!(u.can_key(b"app:1"));
        assert!(!u.can_key(b"other"));
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
}
