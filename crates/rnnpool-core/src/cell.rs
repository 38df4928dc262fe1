//! The recurrent cell inside RNNPool: FastGRNN (the paper's choice), GRU or LSTM (its Table 18).

use burn::nn::{Gru, GruConfig, Lstm, LstmConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::fastgrnn::{FastGrnnCell, FastGrnnCellConfig};

/// Which cell RNN1 and RNN2 use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RnnCellKind {
    /// EdgeML's FastGRNN (the paper's choice).
    #[default]
    FastGrnn,
    /// burn's GRU.
    Gru,
    /// burn's LSTM.
    Lstm,
}

impl RnnCellKind {
    /// A cell of this kind from `input` to `hidden` features.
    pub fn init(self, input: usize, hidden: usize, device: &Device) -> RnnCell {
        match self {
            Self::FastGrnn => RnnCell::FastGrnn(FastGrnnCellConfig::new(input, hidden).init(device)),
            Self::Gru => RnnCell::Gru(GruConfig::new(input, hidden, true).init(device)),
            Self::Lstm => RnnCell::Lstm(LstmConfig::new(input, hidden, true).with_batch_first(false).init(device)),
        }
    }
}

/// A cell that summarises a sequence into its last hidden state.
// Built once per layer, so the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum RnnCell {
    /// A FastGRNN cell.
    FastGrnn(FastGrnnCell),
    /// A GRU.
    Gru(Gru),
    /// An LSTM.
    Lstm(Lstm),
}

impl RnnCell {
    /// Which kind of cell this is.
    pub fn kind(&self) -> RnnCellKind {
        match self {
            Self::FastGrnn(_) => RnnCellKind::FastGrnn,
            Self::Gru(_) => RnnCellKind::Gru,
            Self::Lstm(_) => RnnCellKind::Lstm,
        }
    }

    /// The kind's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::FastGrnn(_) => "FastGRNN",
            Self::Gru(_) => "GRU",
            Self::Lstm(_) => "LSTM",
        }
    }

    /// `seq` `[time, batch, input]` from a zero state -> last state `[batch, hidden]`.
    pub fn last_state(&self, seq: Tensor<3>) -> Tensor<2> {
        match self {
            Self::FastGrnn(cell) => cell.last_state(seq),
            Self::Gru(gru) => {
                let [t, n, _] = seq.dims();
                let out = gru.forward(seq.swap_dims(0, 1), None);
                let h = out.dims()[2];
                out.narrow(1, t - 1, 1).reshape([n, h])
            }
            Self::Lstm(lstm) => lstm.forward(seq, None).1.hidden,
        }
    }

    /// The FastGRNN cell, if it is one.
    pub fn as_fastgrnn(&self) -> Option<&FastGrnnCell> {
        match self {
            Self::FastGrnn(cell) => Some(cell),
            _ => None,
        }
    }
}
