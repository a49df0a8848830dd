//! The `[store]` TOML table: defaults, sizes, validation naming the key.

use redis_guard::store::StoreConfig;
use redis_guard::store::config::{ByteSize, EvictionPolicy};

#[derive(serde::Deserialize)]
struct File {
    #[serde(default)]
    store: StoreConfig,
}

fn parse(s: &str) -> Result<StoreConfig, String> {
    toml::from_str::<File>(s)
        .map(|f| f.store)
        .map_err(|e| e.to_string())
}

#[test]
fn full_example_parses() {
    let c = parse(
        r#"
[store]
enabled = true
listen = ["127.0.0.1:6379", "[::1]:6380"]
data_dir = "/var/lib/redis-guard"
databases = 16
maxclients = 10000
maxmemory = "512mb"
maxmemory_policy = "allkeys-lru"
appendonly = false
proto_max_bulk_len = "512mb"
client_query_buffer_limit = "1gb"
timeout = 0

[[store.users]]
name = "default"
password_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
rules = "~* &* +@all"

[[store.users]]
name = "app"
nopass = true
rules = "on ~app:* +@read"
"#,
    )
    .unwrap();
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.maxmemory, ByteSize(512 * 1024 * 1024));
    assert_eq!(c.maxmemory_policy, EvictionPolicy::AllkeysLru);
    assert_eq!(c.client_query_buffer_limit, ByteSize(1 << 30));
    assert_eq!(c.users.len(), 2);
    c.validate().unwrap();
}

#[test]
fn defaults_and_integer_sizes() {
    let c = parse("[store]\nmaxmemory = 1048576\nproto_max_bulk_len = \"100kb\"\n").unwrap();
    assert_eq!(c.maxmemory, ByteSize(1048576));
    assert_eq!(c.proto_max_bulk_len, ByteSize(102400));
    assert_eq!(c.listen, vec!["127.0.0.1:6379".parse().unwrap()]);
    assert_eq!(c.databases, 16);
    assert_eq!(c.maxmemory_policy, EvictionPolicy::NoEviction);
    assert!(c.enabled);
    let c = parse("").unwrap();
    assert_eq!(c, StoreConfig::default());
    c.validate().unwrap();
    let c = parse("[store]\nmaxmemory = \"0\"\n").unwrap();
    assert_eq!(c.maxmemory, ByteSize(0));
    for (name, policy) in [
        ("noeviction", EvictionPolicy::NoEviction),
        ("allkeys-lru", EvictionPolicy::AllkeysLru),
        ("volatile-lru", EvictionPolicy::VolatileLru),
        ("allkeys-random", EvictionPolicy::AllkeysRandom),
        ("volatile-ttl", EvictionPolicy::VolatileTtl),
    ] {
        let c = parse(&format!("[store]\nmaxmemory_policy = \"{name}\"\n")).unwrap();
        assert_eq!(c.maxmemory_policy, policy);
        assert_eq!(policy.as_str(), name);
    }
}

#[test]
fn persistence_keys() {
    use redis_guard::store::persist::FsyncPolicy;
    let c = parse("").unwrap();
    assert!(c.appendonly, "durable by default");
    assert_eq!(c.appendfsync, FsyncPolicy::Everysec);
    assert_eq!(c.auto_compact_percentage, 100);
    assert_eq!(c.auto_compact_min_size, ByteSize(64 << 20));
    let c = parse(
        "[store]\nappendonly = true\nappendfsync = \"always\"\nauto_compact_percentage = 50\nauto_compact_min_size = \"1mb\"\n",
    )
    .unwrap();
    assert_eq!(c.appendfsync, FsyncPolicy::Always);
    assert_eq!(c.auto_compact_percentage, 50);
    assert_eq!(c.auto_compact_min_size, ByteSize(1 << 20));
    for p in ["always", "everysec", "no"] {
        let c = parse(&format!("[store]\nappendfsync = \"{p}\"\n")).unwrap();
        assert_eq!(c.appendfsync.as_str(), p);
    }
    let e = parse("[store]\nappendfsync = \"sometimes\"\n").unwrap_err();
    assert!(e.contains("appendfsync"), "{e}");
    let e = parse("[store]\nauto_compact_min_size = \"lots\"\n").unwrap_err();
    assert!(e.contains("auto_compact_min_size"), "{e}");
    let e = parse("[store]\nauto_compact_percentage = -1\n").unwrap_err();
    assert!(e.contains("auto_compact_percentage"), "{e}");
    let c = parse("[store]\nauto_compact_percentage = 2000000\n").unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("store.auto_compact_percentage:"), "{e}");
}

#[test]
fn unknown_keys_and_bad_values_are_rejected() {
    assert!(parse("[store]\nbogus = 1\n").unwrap_err().contains("bogus"));
    assert!(parse("[store]\nmaxmemory = \"12 parsecs\"\n").is_err());
    assert!(parse("[store]\nmaxmemory_policy = \"allkeys-lfu\"\n").is_err());
    assert!(parse("[store]\n[[store.users]]\nname = \"x\"\npassword = \"clear\"\n").is_err());
}

#[test]
fn validate_names_the_key() {
    let bad = |toml: &str, key: &str| {
        let c = parse(toml).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.starts_with(&format!("store.{key}:")), "{e}");
    };
    bad("[store]\ndatabases = 0\n", "databases");
    bad("[store]\nlisten = []\n", "listen");
    bad("[store]\nmaxclients = 0\n", "maxclients");
    bad("[store]\nthreads = 5000\n", "threads");
    bad("[store]\nslowlog_max_len = 10001\n", "slowlog_max_len");
    bad("[store]\ntcp_keepalive = 32768\n", "tcp_keepalive");
    bad("[store]\ndata_dir = \"relative\"\n", "data_dir");
    bad("[store]\nproto_max_bulk_len = 10\n", "proto_max_bulk_len");
    bad(
        "[store]\n[[store.users]]\nname = \"a\"\npassword_sha256 = \"xyz\"\n",
        "users[0].password_sha256",
    );
    bad(
        "[store]\n[[store.users]]\nname = \"a\"\n",
        "users[0].password_sha256",
    );
    bad(
        "[store]\n[[store.users]]\nname = \"a\"\nnopass = true\n[[store.users]]\nname = \"a\"\nnopass = true\n",
        "users[1].name",
    );
    bad(
        "[store]\n[[store.users]]\nname = \"a\"\nnopass = true\npassword_env = \"X\"\n",
        "users[0].nopass",
    );
}
