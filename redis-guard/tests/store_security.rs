//! The store's own cross-protocol guard, the layer behind the XDP one:
//! `POST` or `Host:` as a command closes the connection at once, and nothing
//! after it in that connection's buffer runs.

mod common;

use common::TestServer;

#[test]
fn post_closes_the_connection_before_anything_after_it_runs() {
    let s = TestServer::start(|_| {});
    let mut r = s.raw_authed();
    r.send(b"POST / HTTP/1.1\r\nContent-Type: text/plain\r\n\r\nSET pwned 1\r\nFLUSHALL\r\n");
    r.expect_closed();
    let mut other = s.raw_authed();
    other.roundtrip(&["EXISTS", "pwned"], b":0\r\n");
}

#[test]
fn host_header_mid_stream_closes_too() {
    let s = TestServer::start(|_| {});
    let mut setup = s.raw_authed();
    setup.roundtrip(&["SET", "keep", "me"], b"+OK\r\n");
    let mut r = s.raw_authed();
    r.send(b"PING\r\nhOsT: victim\r\nDEL keep\r\n");
    r.expect(b"+PONG\r\n");
    r.expect_closed();
    setup.roundtrip(&["GET", "keep"], b"$2\r\nme\r\n");
}

#[test]
fn before_authentication_as_well() {
    let s = TestServer::with_password("s3cret");
    let mut r = s.raw();
    r.send(b"POST /x HTTP/1.1\r\n");
    r.expect_closed();
}

#[test]
fn keys_and_values_named_post_are_fine() {
    let s = TestServer::start(|_| {});
    let mut r = s.raw_authed();
    r.roundtrip(&["SET", "post", "Host:"], b"+OK\r\n");
    r.roundtrip(&["GET", "post"], b"$5\r\nHost:\r\n");
}
