//! What a PyTorch checkpoint's pickle says besides its tensors: the class names, the
//! model's YAML (`model.yaml`, the architecture Ultralytics' `parse_model` built it from),
//! which `Conv` modules have no activation, and the FocalModulation settings, all plain
//! attributes of the pickled modules.
//!
//! burn-store's reader turns each pickled `nn.Module` into its state_dict and drops every
//! other attribute, so this module walks the same pickle a second time with the value-only
//! interpreter of [`vm`](super::vm), refusing any global that a model checkpoint has no
//! business referencing.

use super::Result;
use super::value::Value;
use super::vm::Interpreter;

/// Settings a FocalModulation module keeps as attributes rather than tensors.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FocalAttributes {
    pub normalize_modulator: Option<bool>,
    pub focal_level: Option<usize>,
    pub focal_window: Option<usize>,
    pub focal_factor: Option<usize>,
}

/// What the checkpoint's pickle says about the model beyond its tensors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckpointMeta {
    /// Class names in index order, when the model carries them.
    pub class_names: Option<Vec<String>>,
    /// Attributes of the first FocalModulation module found, if any.
    pub focal: Option<FocalAttributes>,
    /// The model's YAML dict as JSON (`backbone`, `head`, `scale`, `nc`, ...), when pickled.
    pub yaml: Option<serde_json::Value>,
    /// Module paths (`model.9.cv1`) of the `Conv` blocks whose activation is `Identity`.
    /// Which ones depends on the Ultralytics version that built the model (8.4 builds SPPF's
    /// `cv1` without one, 8.3 with SiLU), so the pickled modules, not the YAML, say.
    pub plain_convs: Vec<String>,
}

/// Read the class names and FocalModulation attributes from a checkpoint's `data.pkl`.
///
/// `model_keys` are the top-level keys tried, in order, for the pickled model (Ultralytics
/// writes `model`, and `ema` in a training checkpoint).
pub fn read_checkpoint_meta(pickle: &[u8], model_keys: &[&str]) -> Result<CheckpointMeta> {
    let root = Interpreter::new(is_allowed_global).run(pickle)?;
    let model = model_keys
        .iter()
        .filter_map(|key| root.get(key))
        .find(|value| matches!(value, Value::Object { .. }));
    let Some(model) = model else {
        return Ok(CheckpointMeta::default());
    };
    let mut plain_convs = Vec::new();
    find_plain_convs(model, "", &mut plain_convs);
    Ok(CheckpointMeta {
        class_names: model.get("names").and_then(class_names),
        focal: find_focal(model),
        yaml: model.get("yaml").map(to_json),
        plain_convs,
    })
}

/// A plain value as JSON: the YAML dict holds only these (a callable would become null).
fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Str(s) => Json::String(s.clone()),
        Value::List(items) | Value::Tuple(items) => {
            Json::Array(items.iter().map(to_json).collect())
        }
        Value::Dict(items) => Json::Object(
            items
                .iter()
                .filter_map(|(k, v)| match k {
                    Value::Str(k) => Some((k.clone(), to_json(v))),
                    Value::Int(k) => Some((k.to_string(), to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        _ => Json::Null,
    }
}

/// Walk `nn.Module._modules` from `module` (at `path`), collecting every Conv-like block
/// (children `conv` and `act`) whose `act` is `Identity`.
fn find_plain_convs(module: &Value, path: &str, found: &mut Vec<String>) {
    let Some(Value::Dict(children)) = module.get("_modules").map(state_of) else {
        return;
    };
    let child = |name: &str| {
        children.iter().find_map(|(k, v)| match k {
            Value::Str(k) if k == name => Some(v),
            _ => None,
        })
    };
    if let (Some(_), Some(Value::Object { callable, .. })) = (child("conv"), child("act"))
        && callable.rsplit('.').next() == Some("Identity")
    {
        found.push(path.to_string());
    }
    for (name, value) in children {
        if let Value::Str(name) = name {
            let path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            find_plain_convs(value, &path, found);
        }
    }
}

/// An `OrderedDict` is an object whose items are its state.
fn state_of(value: &Value) -> &Value {
    match value {
        Value::Object { state, .. } => state,
        v => v,
    }
}

/// Ultralytics stores names as `{0: "person", ...}`; older models as a list.
fn class_names(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::List(items) | Value::Tuple(items) => items
            .iter()
            .map(|v| match v {
                Value::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        Value::Dict(items) => {
            let mut indexed: Vec<(i64, String)> = items
                .iter()
                .map(|(k, v)| match (k, v) {
                    (Value::Int(i), Value::Str(s)) => Some((*i, s.clone())),
                    (Value::Str(i), Value::Str(s)) => i.parse().ok().map(|i| (i, s.clone())),
                    _ => None,
                })
                .collect::<Option<_>>()?;
            indexed.sort_by_key(|(i, _)| *i);
            let contiguous = indexed.iter().enumerate().all(|(n, (i, _))| *i == n as i64);
            contiguous.then(|| indexed.into_iter().map(|(_, s)| s).collect())
        }
        _ => None,
    }
}

/// Depth-first search of the module tree for the FocalModulation block.
fn find_focal(value: &Value) -> Option<FocalAttributes> {
    match value {
        Value::Object { callable, state } => {
            if callable.rsplit('.').next() == Some("FocalModulation") {
                let int = |key| match state.get(key) {
                    Some(Value::Int(i)) => usize::try_from(*i).ok(),
                    _ => None,
                };
                return Some(FocalAttributes {
                    normalize_modulator: match state.get("normalize_modulator") {
                        Some(Value::Bool(b)) => Some(*b),
                        _ => None,
                    },
                    focal_level: int("focal_level"),
                    focal_window: int("focal_window"),
                    focal_factor: int("focal_factor"),
                });
            }
            find_focal(state)
        }
        Value::Dict(items) => items.iter().find_map(|(_, v)| find_focal(v)),
        Value::List(items) | Value::Tuple(items) => items.iter().find_map(find_focal),
        _ => None,
    }
}

/// Whether a checkpoint may reference `module.name`. Model checkpoints reference torch,
/// Ultralytics and container classes, plus the user's own module classes (the
/// FocalModulation block lives wherever the user's tutorial put it). Anything that can run
/// code when a real unpickler loads the file is refused, even though nothing is run here:
/// such a file is hostile, not a model.
fn is_allowed_global(module: &str, name: &str) -> bool {
    const DENIED_ROOTS: &[&str] = &[
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "shutil",
        "socket",
        "importlib",
        "runpy",
        "pty",
        "webbrowser",
        "pickle",
        "_pickle",
        "marshal",
        "ctypes",
        "code",
        "codeop",
        "commands",
        "platform",
        "multiprocessing",
        "signal",
        "asyncio",
        "threading",
        "io",
        "tempfile",
        "urllib",
        "http",
        "ftplib",
        "smtplib",
        "telnetlib",
        "pdb",
        "timeit",
        "operator",
        "functools",
        "inspect",
        "types",
        "__builtin__",
        "builtins",
    ];
    const SAFE_BUILTINS: &[&str] = &[
        // Only ever called on a model class's public attribute (`Detect.forward`): the
        // interpreter checks each call.
        "getattr",
        "set",
        "frozenset",
        "slice",
        "complex",
        "bytearray",
        "object",
    ];
    let root = module.split('.').next().unwrap_or(module);
    match root {
        "__builtin__" | "builtins" => SAFE_BUILTINS.contains(&name),
        "torch" | "collections" | "ultralytics" | "numpy" | "_codecs" | "copyreg" | "pathlib"
        | "datetime" | "argparse" => {
            !name.starts_with('_')
                || name.starts_with("_rebuild")
                || name == "_reconstructor"
                || name == "_reconstruct"
        }
        // A user's own module class: a class name, from a module that is not a system one.
        _ => !DENIED_ROOTS.contains(&root) && name.chars().next().is_some_and(char::is_uppercase),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::pickle::PickleMetaError;

    /// `{"model": DetectionModel() with names {0: "cat", 1: "dog"}}`, protocol 2.
    fn checkpoint_pickle(global: &[u8]) -> Vec<u8> {
        let mut p = b"\x80\x02}q\x00X\x05\x00\x00\x00modelq\x01c".to_vec();
        p.extend_from_slice(global);
        p.extend_from_slice(
            b")\x81}(X\x05\x00\x00\x00names}(K\x00X\x03\x00\x00\x00catK\x01X\x03\x00\x00\x00doguubs.",
        );
        p
    }

    /// Python's pickler, as `torch.save` runs it (protocol 2), on a checkpoint whose name
    /// table and FocalModulation module are reached first from its training arguments, then
    /// from the model (`testdata/make_shared_references.py`): the model's references are
    /// memo lookups of objects filled after they were memoized.
    #[test]
    fn a_second_reference_to_an_object_reads_it_filled() {
        let pickle = include_bytes!("testdata/shared_references.pkl");
        let meta = read_checkpoint_meta(pickle, &["model"]).unwrap();
        assert_eq!(
            meta.class_names,
            Some(vec!["cat".into(), "dog".into(), "bird".into()])
        );
        assert_eq!(
            meta.focal,
            Some(FocalAttributes {
                normalize_modulator: Some(true),
                focal_level: Some(3),
                focal_window: Some(5),
                focal_factor: Some(4),
            })
        );
    }

    #[test]
    fn reads_names_of_the_pickled_model() {
        let meta = read_checkpoint_meta(
            &checkpoint_pickle(b"ultralytics.nn.tasks\nDetectionModel\n"),
            &["model"],
        )
        .unwrap();
        assert_eq!(
            meta.class_names,
            Some(vec!["cat".to_string(), "dog".to_string()])
        );
        assert_eq!(meta.focal, None);
    }

    #[test]
    fn user_module_paths_are_accepted() {
        let meta = read_checkpoint_meta(
            &checkpoint_pickle(b"my_project.blocks\nFocalModulation\n"),
            &["model"],
        )
        .unwrap();
        assert_eq!(meta.focal, Some(FocalAttributes::default()));
    }

    #[test]
    fn hostile_globals_are_refused() {
        for global in [
            &b"os\nsystem\n"[..],
            b"posix\nsystem\n",
            b"builtins\neval\n",
            b"subprocess\nPopen\n",
        ] {
            let err = read_checkpoint_meta(&checkpoint_pickle(global), &["model"]).unwrap_err();
            assert!(matches!(err, PickleMetaError::ForbiddenGlobal(_)), "{err}");
        }
    }

    /// `{"model": getattr(CLASS, ATTRIBUTE)}`, protocol 2, as Ultralytics 8.2–8.3 heads
    /// pickle `self.detect = Detect.forward`.
    fn getattr_pickle(class: &[u8], attribute: &str) -> Vec<u8> {
        let mut p =
            b"\x80\x02}q\x00X\x05\x00\x00\x00modelq\x01c__builtin__\ngetattr\nq\x02c".to_vec();
        p.extend_from_slice(class);
        p.push(b'X');
        p.extend_from_slice(&(attribute.len() as u32).to_le_bytes());
        p.extend_from_slice(attribute.as_bytes());
        p.extend_from_slice(b"\x86Rs.");
        p
    }

    #[test]
    fn getattr_is_read_only_on_a_model_class_public_attribute() {
        let head = b"ultralytics.nn.modules.head\nDetect\n";
        assert!(read_checkpoint_meta(&getattr_pickle(head, "forward"), &["model"]).is_ok());
        for (class, attribute) in [
            (&head[..], "__init__"),
            (b"builtins\nobject\n", "forward"),
            (b"my_project\nhelpers\n", "run"),
        ] {
            let err =
                read_checkpoint_meta(&getattr_pickle(class, attribute), &["model"]).unwrap_err();
            assert!(matches!(err, PickleMetaError::ForbiddenGlobal(_)), "{err}");
        }
    }

    #[test]
    fn truncated_and_random_bytes_are_errors() {
        let full = checkpoint_pickle(b"ultralytics.nn.tasks\nDetectionModel\n");
        for cut in 0..full.len() - 1 {
            assert!(
                read_checkpoint_meta(&full[..cut], &["model"]).is_err(),
                "cut at {cut}"
            );
        }
        // Random bytes can be a valid pickle (`N.` is `None`), but not one holding a model
        // under "model" (the key's bytes in a row, a dict, an allowed global, a call): so each
        // string is refused, or read as a pickle with no model, nothing in it; never a panic.
        let seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut state = seed;
        let (mut refused, mut without_model) = (0, 0);
        for case in 0..200 {
            let bytes: Vec<u8> = (0..64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let read = std::panic::catch_unwind(|| read_checkpoint_meta(&bytes, &["model"]))
                .unwrap_or_else(|_| {
                    panic!("seed {seed:#x}, case {case}: panicked on {bytes:02x?}")
                });
            match read {
                Err(_) => refused += 1,
                Ok(meta) => {
                    assert_eq!(
                        meta,
                        CheckpointMeta::default(),
                        "seed {seed:#x}, case {case}: read a model from random bytes {bytes:02x?}"
                    );
                    without_model += 1;
                }
            }
        }
        println!(
            "random bytes: {refused} refused, {without_model} read as a pickle without a model"
        );
        assert!(
            refused > 0,
            "seed {seed:#x}: every random byte string read as a pickle"
        );
    }
}
