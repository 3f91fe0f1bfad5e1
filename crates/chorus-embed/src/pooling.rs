//! [`Pooling`]: how one vector is made of a sequence's hidden states (sentence-transformers'
//! `Pooling` module, `1_Pooling/config.json`), over padded batches.

use candle_core::{D, Tensor};

/// A sentence-transformers pooling mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The first token's hidden state (`[CLS]`): `pooling_mode_cls_token`.
    Cls,
    /// The mean over the sequence's tokens, padding left out: `pooling_mode_mean_tokens`, and
    /// `pooling_mode_mean_sqrt_len_tokens` (the same direction, so the same unit vector).
    Mean,
    /// The largest value of each dimension over the sequence's tokens: `pooling_mode_max_tokens`.
    Max,
}

impl Pooling {
    /// The mode a `pooling_mode_*` key of the pooling config turns on, if chorus-embed does it.
    pub(crate) fn from_key(key: &str) -> Option<Self> {
        match key {
            "pooling_mode_cls_token" => Some(Self::Cls),
            "pooling_mode_mean_tokens" | "pooling_mode_mean_sqrt_len_tokens" => Some(Self::Mean),
            "pooling_mode_max_tokens" => Some(Self::Max),
            _ => None,
        }
    }

    /// Pool `hidden` (batch × seq × hidden, f32) under `mask` (batch × seq, f32: 1 for a token,
    /// 0 for padding) into batch × hidden.
    pub(crate) fn pool(self, hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Cls => hidden.narrow(1, 0, 1)?.squeeze(1),
            Self::Mean => {
                let mask = mask.unsqueeze(D::Minus1)?;
                let sum = hidden.broadcast_mul(&mask)?.sum(1)?;
                // sentence-transformers clamps the count at 1e-9; no sequence here is empty.
                let count = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
                sum.broadcast_div(&count)
            }
            Self::Max => {
                // Padding becomes -1e9, as sentence-transformers sets it, so it never wins.
                let mask = mask.unsqueeze(D::Minus1)?;
                let masked = hidden.broadcast_mul(&mask)?.broadcast_add(&mask.affine(1e9, -1e9)?)?;
                masked.max(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::Pooling;

    /// Two sequences of 3 positions, 2 dims; the second has one padding position whose values
    /// would change every pooling if they counted.
    fn batch() -> (Tensor, Tensor) {
        let hidden =
            Tensor::new(&[[[1f32, -2.], [3., 0.], [5., 4.]], [[2., 2.], [-4., 6.], [100., 100.]]], &Device::Cpu)
                .unwrap();
        let mask = Tensor::new(&[[1f32, 1., 1.], [1., 1., 0.]], &Device::Cpu).unwrap();
        (hidden, mask)
    }

    fn pooled(p: Pooling) -> Vec<Vec<f32>> {
        let (hidden, mask) = batch();
        p.pool(&hidden, &mask).unwrap().to_vec2().unwrap()
    }

    #[test]
    fn poolings_leave_padding_out() {
        assert_eq!(pooled(Pooling::Cls), vec![vec![1., -2.], vec![2., 2.]]);
        assert_eq!(pooled(Pooling::Mean), vec![vec![3., 2. / 3.], vec![-1., 4.]]);
        assert_eq!(pooled(Pooling::Max), vec![vec![5., 4.], vec![2., 6.]]);
    }

    #[test]
    fn config_keys_map_to_modes() {
        assert_eq!(Pooling::from_key("pooling_mode_mean_tokens"), Some(Pooling::Mean));
        assert_eq!(Pooling::from_key("pooling_mode_lasttoken"), None);
    }
}
