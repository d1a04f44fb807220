//! A convolution's weights in the order [`super::direct`]'s micro-kernel reads them (as
//! they are, or transformed for [`super::winograd`]), packed once per layer: `gemm`
//! packed them again on every call.

use std::sync::{Arc, Mutex};

use burn::backend::flex::FlexTensor;

use super::values;

/// Output channels per micro-tile of [`super::direct`].
pub(super) const MR: usize = 6;

/// Weights `(cout, taps)` as blocks of [`MR`] output channels, each tap's [`MR`] weights
/// together (zeros past `cout`).
#[derive(Debug)]
pub(super) struct PackedWeights {
    values: Vec<f32>,
    taps: usize,
}

impl PackedWeights {
    /// `weight` is `(cout, cin, k, k)` flattened: `taps = cin · k · k` values per output.
    pub(super) fn pack(weight: &[f32], cout: usize, taps: usize) -> Self {
        let blocks = cout.div_ceil(MR);
        let mut values = vec![0.0; blocks * taps * MR];
        for (co, row) in weight.chunks_exact(taps).take(cout).enumerate() {
            let block = &mut values[(co / MR) * taps * MR..][..taps * MR];
            for (t, &w) in row.iter().enumerate() {
                block[t * MR + co % MR] = w;
            }
        }
        Self { values, taps }
    }

    pub(super) fn taps(&self) -> usize {
        self.taps
    }

    /// Output channels `block · MR..(block + 1) · MR`.
    pub(super) fn block(&self, block: usize) -> &[f32] {
        &self.values[block * self.taps * MR..][..self.taps * MR]
    }
}

/// A layer's packed weights, kept while the layer's weight tensor is the one they were
/// packed from. The cache holds that tensor, so its buffer can be neither freed (and its
/// address reused) nor changed in place while the packing is kept. Clones of a layer share
/// the cache.
#[derive(Debug, Clone, Default)]
pub struct PackCache(Arc<Mutex<Option<(FlexTensor, Arc<PackedWeights>)>>>);

impl PackCache {
    /// `weight`'s values as `pack` packs them into `taps` taps per output, from the cache
    /// when they are the same buffer as last time, packed as many taps (direct convolution
    /// and Winograd pack a layer's weights into different numbers).
    pub(super) fn get(
        &self,
        weight: &FlexTensor,
        taps: usize,
        pack: impl FnOnce(&[f32]) -> PackedWeights,
    ) -> Arc<PackedWeights> {
        let same = |kept: &FlexTensor| {
            let (a, b) = (values(kept), values(weight));
            a.as_ptr() == b.as_ptr() && a.len() == b.len()
        };
        let mut cached = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*cached {
            Some((kept, packed)) if same(kept) && packed.taps == taps => packed.clone(),
            _ => {
                let packed = Arc::new(pack(values(weight)));
                *cached = Some((weight.clone(), packed.clone()));
                packed
            }
        }
    }
}
