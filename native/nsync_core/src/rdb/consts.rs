//! Numbers from Redis's `rdb.h` (and Valkey's where they differ).

// Value types.
pub(crate) const RDB_TYPE_STRING: u8 = 0;
pub(crate) const RDB_TYPE_LIST: u8 = 1;
pub(crate) const RDB_TYPE_SET: u8 = 2;
pub(crate) const RDB_TYPE_ZSET: u8 = 3;
pub(crate) const RDB_TYPE_HASH: u8 = 4;
pub(crate) const RDB_TYPE_ZSET_2: u8 = 5;
pub(crate) const RDB_TYPE_MODULE_PRE_GA: u8 = 6;
pub(crate) const RDB_TYPE_MODULE_2: u8 = 7;
pub(crate) const RDB_TYPE_HASH_ZIPMAP: u8 = 9;
pub(crate) const RDB_TYPE_LIST_ZIPLIST: u8 = 10;
pub(crate) const RDB_TYPE_SET_INTSET: u8 = 11;
pub(crate) const RDB_TYPE_ZSET_ZIPLIST: u8 = 12;
pub(crate) const RDB_TYPE_HASH_ZIPLIST: u8 = 13;
pub(crate) const RDB_TYPE_LIST_QUICKLIST: u8 = 14;
pub(crate) const RDB_TYPE_STREAM_LISTPACKS: u8 = 15;
pub(crate) const RDB_TYPE_HASH_LISTPACK: u8 = 16;
pub(crate) const RDB_TYPE_ZSET_LISTPACK: u8 = 17;
pub(crate) const RDB_TYPE_LIST_QUICKLIST_2: u8 = 18;
pub(crate) const RDB_TYPE_STREAM_LISTPACKS_2: u8 = 19;
pub(crate) const RDB_TYPE_SET_LISTPACK: u8 = 20;
pub(crate) const RDB_TYPE_STREAM_LISTPACKS_3: u8 = 21;
pub(crate) const RDB_TYPE_HASH_METADATA_PRE_GA: u8 = 22;
pub(crate) const RDB_TYPE_HASH_LISTPACK_EX_PRE_GA: u8 = 23;
pub(crate) const RDB_TYPE_HASH_METADATA: u8 = 24;
pub(crate) const RDB_TYPE_HASH_LISTPACK_EX: u8 = 25;
/// Redis 8.x (RDB 13): a stream with its idempotent-producer (IDMP) state.
pub(crate) const RDB_TYPE_STREAM_LISTPACKS_4: u8 = 26;
/// Valkey 9 (VALKEY magic): hash whose fields may carry an expiry. Under the
/// VALKEY magic, numbers from 22 up mean Valkey's types, not Redis's.
pub(crate) const VALKEY_RDB_TYPE_HASH_2: u8 = 22;

/// Bytes from here up are not value types of any server: report them as
/// unknown opcodes rather than unknown types.
pub(crate) const RDB_TYPE_NUMBERS_END: u8 = 64;

// Opcodes.
/// Redis 8.x (RDB 13): module metadata classes of the next key, before its
/// type: a class count, then for each a 4-byte class spec and a module body.
pub(crate) const RDB_OPCODE_KEY_META: u8 = 243;
/// Valkey 9 (VALKEY magic, same number as Redis's KEY_META): an atomic slot
/// migration in progress (job name, slot ranges); cluster state only.
pub(crate) const VALKEY_RDB_OPCODE_SLOT_IMPORT: u8 = 243;
/// Valkey (VALKEY magic): a write command inlined by a forkless save, in RESP.
pub(crate) const VALKEY_RDB_OPCODE_UPDATE: u8 = 242;
pub(crate) const RDB_OPCODE_SLOT_INFO: u8 = 244;
pub(crate) const RDB_OPCODE_FUNCTION2: u8 = 245;
pub(crate) const RDB_OPCODE_FUNCTION_PRE_GA: u8 = 246;
pub(crate) const RDB_OPCODE_MODULE_AUX: u8 = 247;
pub(crate) const RDB_OPCODE_IDLE: u8 = 248;
pub(crate) const RDB_OPCODE_FREQ: u8 = 249;
pub(crate) const RDB_OPCODE_AUX: u8 = 250;
pub(crate) const RDB_OPCODE_RESIZEDB: u8 = 251;
pub(crate) const RDB_OPCODE_EXPIRETIME_MS: u8 = 252;
pub(crate) const RDB_OPCODE_EXPIRETIME: u8 = 253;
pub(crate) const RDB_OPCODE_SELECTDB: u8 = 254;
pub(crate) const RDB_OPCODE_EOF: u8 = 255;

// Length encodings (the top two bits of the first byte, or the whole byte).
pub(crate) const RDB_6BITLEN: u8 = 0;
pub(crate) const RDB_14BITLEN: u8 = 1;
pub(crate) const RDB_32BITLEN: u8 = 0x80;
pub(crate) const RDB_64BITLEN: u8 = 0x81;
pub(crate) const RDB_ENCVAL: u8 = 3;

// Special string encodings.
pub(crate) const RDB_ENC_INT8: u8 = 0;
pub(crate) const RDB_ENC_INT16: u8 = 1;
pub(crate) const RDB_ENC_INT32: u8 = 2;
pub(crate) const RDB_ENC_LZF: u8 = 3;

// Module serialization opcodes.
pub(crate) const RDB_MODULE_OPCODE_EOF: u64 = 0;
pub(crate) const RDB_MODULE_OPCODE_SINT: u64 = 1;
pub(crate) const RDB_MODULE_OPCODE_UINT: u64 = 2;
pub(crate) const RDB_MODULE_OPCODE_FLOAT: u64 = 3;
pub(crate) const RDB_MODULE_OPCODE_DOUBLE: u64 = 4;
pub(crate) const RDB_MODULE_OPCODE_STRING: u64 = 5;

// Quicklist 2 node containers.
pub(crate) const QUICKLIST_NODE_CONTAINER_PLAIN: u64 = 1;
pub(crate) const QUICKLIST_NODE_CONTAINER_PACKED: u64 = 2;

// Stream entry flags.
pub(crate) const STREAM_ITEM_FLAG_DELETED: i64 = 1;
pub(crate) const STREAM_ITEM_FLAG_SAMEFIELDS: i64 = 2;

/// Redis 8.x's format: key metadata and stream type 26.
pub(crate) const RDB_VERSION_MAX: u32 = 13;
/// The first version written by Valkey with its own magic (9.0).
pub(crate) const VALKEY_RDB_VERSION_MIN: u32 = 80;
/// Valkey 9.2's; a Valkey master sends at most the version the replica
/// announces with `REPLCONF version` (see `repl`).
pub(crate) const VALKEY_RDB_VERSION_MAX: u32 = 81;
/// The first version with a CRC-64 trailer.
pub(crate) const RDB_VERSION_CHECKSUM: u32 = 5;
