//! The opcodes that read one plain value (a number, a string, bytes) from the stream and
//! push it: they need nothing of the interpreter's stack or memo.

use super::cursor::Cursor;
use super::opcodes::*;
use super::value::Value;
use super::{Result, malformed};

fn to_len(n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| malformed("length out of range"))
}

/// The value `op` reads from `c`, or `None` (nothing read) when `op` is not such an opcode.
pub(super) fn read_scalar(op: u8, c: &mut Cursor) -> Result<Option<Value>> {
    let value = match op {
        NONE => Value::None,
        NEWTRUE => Value::Bool(true),
        NEWFALSE => Value::Bool(false),
        BININT => Value::Int(i32::from_le_bytes(c.take(4)?.try_into().expect("4 bytes")).into()),
        BININT1 => Value::Int(c.u8()?.into()),
        BININT2 => Value::Int(c.u16()?.into()),
        LONG1 | LONG4 => {
            // Little-endian two's complement.
            let n = if op == LONG1 {
                c.u8()? as usize
            } else {
                to_len(c.u32()?.into())?
            };
            let raw = c.take(n)?;
            if n <= 8 {
                let sign = if raw.last().is_some_and(|b| b & 0x80 != 0) {
                    0xff
                } else {
                    0
                };
                let mut buf = [sign; 8];
                buf[..n].copy_from_slice(raw);
                Value::Int(i64::from_le_bytes(buf))
            } else {
                Value::Object {
                    callable: "int".into(),
                    state: Box::new(Value::None),
                }
            }
        }
        INT => {
            let line = c.line()?;
            match line {
                "00" => Value::Bool(false),
                "01" => Value::Bool(true),
                _ => Value::Int(line.parse().map_err(|_| malformed("bad INT"))?),
            }
        }
        LONG => {
            let line = c.line()?.trim_end_matches('L');
            Value::Int(line.parse().map_err(|_| malformed("bad LONG"))?)
        }
        BINFLOAT => Value::Float(f64::from_be_bytes(c.take(8)?.try_into().expect("8 bytes"))),
        FLOAT => Value::Float(c.line()?.parse().map_err(|_| malformed("bad FLOAT"))?),
        BINUNICODE | SHORT_BINUNICODE | BINUNICODE8 => {
            let n = match op {
                BINUNICODE => to_len(c.u32()?.into())?,
                SHORT_BINUNICODE => c.u8()? as usize,
                _ => to_len(c.u64()?)?,
            };
            Value::Str(c.string(n)?)
        }
        UNICODE => Value::Str(c.line()?.to_string()),
        STRING => Value::Str(
            c.line()?
                .trim_matches(|ch| ch == '\'' || ch == '"')
                .to_string(),
        ),
        BINSTRING | SHORT_BINSTRING | BINBYTES | SHORT_BINBYTES | BINBYTES8 | BYTEARRAY8 => {
            let n = match op {
                BINSTRING | BINBYTES => to_len(c.u32()?.into())?,
                SHORT_BINSTRING | SHORT_BINBYTES => c.u8()? as usize,
                // BINBYTES8, BYTEARRAY8
                _ => to_len(c.u64()?)?,
            };
            Value::Bytes(c.take(n)?.to_vec())
        }
        _ => return Ok(None),
    };
    Ok(Some(value))
}
