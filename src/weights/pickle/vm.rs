//! A value-only pickle interpreter: it builds the object graph of a pickle from plain
//! values, never importing or calling anything. A global is a name checked against the
//! caller's allowlist; a call is an inert record of the callable's name and, once `BUILD`
//! runs, its state.

use std::collections::HashMap;

use super::cursor::Cursor;
use super::opcodes::*;
use super::scalars::read_scalar;
use super::value::{Value, node_count};
use super::{PickleMetaError, Result, malformed};

/// Upper bound on values held at once, against memo-copy bombs.
const MAX_NODES: usize = 20_000_000;

/// A value on the stack, with the memo entries that name it: pickle memoizes a dict, list
/// or object as soon as it exists and fills it afterwards (`SETITEMS`, `APPENDS`, `BUILD`),
/// so the memo's copies are brought up to date each time the value is filled, and a later
/// reference (`BINGET`) reads the filled object, as Python's unpickler, which shares it,
/// would.
struct Slot {
    value: Value,
    memo: Vec<u32>,
}

pub struct Interpreter {
    /// Which `module.name` globals the pickle may reference.
    allowed: fn(&str, &str) -> bool,
    stack: Vec<Slot>,
    /// Positions in `stack` of the open marks.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    nodes: usize,
}

impl Interpreter {
    pub fn new(allowed: fn(&str, &str) -> bool) -> Self {
        Self {
            allowed,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            nodes: 0,
        }
    }

    fn pop(&mut self) -> Result<Value> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(malformed("pop across a mark"));
        }
        self.stack
            .pop()
            .map(|slot| slot.value)
            .ok_or_else(|| malformed("stack underflow"))
    }

    /// Change the value on top of the stack (fill it), and the memo's copies of it.
    fn fill_top(&mut self, fill: impl FnOnce(&mut Value) -> Result<()>) -> Result<()> {
        let top = self
            .stack
            .last_mut()
            .ok_or_else(|| malformed("stack underflow"))?;
        fill(&mut top.value)?;
        for &index in &top.memo {
            self.nodes += node_count(&top.value);
            self.memo.insert(index, top.value.clone());
        }
        if self.nodes > MAX_NODES {
            return Err(malformed("object graph too large"));
        }
        Ok(())
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let mark = self.marks.pop().ok_or_else(|| malformed("no mark"))?;
        if mark > self.stack.len() {
            return Err(malformed("mark above the stack"));
        }
        Ok(self
            .stack
            .split_off(mark)
            .into_iter()
            .map(|slot| slot.value)
            .collect())
    }

    fn push(&mut self, value: Value) {
        self.stack.push(Slot {
            value,
            memo: Vec::new(),
        });
    }

    fn global(&mut self, module: &str, name: &str) -> Result<()> {
        if !(self.allowed)(module, name) {
            return Err(PickleMetaError::ForbiddenGlobal(format!("{module}.{name}")));
        }
        self.push(Value::Global(format!("{module}.{name}")));
        Ok(())
    }

    fn call(&mut self, callable: Value, args: Value) -> Result<()> {
        let Value::Global(name) = callable else {
            return Err(malformed("call of a non-global"));
        };
        let value = match name.as_str() {
            "builtins.getattr" | "__builtin__.getattr" => self.class_attribute(args)?,
            // Containers whose content matters for the names table.
            "collections.OrderedDict" | "builtins.dict" | "__builtin__.dict" => {
                Value::Dict(Vec::new())
            }
            "__builtin__.set" | "builtins.set" | "__builtin__.frozenset" | "builtins.frozenset" => {
                match args {
                    Value::Tuple(mut a) if a.len() == 1 => match a.pop() {
                        Some(Value::List(items)) => Value::List(items),
                        _ => Value::List(Vec::new()),
                    },
                    _ => Value::List(Vec::new()),
                }
            }
            _ => Value::Object {
                callable: name,
                state: Box::new(Value::None),
            },
        };
        self.push(value);
        Ok(())
    }

    /// `getattr(Class, "name")`, as Ultralytics 8.2–8.3 heads pickle `self.detect =
    /// Detect.forward`: kept as the inert reference `module.Class.name`, nothing looked up.
    /// Only a public attribute of a class the allowlist admits: any other `getattr` is how a
    /// hostile pickle reaches what the allowlist keeps out.
    fn class_attribute(&self, args: Value) -> Result<Value> {
        let refused = || PickleMetaError::ForbiddenGlobal(format!("getattr with {args:?}"));
        let Value::Tuple(items) = &args else {
            return Err(refused());
        };
        let [Value::Global(class), Value::Str(attribute)] = items.as_slice() else {
            return Err(refused());
        };
        let (module, name) = class.rsplit_once('.').ok_or_else(refused)?;
        let is_class = name.chars().next().is_some_and(char::is_uppercase);
        if !is_class || attribute.starts_with('_') || !(self.allowed)(module, name) {
            return Err(refused());
        }
        Ok(Value::Global(format!("{class}.{attribute}")))
    }

    fn memo_put(&mut self, index: u32) -> Result<()> {
        let top = self
            .stack
            .last_mut()
            .ok_or_else(|| malformed("memoize on empty stack"))?;
        top.memo.push(index);
        self.memo.insert(index, top.value.clone());
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<()> {
        let value = self
            .memo
            .get(&index)
            .cloned()
            .ok_or_else(|| malformed("missing memo entry"))?;
        self.nodes += node_count(&value);
        if self.nodes > MAX_NODES {
            return Err(malformed("object graph too large"));
        }
        self.stack.push(Slot {
            value,
            memo: vec![index],
        });
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<()> {
        if !items.len().is_multiple_of(2) {
            return Err(malformed("odd number of dict items"));
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        self.fill_top(|top| {
            match top {
                Value::Dict(d) => d.extend(pairs),
                // `__setitem__` on an object (a dict subclass): keep the items as its state.
                Value::Object { state, .. } => match state.as_mut() {
                    Value::Dict(d) => d.extend(pairs),
                    s => *s = Value::Dict(pairs),
                },
                _ => return Err(malformed("SETITEM on a non-dict")),
            }
            Ok(())
        })
    }

    fn append(&mut self, items: Vec<Value>) -> Result<()> {
        self.fill_top(|top| {
            match top {
                Value::List(l) => l.extend(items),
                Value::Object { .. } => {}
                _ => return Err(malformed("APPEND on a non-list")),
            }
            Ok(())
        })
    }

    /// Interpret `bytes` up to `STOP`, returning the pickled object.
    pub fn run(mut self, bytes: &[u8]) -> Result<Value> {
        let mut c = Cursor::new(bytes);
        loop {
            let op = c.u8()?;
            if let Some(value) = read_scalar(op, &mut c)? {
                self.push(value);
                continue;
            }
            match op {
                PROTO => {
                    c.u8()?; // the protocol version
                }
                FRAME => {
                    c.u64()?; // the frame length
                }
                STOP => return self.pop(),
                MARK => self.marks.push(self.stack.len()),
                EMPTY_LIST => self.push(Value::List(Vec::new())),
                EMPTY_DICT => self.push(Value::Dict(Vec::new())),
                EMPTY_TUPLE => self.push(Value::Tuple(Vec::new())),
                EMPTY_SET => self.push(Value::List(Vec::new())),
                LIST => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(items));
                }
                TUPLE => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items));
                }
                DICT => {
                    let items = self.pop_mark()?;
                    self.push(Value::Dict(Vec::new()));
                    self.set_items(items)?;
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = usize::from(op - TUPLE1) + 1;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(items));
                }
                FROZENSET => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(items));
                }
                APPEND => {
                    let item = self.pop()?;
                    self.append(vec![item])?;
                }
                APPENDS | ADDITEMS => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                SETITEM => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                SETITEMS => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                GLOBAL => {
                    let module = c.line()?.to_string();
                    let name = c.line()?.to_string();
                    self.global(&module, &name)?;
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.global(&m, &n)?,
                        _ => return Err(malformed("STACK_GLOBAL needs two strings")),
                    }
                }
                REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.call(callable, args)?;
                }
                NEWOBJ => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.call(class, args)?;
                }
                NEWOBJ_EX => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.call(class, args)?;
                }
                INST => {
                    let module = c.line()?.to_string();
                    let name = c.line()?.to_string();
                    self.global(&module, &name)?;
                    let class = self.pop()?;
                    let args = Value::Tuple(self.pop_mark()?);
                    self.call(class, args)?;
                }
                OBJ => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return Err(malformed("OBJ without a class"));
                    }
                    let class = items.remove(0);
                    self.call(class, Value::Tuple(items))?;
                }
                BUILD => {
                    let state = self.pop()?;
                    self.fill_top(|top| {
                        match top {
                            Value::Object { state: slot, .. } => **slot = state,
                            Value::Dict(d) => {
                                if let Value::Dict(items) = state {
                                    d.extend(items);
                                }
                            }
                            _ => return Err(malformed("BUILD on a non-object")),
                        }
                        Ok(())
                    })?;
                }
                BINPERSID => {
                    self.pop()?;
                    self.push(Value::Persistent);
                }
                PERSID => {
                    c.line()?;
                    self.push(Value::Persistent);
                }
                PUT => {
                    let index = c.line()?.parse().map_err(|_| malformed("bad PUT"))?;
                    self.memo_put(index)?;
                }
                BINPUT => {
                    let index = c.u8()?.into();
                    self.memo_put(index)?;
                }
                LONG_BINPUT => {
                    let index = c.u32()?;
                    self.memo_put(index)?;
                }
                MEMOIZE => {
                    let index =
                        u32::try_from(self.memo.len()).map_err(|_| malformed("memo overflow"))?;
                    self.memo_put(index)?;
                }
                GET => {
                    let index = c.line()?.parse().map_err(|_| malformed("bad GET"))?;
                    self.memo_get(index)?;
                }
                BINGET => {
                    let index = c.u8()?.into();
                    self.memo_get(index)?;
                }
                LONG_BINGET => {
                    let index = c.u32()?;
                    self.memo_get(index)?;
                }
                POP => {
                    self.pop()?;
                }
                DUP => {
                    // The same object twice: filling either fills what the memo holds.
                    let top = self
                        .stack
                        .last()
                        .map(|slot| Slot {
                            value: slot.value.clone(),
                            memo: slot.memo.clone(),
                        })
                        .ok_or_else(|| malformed("DUP on empty stack"))?;
                    self.stack.push(top);
                }
                POP_MARK => {
                    self.pop_mark()?;
                }
                other => {
                    return Err(PickleMetaError::Malformed(format!(
                        "unsupported opcode 0x{other:02x}"
                    )));
                }
            }
        }
    }
}
