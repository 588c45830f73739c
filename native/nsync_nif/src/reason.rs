//! The Erlang terms of errors: the `Reason` of `{closed, Reason}` and of
//! `last_error`, and `{rdb, Kind, Offset}` for `decode_dump/1`.

use nsync_core::rdb::RdbError;
use nsync_core::repl::ReplError;
use rustler::{Encoder, Env, Term};

use crate::atoms;
use crate::encode::binary;
use crate::error::{LinkError, Posix};
use crate::tls::{TlsError, TlsSetupError};

/// `{connect, Posix | nxdomain}`, `{send | recv | file, Posix}`, `eof`,
/// `{tls, Why}`, `{no_answer, Why}`, `{auth | noperm | master | protocol | internal, Msg}`,
/// `{rdb, Kind, Offset}`, `{too_large, #{key, bytes, limit}}`, `disconnected`,
/// `closed` or `owner_gone`.
pub fn term<'a>(env: Env<'a>, err: &LinkError) -> Term<'a> {
    match err {
        LinkError::Nxdomain => (atoms::connect(), atoms::nxdomain()).encode(env),
        LinkError::Connect(p) => (atoms::connect(), posix(env, p)).encode(env),
        LinkError::Send(p) => (atoms::send(), posix(env, p)).encode(env),
        LinkError::Recv(p) => (atoms::recv(), posix(env, p)).encode(env),
        LinkError::Eof => atoms::eof().encode(env),
        LinkError::File(p) => (atoms::file(), posix(env, p)).encode(env),
        LinkError::NoAnswer(why) => (atoms::no_answer(), term(env, why)).encode(env),
        LinkError::Tls(err) => (atoms::tls(), tls_error(env, err)).encode(env),
        LinkError::Repl(ReplError::Auth(msg)) => {
            (atoms::auth(), binary(env, msg.as_bytes())).encode(env)
        }
        LinkError::Repl(ReplError::NoPerm(msg)) => {
            (atoms::noperm(), binary(env, msg.as_bytes())).encode(env)
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

/// `unknown_ca`, `certificate_expired`, `hostname_mismatch`, `timeout`,
/// `eof`, `{alert, Name}`, `{bad_certificate | bad_server_name, Msg}` or
/// rustls's message.
fn tls_error<'a>(env: Env<'a>, err: &TlsError) -> Term<'a> {
    match err {
        TlsError::UnknownCa => atoms::unknown_ca().encode(env),
        TlsError::CertificateExpired => atoms::certificate_expired().encode(env),
        TlsError::NameMismatch => atoms::hostname_mismatch().encode(env),
        TlsError::Timeout => atoms::timeout().encode(env),
        TlsError::Eof => atoms::eof().encode(env),
        TlsError::Alert(name) => {
            let name = rustler::Atom::from_str(env, name)
                .map_or_else(|_| binary(env, name.as_bytes()), |a| a.encode(env));
            (atoms::alert(), name).encode(env)
        }
        TlsError::BadCertificate(msg) => {
            (atoms::bad_certificate(), binary(env, msg.as_bytes())).encode(env)
        }
        TlsError::BadServerName(name) => {
            (atoms::bad_server_name(), binary(env, name.as_bytes())).encode(env)
        }
        TlsError::Other(msg) => binary(env, msg.as_bytes()),
    }
}

/// Why `open/1`'s TLS settings are unusable: `{bad_pem | no_certificates,
/// Option}`, `{no_private_key, key}`, `{bad_certificate, Option, Msg}` or
/// rustls's message.
pub fn tls_setup_error<'a>(env: Env<'a>, err: &TlsSetupError) -> Term<'a> {
    let option = |name: &str| {
        rustler::Atom::from_str(env, name)
            .map_or_else(|_| binary(env, name.as_bytes()), |a| a.encode(env))
    };
    match err {
        TlsSetupError::BadPem(what) => (atoms::bad_pem(), option(what)).encode(env),
        TlsSetupError::NoCertificates(what) => (atoms::no_certificates(), option(what)).encode(env),
        TlsSetupError::NoPrivateKey => (atoms::no_private_key(), atoms::key()).encode(env),
        TlsSetupError::BadCertificate(what, msg) => (
            atoms::bad_certificate(),
            option(what),
            binary(env, msg.as_bytes()),
        )
            .encode(env),
        TlsSetupError::Rustls(msg) => binary(env, msg.as_bytes()),
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
