//! The values a pickle's object graph is built of, calls kept as inert records.

/// A value of the pickle's object graph, with calls kept as inert records.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// A `module.name` reference (a class or a function).
    Global(String),
    /// The result of calling `callable`; `state` is what `BUILD` set on it.
    Object {
        callable: String,
        state: Box<Value>,
    },
    /// A reference into the checkpoint's tensor storage (`BINPERSID`).
    Persistent,
}

impl Value {
    /// The entry `key` of a dict, or of an object's state dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items.iter().find_map(|(k, v)| match k {
                Value::Str(s) if s == key => Some(v),
                _ => None,
            }),
            Value::Object { state, .. } => state.get(key),
            _ => None,
        }
    }
}

/// How many values `value` holds, itself included: what the interpreter bounds.
pub(super) fn node_count(value: &Value) -> usize {
    match value {
        Value::List(v) | Value::Tuple(v) => 1 + v.iter().map(node_count).sum::<usize>(),
        Value::Dict(v) => {
            1 + v
                .iter()
                .map(|(k, x)| node_count(k) + node_count(x))
                .sum::<usize>()
        }
        Value::Object { state, .. } => 1 + node_count(state),
        _ => 1,
    }
}
