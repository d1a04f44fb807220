//! One row of the model's YAML, `[from, repeats, module, args]`, and its arguments read as
//! the blocks take them.

use serde_json::Value as Json;

use super::GraphError;

/// One YAML row.
pub(super) struct Row {
    pub layer: usize,
    pub from: Vec<isize>,
    pub repeats: usize,
    pub module: String,
    pub args: Vec<Json>,
}

impl Row {
    pub fn parse(layer: usize, row: &Json) -> Result<Self, GraphError> {
        let bad = |reason: &str| GraphError::BadYaml(format!("row {layer} {reason}"));
        let [from, repeats, module, args] = row
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| bad("is not a list"))?
        else {
            return Err(bad("is not [from, repeats, module, args]"));
        };
        let from = match from {
            Json::Array(items) => items.iter().map(Json::as_i64).collect::<Option<Vec<_>>>(),
            single => single.as_i64().map(|f| vec![f]),
        }
        .ok_or_else(|| bad("has a `from` that is not layer numbers"))?
        .into_iter()
        .map(|f| f as isize)
        .collect();
        let repeats = repeats
            .as_u64()
            .filter(|&n| n >= 1)
            .ok_or_else(|| bad("has a repeat count that is not a positive number"))?
            as usize;
        let module = module
            .as_str()
            .ok_or_else(|| bad("names no module"))?
            .to_string();
        let args = args.as_array().cloned().unwrap_or_default();
        Ok(Self {
            layer,
            from,
            repeats,
            module,
            args,
        })
    }

    pub fn bad(&self, reason: &str) -> GraphError {
        GraphError::BadRow {
            layer: self.layer,
            module: self.module.clone(),
            reason: reason.into(),
        }
    }

    /// Argument `i` as a count: absent (the block's default) or a non-negative integer.
    pub fn int_arg(&self, args: &[Json], i: usize) -> Result<Option<usize>, GraphError> {
        match args.get(i) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or_else(|| self.bad(&format!("argument {i} ({v}) is not a whole number"))),
        }
    }

    /// Argument `i` as a flag: absent (the block's default) or a boolean.
    pub fn bool_arg(&self, args: &[Json], i: usize) -> Result<Option<bool>, GraphError> {
        match args.get(i) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.bad(&format!("argument {i} ({v}) is not true or false"))),
        }
    }
}
