//! Module values (type 7) and module aux data: a 64-bit module id, then
//! (opcode, value) pairs ending with `RDB_MODULE_OPCODE_EOF`. Walking the
//! opcodes finds the end of a body without the module's own loader.

use super::consts::*;
use super::reader::{Read, Reader};

const MODULE_NAME_CHARSET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The 9-character type name and the 10-bit encoding version of a module id.
pub(crate) fn decode_id(id: u64) -> (String, u32) {
    let name = (0..9)
        .map(|i| {
            let index = (id >> (64 - 6 * (i + 1))) & 63;
            MODULE_NAME_CHARSET
                .get(index as usize)
                .map_or('?', |&c| char::from(c))
        })
        .collect();
    (name, (id & 1023) as u32)
}

/// Skips a module body up to and including its EOF opcode.
pub(crate) fn skip_body(r: &mut Reader) -> Read<()> {
    loop {
        match r.length()? {
            RDB_MODULE_OPCODE_EOF => return Ok(()),
            RDB_MODULE_OPCODE_SINT | RDB_MODULE_OPCODE_UINT => {
                r.length()?;
            }
            RDB_MODULE_OPCODE_FLOAT => {
                r.take(4)?;
            }
            RDB_MODULE_OPCODE_DOUBLE => {
                r.take(8)?;
            }
            RDB_MODULE_OPCODE_STRING => {
                r.string()?;
            }
            _ => return Err(r.corrupt("module opcode")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_id(name: &str, version: u64) -> u64 {
        name.bytes().fold(0u64, |id, c| {
            let index = MODULE_NAME_CHARSET.iter().position(|&x| x == c).unwrap() as u64;
            id << 6 | index
        }) << 10
            | version
    }

    #[test]
    fn name_and_version() {
        for (name, version) in [
            ("ReJSON-RL", 3),
            ("MBbloom--", 0),
            ("hellotype", 1023),
            ("test_-09z", 7),
        ] {
            assert_eq!(
                decode_id(encode_id(name, version)),
                (name.to_string(), version as u32)
            );
        }
    }
}
