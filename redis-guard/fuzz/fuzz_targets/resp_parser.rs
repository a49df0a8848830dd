//! Fuzzes the store's streaming RESP parser.
//!
//! Beyond "never panics, never loops": the first input byte picks a chunk
//! size, and the requests (or the error) obtained by feeding the data in
//! chunks must equal those from feeding it all at once. That is the
//! property the connection relies on when frames split across reads.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use redis_guard::store::protocol::{Parser, ProtoError};

type Outcome = (Vec<Vec<Bytes>>, Option<ProtoError>);

fn run(data: &[u8], chunk: usize, authed: bool) -> Outcome {
    let mut parser = Parser::new(1024 * 1024);
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    let mut args = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match parser.parse(&mut buf, &mut args, authed) {
                Ok(true) => requests.push(std::mem::take(&mut args)),
                Ok(false) => break,
                Err(e) => return (requests, Some(e)),
            }
        }
    }
    (requests, None)
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let authed = selector & 0x80 == 0;
    let chunk = usize::from(selector & 0x3f) + 1;
    let (whole, whole_err) = run(data, data.len().max(1), authed);
    let (pieces, pieces_err) = run(data, chunk, authed);
    assert_eq!(whole, pieces, "chunking changed the requests (chunk {chunk})");
    // Which error garbage earns may depend on read sizes (as in Redis: an
    // over-long header is caught before or after its CR arrives); that it
    // is an error may not.
    assert_eq!(
        whole_err.is_some(),
        pieces_err.is_some(),
        "chunking changed whether the input is an error: {whole_err:?} vs {pieces_err:?}"
    );
});
