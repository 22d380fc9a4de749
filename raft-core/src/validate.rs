//! Checks a received message for internal consistency before any rule sees it, so a
//! malformed or hostile message gets a typed error instead of reaching an invariant.

use crate::confchange::ConfChange;
use crate::error::{Error, Result};
use crate::message::{Message, MessageBody};
use crate::types::{EntryKind, NodeId, Term};

pub(crate) fn check(me: NodeId, m: &Message) -> Result<()> {
    let bad = |reason| {
        Err(Error::MalformedMessage {
            from: m.from,
            reason,
        })
    };
    if m.to != me {
        return Err(Error::WrongRecipient { to: m.to, me });
    }
    if m.from.is_none() || m.from == me {
        return bad("sender is none or this node");
    }
    if m.term == Term(0) {
        return bad("term 0");
    }
    // No real cluster gets there, and a node at the last term could never campaign again
    // without reusing it.
    if m.term == Term(u64::MAX) {
        return bad("term u64::MAX");
    }
    match &m.body {
        MessageBody::RequestVote(v) if v.last_log_term > m.term => {
            return bad("last log term above the message term");
        }
        MessageBody::RequestVote(v) if v.pre_vote && v.transfer => {
            return bad("a pre-vote cannot be a leadership transfer's vote");
        }
        MessageBody::AppendEntries(a) => {
            if a.prev_log_term > m.term {
                return bad("prev log term above the message term");
            }
            if a.commit_only && !a.entries.is_empty() {
                return bad("a commit-only append carries entries");
            }
            if a.prev_log_index
                .get()
                .checked_add(a.entries.len() as u64)
                .is_none()
            {
                return bad("entry indexes overflow");
            }
            let mut expect = a.prev_log_index.next();
            let mut term = a.prev_log_term;
            for e in &a.entries {
                if e.index != expect {
                    return bad("entries are not consecutive after prev_log_index");
                }
                if e.term < term || e.term > m.term {
                    return bad("entry terms not between prev_log_term and the message term");
                }
                if e.kind == EntryKind::ConfChange && ConfChange::decode(e.data.clone()).is_err() {
                    return bad("undecodable configuration change");
                }
                expect = expect.next();
                term = e.term;
            }
        }
        MessageBody::AppendEntriesResponse(r) if r.reject.is_some_and(|h| h.index.get() == 0) => {
            return bad("conflict hint index 0");
        }
        MessageBody::InstallSnapshot(s) => {
            if s.meta.index.get() == 0 || s.meta.term == Term(0) {
                return bad("snapshot at index or term 0");
            }
            if s.meta.index.get() == u64::MAX {
                return bad("snapshot index overflows the log");
            }
            if s.meta.term > m.term {
                return bad("snapshot term above the message term");
            }
            if s.meta.conf_state.voters.is_empty() {
                return bad("snapshot without voters");
            }
            if let Err(reason) = s.meta.conf_state.check() {
                return bad(reason);
            }
        }
        _ => {}
    }
    Ok(())
}
