//! The static arena: every feature map and every layer's scratch gets an offset, reusing the
//! bytes of buffers that are dead (greedy by size, first fit, as TFLite Micro's planner).

use crate::graph::TensorId;
use crate::quantize::{QGraph, QInvertedResidual, QOp, QRnnPool};

/// A buffer's role.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferKind {
    /// A feature map.
    Tensor {
        /// Which.
        id: TensorId,
    },
    /// A layer's working memory.
    Scratch {
        /// Which layer's.
        layer: usize,
    },
}

/// One buffer of the arena.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Buffer {
    /// What it holds, for the report.
    pub name: String,
    /// A tensor or a layer's scratch.
    pub kind: BufferKind,
    /// Its size.
    pub bytes: usize,
    /// First and last layer during which the buffer holds live data (`-1`: before the first
    /// layer, when the input is written).
    pub first: isize,
    /// The last layer that reads it (`-1`: none; outputs live to the end).
    pub last: isize,
    /// Its offset in the arena.
    pub offset: usize,
}

/// Where every buffer lives in the one static arena.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    /// Every buffer.
    pub buffers: Vec<Buffer>,
    /// The arena's size: the model's peak RAM.
    pub arena_bytes: usize,
}

impl Plan {
    /// The offset of tensor `id`.
    pub fn tensor_offset(&self, id: TensorId) -> usize {
        self.buffers.iter().find(|b| b.kind == BufferKind::Tensor { id }).map_or(0, |b| b.offset)
    }

    /// The offset of layer `layer`'s scratch, if it has one.
    pub fn scratch_offset(&self, layer: usize) -> Option<usize> {
        self.buffers.iter().find(|b| b.kind == BufferKind::Scratch { layer }).map(|b| b.offset)
    }
}

const ALIGN: usize = 4;

/// An inverted residual's working rows: a ring of `kernel` expanded rows (with an
/// expansion) and one depthwise output row, so the expanded map is never whole in RAM.
fn block_scratch(b: &QInvertedResidual, in_w: usize, out_w: usize) -> usize {
    let ce = b.depthwise.cout;
    let ring = if b.expand.is_some() { b.depthwise.kernel * in_w * ce } else { 0 };
    ring + out_w * ce
}

/// int16: the row/column summaries, RNN2's state, the 4 h2 results and a cell's next state.
pub fn rnnpool_scratch(p: &QRnnPool) -> usize {
    2 * (p.patch * p.rnn1.hidden + p.rnn2.hidden + 4 * p.rnn2.hidden + p.rnn1.hidden.max(p.rnn2.hidden))
}

/// Bytes of working memory a layer needs besides its input and output. The fused RNNPool
/// block lays out, in order: a ring of `kernel` RNNPool output rows (Q12 int16), the block's
/// rows, then (4-byte aligned) the RNNPool's own scratch; `c/src/rp_rnnpool_inverted_residual_s8.c`
/// uses the same layout.
pub fn scratch_bytes(q: &QGraph, layer: usize) -> usize {
    let l = &q.layers[layer];
    let [_, w, _] = q.tensors[l.input];
    let [_, ow, _] = q.tensors[l.output];
    match &l.op {
        QOp::InvertedResidual(b) => block_scratch(b, w, ow),
        QOp::RnnPool(p) => rnnpool_scratch(p),
        QOp::RnnPoolInvertedResidual { pool, block, .. } => {
            let [_, pw, pc] = pool.out_shape(q.tensors[l.input]);
            let (k, ce) = (block.depthwise.kernel, block.depthwise.cout);
            align(2 * k * pw * pc + k * pw * ce + ow * ce) + rnnpool_scratch(pool)
        }
        _ => 0,
    }
}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Places every buffer of `q`: greedily by size, first fit, reusing dead ones.
pub fn plan(q: &QGraph) -> Plan {
    let n = q.layers.len() as isize;
    let mut buffers = Vec::new();
    for (id, shape) in q.tensors.iter().enumerate() {
        let producer = q.layers.iter().position(|l| l.output == id);
        // A map inside a fused layer is never stored.
        if producer.is_none() && id != q.input {
            continue;
        }
        let first = producer.map_or(-1, |i| i as isize);
        let reads =
            |l: &crate::quantize::QLayer| l.input == id || matches!(l.op, QOp::Concat { other, .. } if other == id);
        let mut last = q.layers.iter().rposition(reads).map_or(first, |i| i as isize);
        if q.outputs.iter().any(|(o, _)| *o == id) {
            last = n;
        }
        let name = if id == q.input { "input".to_string() } else { q.layers[first as usize].name.clone() };
        buffers.push(Buffer {
            name,
            kind: BufferKind::Tensor { id },
            bytes: shape.iter().product(),
            first,
            last,
            offset: 0,
        });
    }
    for i in 0..q.layers.len() {
        let bytes = scratch_bytes(q, i);
        if bytes > 0 {
            let name = format!("{}.scratch", q.layers[i].name);
            buffers.push(Buffer {
                name,
                kind: BufferKind::Scratch { layer: i },
                bytes,
                first: i as isize,
                last: i as isize,
                offset: 0,
            });
        }
    }
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(buffers[i].bytes), i));
    let mut placed: Vec<usize> = Vec::new();
    for i in order {
        let b = &buffers[i];
        let mut conflicts: Vec<(usize, usize)> = placed
            .iter()
            .map(|&j| &buffers[j])
            .filter(|o| o.first <= b.last && b.first <= o.last)
            .map(|o| (o.offset, o.offset + align(o.bytes)))
            .collect();
        conflicts.sort();
        let mut offset = 0;
        for (start, end) in conflicts {
            if offset + align(b.bytes) <= start {
                break;
            }
            offset = offset.max(end);
        }
        buffers[i].offset = offset;
        placed.push(i);
    }
    let arena_bytes = buffers.iter().map(|b| b.offset + align(b.bytes)).max().unwrap_or(0);
    Plan { buffers, arena_bytes }
}
