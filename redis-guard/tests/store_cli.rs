//! The real `redis-cli` binary against the store (fails if redis-cli is missing).

mod common;

use std::process::Command;

use common::{TestServer, redis_cli, user};

fn cli(s: &TestServer, auth: Option<(&str, &str)>, args: &[&str]) -> (String, bool) {
    let mut cmd = Command::new(redis_cli());
    cmd.arg("-h")
        .arg("127.0.0.1")
        .arg("-p")
        .arg(s.port().to_string());
    if let Some((u, p)) = auth {
        cmd.arg("--user")
            .arg(u)
            .arg("--pass")
            .arg(p)
            .arg("--no-auth-warning");
    }
    let out = cmd.args(args).output().expect("running redis-cli");
    (
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        out.status.success(),
    )
}

#[test]
fn redis_cli_with_user_and_password() {
    let s = TestServer::start(|c| {
        c.users = vec![
            user("default", "rootpw", "on ~* &* +@all"),
            user("app", "apppw", "on ~* &* +@all"),
        ]
    });
    let auth = Some(("app", "apppw"));
    assert_eq!(cli(&s, auth, &["PING"]).0.trim(), "PONG");
    assert_eq!(
        cli(&s, auth, &["SET", "greeting", "hello world"]).0.trim(),
        "OK"
    );
    assert_eq!(cli(&s, auth, &["GET", "greeting"]).0.trim(), "hello world");
    assert_eq!(cli(&s, auth, &["RPUSH", "l", "a", "b"]).0.trim(), "2");
    assert_eq!(cli(&s, auth, &["LRANGE", "l", "0", "-1"]).0.trim(), "a\nb");
    assert_eq!(cli(&s, auth, &["HSET", "h", "f", "v"]).0.trim(), "1");
    assert_eq!(cli(&s, auth, &["HGETALL", "h"]).0.trim(), "f\nv");
    assert_eq!(cli(&s, auth, &["ZADD", "z", "1.5", "m"]).0.trim(), "1");
    assert_eq!(cli(&s, auth, &["ZSCORE", "z", "m"]).0.trim(), "1.5");
    let (info, ok) = cli(&s, auth, &["INFO", "server"]);
    assert!(ok && info.contains("redis_version:7.0.15"), "{info}");
    let (out, _) = cli(&s, auth, &["NOSUCHCMD"]);
    assert!(out.contains("ERR unknown command 'NOSUCHCMD'"), "{out}");
    // RESP3 through the CLI.
    let (out, _) = cli(&s, auth, &["-3", "HGETALL", "h"]);
    assert!(out.contains("f") && out.contains("v"), "{out}");
    // --scan uses SCAN with cursors.
    let (out, _) = cli(&s, auth, &["--scan", "--pattern", "g*"]);
    assert_eq!(out.trim(), "greeting");
    // Wrong password and no password.
    let (out, _) = cli(&s, Some(("app", "bad")), &["PING"]);
    assert!(out.contains("WRONGPASS"), "{out}");
    let (out, _) = cli(&s, None, &["GET", "greeting"]);
    assert!(out.contains("NOAUTH Authentication required."), "{out}");
    // Password-only form authenticates the default user.
    let mut cmd = Command::new(redis_cli());
    let out = cmd
        .args([
            "-p",
            &s.port().to_string(),
            "-a",
            "rootpw",
            "--no-auth-warning",
            "DBSIZE",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "3".replace('3', "4")
    );
}

#[test]
fn redis_cli_pipe_mode_and_stdin() {
    let s = TestServer::start(|_| {});
    let mut child = Command::new(redis_cli())
        .args(["-p", &s.port().to_string(), "--pipe"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = child.stdin.as_mut().unwrap();
        for i in 0..1000 {
            let k = format!("pk{i}");
            write!(
                stdin,
                "*3\r\n$3\r\nSET\r\n${}\r\n{}\r\n$1\r\nv\r\n",
                k.len(),
                k
            )
            .unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("errors: 0, replies: 1000"), "{text}");
    assert_eq!(cli(&s, None, &["DBSIZE"]).0.trim(), "1000");
}
