//! The Erlang terms of errors: the `Reason` of `{closed, Reason}` and of
//! `last_error`, and `{rdb, Kind, Offset}` for `decode_dump/1`.

use nsync_core::rdb::RdbError;
use nsync_core::repl::ReplError;
use rustler::{Encoder, Env, Term};

use crate::atoms;
use crate::encode::binary;
use crate::error::{LinkError, Posix};

/// `{connect, Posix | nxdomain}`, `{send | recv, Posix}`, `eof`,
/// `{auth | master | protocol | internal, Msg}`, `{rdb, Kind, Offset}`,
/// `{too_large, #{key, bytes, limit}}`, `disconnected`, `closed` or
/// `owner_gone`.
pub fn term<'a>(env: Env<'a>, err: &LinkError) -> Term<'a> {
    match err {
        LinkError::Nxdomain => (atoms::connect(), atoms::nxdomain()).encode(env),
        LinkError::Connect(p) => (atoms::connect(), posix(env, p)).encode(env),
        LinkError::Send(p) => (atoms::send(), posix(env, p)).encode(env),
        LinkError::Recv(p) => (atoms::recv(), posix(env, p)).encode(env),
        LinkError::Eof => atoms::eof().encode(env),
        LinkError::Repl(ReplError::Auth(msg)) => {
            (atoms::auth(), binary(env, msg.as_bytes())).encode(env)
        }
        LinkError::Repl(ReplError::Master(msg)) => {
            (atoms::master(), binary(env, msg.as_bytes())).encode(env)
        }
        LinkError::Repl(ReplError::Rdb(err)) => rdb_error(env, err),
        LinkError::Repl(ReplError::TooLarge { key, bytes, limit }) => {
            let key = key
                .as_ref()
                .map_or_else(|| atoms::undefined().encode(env), |k| binary(env, k));
            let detail = Term::map_from_pairs(
                env,
                &[
                    (atoms::key().encode(env), key),
                    (atoms::bytes().encode(env), bytes.encode(env)),
                    (atoms::limit().encode(env), limit.encode(env)),
                ],
            )
            .unwrap_or_else(|_| atoms::undefined().encode(env));
            (atoms::too_large(), detail).encode(env)
        }
        LinkError::Repl(err @ (ReplError::Resp(_) | ReplError::Protocol(_))) => {
            let detail = match err {
                ReplError::Protocol(detail) => detail.clone(),
                other => other.to_string(),
            };
            (atoms::protocol(), binary(env, detail.as_bytes())).encode(env)
        }
        LinkError::Disconnected => atoms::disconnected().encode(env),
        LinkError::Closed => atoms::closed().encode(env),
        LinkError::OwnerGone => atoms::owner_gone().encode(env),
        LinkError::Internal(msg) => (atoms::internal(), binary(env, msg.as_bytes())).encode(env),
    }
}

fn posix<'a>(env: Env<'a>, p: &Posix) -> Term<'a> {
    match p {
        Posix::Atom(name) => rustler::Atom::from_str(env, name)
            .map_or_else(|_| binary(env, name.as_bytes()), |a| a.encode(env)),
        Posix::Message(msg) => binary(env, msg.as_bytes()),
    }
}

/// `{rdb, Kind, Offset}`.
pub fn rdb_error<'a>(env: Env<'a>, err: &RdbError) -> Term<'a> {
    let kind = rustler::Atom::from_str(env, err.kind())
        .map_or_else(|_| atoms::rdb().encode(env), |a| a.encode(env));
    (atoms::rdb(), kind, err.offset()).encode(env)
}
