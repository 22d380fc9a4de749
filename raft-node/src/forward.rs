//! The frames of the forwarding stream: a follower sends the leader a batch of write
//! commands (the pipelined writes of one client, in order) and gets one result per command.
//!
//! Request: `u16 len` + the client's user name (UTF-8; the leader applies that user's
//! rights, see [`crate::auth`]), `u32 count`, then per command `u32 len` + [`Command`]
//! bytes. Response: `u32
//! count`, then per result `u32 len` + one of: `0` + [`Outcome`], `1` + `u64` leader id (not
//! the leader: nothing was proposed), `2` + UTF-8 error text. Lengths are little-endian and
//! checked against the bytes present.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft_core::NodeId;

use crate::command::{Command, DecodeError, Outcome};
use crate::error::RequestError;

const R_OUTCOME: u8 = 0;
const R_NOT_LEADER: u8 = 1;
const R_ERROR: u8 = 2;

/// The longest user name a request carries.
const MAX_USER: usize = 1024;

/// The user name a request carries: names come from the configuration and are short; a
/// longer one cannot be a user.
fn sent_user(user: &str) -> &str {
    if user.len() <= MAX_USER { user } else { "" }
}

/// Encodes a batch of encoded commands sent for `user`.
pub(crate) fn encode_request(user: &str, cmds: &[Bytes]) -> Bytes {
    let user = sent_user(user);
    let mut b = BytesMut::with_capacity(
        2 + user.len() + 4 + cmds.iter().map(|c| 4 + c.len()).sum::<usize>(),
    );
    b.put_u16_le(user.len() as u16);
    b.put_slice(user.as_bytes());
    b.put_u32_le(cmds.len() as u32);
    for c in cmds {
        b.put_u32_le(c.len() as u32);
        b.put_slice(c);
    }
    b.freeze()
}

/// How many of `cmds`, from the first, one request for `user` can carry in at most
/// `budget` bytes ([`encode_request`]'s layout); at least one.
pub(crate) fn fitting_prefix(user: &str, cmds: &[Bytes], budget: usize) -> usize {
    let mut used = 2 + sent_user(user).len() + 4;
    let n = cmds
        .iter()
        .take_while(|c| {
            used += 4 + c.len();
            used <= budget
        })
        .count();
    n.max(1).min(cmds.len())
}

/// Decodes a request into the user and the commands (each checked to decode as a
/// [`Command`]).
pub(crate) fn decode_request(body: &Bytes) -> Result<(String, Vec<Bytes>), DecodeError> {
    let mut r = body.clone();
    if r.remaining() < 2 {
        return Err(DecodeError("truncated user"));
    }
    let len = r.get_u16_le() as usize;
    if len > MAX_USER || r.remaining() < len {
        return Err(DecodeError("bad user length"));
    }
    let user = String::from_utf8(r.split_to(len).to_vec())
        .map_err(|_| DecodeError("user name is not UTF-8"))?;
    let items = split(&r)?;
    for c in &items {
        Command::decode(c)?;
    }
    Ok((user, items))
}

/// Encodes one result per command.
pub(crate) fn encode_response(results: &[Result<Outcome, RequestError>]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u32_le(results.len() as u32);
    for r in results {
        let mut item = BytesMut::new();
        match r {
            Ok(o) => {
                item.put_u8(R_OUTCOME);
                o.encode(&mut item);
            }
            Err(RequestError::NotLeader { leader }) => {
                item.put_u8(R_NOT_LEADER);
                item.put_u64_le(leader.0);
            }
            Err(e) => {
                item.put_u8(R_ERROR);
                item.put_slice(e.to_string().as_bytes());
            }
        }
        b.put_u32_le(item.len() as u32);
        b.put_slice(&item);
    }
    b.freeze()
}

/// Decodes a response of exactly `expected` results.
pub(crate) fn decode_response(
    body: &Bytes,
    expected: usize,
) -> Result<Vec<Result<Outcome, RequestError>>, DecodeError> {
    let items = split(body)?;
    if items.len() != expected {
        return Err(DecodeError("wrong number of results"));
    }
    items
        .into_iter()
        .map(|item| {
            let Some((&tag, rest)) = item.split_first() else {
                return Err(DecodeError("empty result"));
            };
            Ok(match tag {
                R_OUTCOME => Ok(Outcome::decode(&item.slice(1..))?),
                R_NOT_LEADER => {
                    let id: [u8; 8] = rest.try_into().map_err(|_| DecodeError("bad leader id"))?;
                    Err(RequestError::NotLeader {
                        leader: NodeId(u64::from_le_bytes(id)),
                    })
                }
                R_ERROR => Err(RequestError::Remote(
                    String::from_utf8_lossy(rest).into_owned(),
                )),
                _ => return Err(DecodeError("unknown result tag")),
            })
        })
        .collect()
}

fn split(body: &Bytes) -> Result<Vec<Bytes>, DecodeError> {
    let mut r = body.clone();
    if r.remaining() < 4 {
        return Err(DecodeError("truncated count"));
    }
    let n = r.get_u32_le() as usize;
    // Each item takes at least its 4-byte length: a damaged count cannot make us allocate.
    if n > r.remaining() / 4 {
        return Err(DecodeError("count larger than the data"));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if r.remaining() < 4 {
            return Err(DecodeError("truncated length"));
        }
        let len = r.get_u32_le() as usize;
        if r.remaining() < len {
            return Err(DecodeError("truncated item"));
        }
        out.push(r.split_to(len));
    }
    if r.has_remaining() {
        return Err(DecodeError("trailing bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::SetCond;

    #[test]
    fn a_request_takes_the_commands_that_fit_and_always_one() {
        let cmds: Vec<Bytes> = [10, 10, 10].map(|n| Bytes::from(vec![0; n])).to_vec();
        // The request's own header, the user name and a 4-byte length per command count.
        let whole = encode_request("app", &cmds).len();
        assert_eq!(whole, 6 + 3 + 14 * 3);
        assert_eq!(fitting_prefix("app", &cmds, whole), 3);
        assert_eq!(fitting_prefix("app", &cmds, whole - 1), 2);
        assert_eq!(fitting_prefix("", &cmds, 6 + 14), 1);
        assert_eq!(
            fitting_prefix("", &cmds, 5),
            1,
            "a lone command always goes"
        );
        assert_eq!(fitting_prefix("", &[], 100), 0);
    }

    #[test]
    fn batches_round_trip_and_damage_is_an_error() {
        let cmds: Vec<Bytes> = (0..3)
            .map(|i| {
                Command::Set {
                    key: Bytes::from(format!("k{i}")),
                    value: Bytes::from_static(b"v"),
                    cond: SetCond::Always,
                }
                .encode()
            })
            .collect();
        let req = encode_request("app", &cmds);
        assert_eq!(decode_request(&req).unwrap(), ("app".to_string(), cmds));
        for n in 0..req.len() {
            assert!(decode_request(&req.slice(..n)).is_err(), "prefix {n}");
        }
        let results = vec![
            Ok(Outcome::Integer(7)),
            Err(RequestError::NotLeader { leader: NodeId(3) }),
            Err(RequestError::Dropped),
        ];
        let resp = encode_response(&results);
        let back = decode_response(&resp, 3).unwrap();
        assert_eq!(back[0], Ok(Outcome::Integer(7)));
        assert_eq!(back[1], Err(RequestError::NotLeader { leader: NodeId(3) }));
        assert!(matches!(&back[2], Err(RequestError::Remote(t)) if t.starts_with("TRYAGAIN")));
        assert!(decode_response(&resp, 2).is_err());
        for n in 0..resp.len() {
            assert!(decode_response(&resp.slice(..n), 3).is_err(), "prefix {n}");
        }
    }
}
