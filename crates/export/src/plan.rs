//! The static arena: every feature map and every layer's scratch gets an offset, reusing the
//! bytes of buffers that are dead (greedy by size, first fit, as TFLite Micro's planner). A
//! fused RNNPool layer may write its output into the rows of its input that it has finished
//! with (MCUNetV2's in-place idea); the planner allows it only where [`writes_only_dead_rows`]
//! proves, output row by output row, that no byte still to be read is overwritten.

use crate::graph::{Shape, TensorId};
use crate::quantize::{QConv, QGraph, QInvertedResidual, QLayer, QOp, QRnnPool};

/// How the model's input reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// `model_run()`: the whole frame is in the arena first.
    Frame,
    /// `model_run_rows()`: a reader delivers the input a row at a time; when the first layer
    /// can take rows ([`streams_input`]) the frame is never stored.
    Rows,
}

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
    /// The tensor whose finished rows this one (a fused layer's output) is written over.
    pub in_place_of: Option<TensorId>,
}

/// Where every buffer lives in the one static arena.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    /// The entry point it is for.
    pub entry: Entry,
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

    /// Whether tensor `id` is in the arena.
    pub fn stores(&self, id: TensorId) -> bool {
        self.buffers.iter().any(|b| b.kind == BufferKind::Tensor { id })
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

/// The RNNPool kernel's scratch (`c/src/rp_rnnpool_s8.c`): int32, RNN1's input projection of
/// a patch's pixels and a cell's temporary; then int16: the row summaries kept for the next
/// row of patches (patches across `in_w`), the column summaries kept for the next patch, a
/// patch's summaries, RNN2's state and the 4 h2 results.
pub fn rnnpool_scratch(p: &QRnnPool, in_w: usize) -> usize {
    let (h1, h2, r) = (p.rnn1.hidden, p.rnn2.hidden, p.patch);
    let overlap = r.saturating_sub(p.stride);
    let across = p.out_shape([r, in_w, 0])[1] - usize::from(p.replicate);
    4 * (r * r * h1 + h1.max(h2)) + 2 * ((across + 1) * overlap * h1 + r * h1 + h2 + 4 * h2)
}

/// The rows one stage of a streamed layer keeps (`c/src/rp_row_stage_s8.c`); `depth` 0: the
/// stage is a frame in the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    /// Rows held.
    pub depth: usize,
    /// Bytes of one row.
    pub row_bytes: usize,
}

/// Whether the first layer can take the model's input row by row from a reader: a dense
/// convolution or a fused RNNPool layer that is the input's only reader.
pub fn streams_input(q: &QGraph) -> bool {
    let Some(first) = q.layers.first() else { return false };
    let streamable = match &first.op {
        QOp::Conv(c) => !c.depthwise,
        QOp::RnnPoolInvertedResidual { .. } => true,
        _ => false,
    };
    streamable && first.input == q.input && readers(q, q.input) == 1
}

/// Whether layer `l` reads tensor `id` (as its input, or as a concatenation's second input).
fn reads(l: &QLayer, id: TensorId) -> bool {
    l.input == id || matches!(l.op, QOp::Concat { other, .. } if other == id)
}

/// Layers and model outputs that read tensor `id`.
fn readers(q: &QGraph, id: TensorId) -> usize {
    q.layers.iter().filter(|l| reads(l, id)).count() + q.outputs.iter().filter(|(t, _)| *t == id).count()
}

/// The shapes of a streamed layer's stages: its input, then each stem convolution's output.
pub fn stage_shapes(q: &QGraph, layer: usize) -> Vec<Shape> {
    let l = &q.layers[layer];
    let mut shapes = vec![q.tensors[l.input]];
    if let QOp::RnnPoolInvertedResidual { stem, .. } = &l.op {
        for c in stem {
            let next = c.out_shape(shapes[shapes.len() - 1]);
            shapes.push(next);
        }
    }
    shapes
}

/// The rings of layer `layer`'s stages under `entry` (empty when it streams nothing). A ring
/// is as deep as the window that reads it: the next convolution's kernel, or the RNNPool's
/// patch; stage 0 is the frame, unless `entry` is [`Entry::Rows`] and the layer reads rows.
pub fn rings(q: &QGraph, layer: usize, entry: Entry) -> Vec<Ring> {
    let rows_in = entry == Entry::Rows && layer == 0 && streams_input(q);
    let windows: Vec<usize> = match &q.layers[layer].op {
        QOp::Conv(c) if rows_in => vec![c.kernel],
        QOp::RnnPoolInvertedResidual { stem, pool, .. } => {
            stem.iter().map(|c| c.kernel).chain(std::iter::once(pool.patch)).collect()
        }
        _ => return Vec::new(),
    };
    let shapes = stage_shapes(q, layer);
    let ring = |(s, &window): (usize, &usize)| {
        let [_, w, c] = shapes[s];
        Ring { depth: if s == 0 && !rows_in { 0 } else { window }, row_bytes: w * c }
    };
    windows.iter().enumerate().map(ring).collect()
}

/// The bytes of `rings`, each 4-byte aligned.
pub fn rings_bytes(rings: &[Ring]) -> usize {
    rings.iter().map(|r| align(r.depth * r.row_bytes)).sum()
}

/// Bytes of working memory a layer needs besides its input and output. A streamed layer's
/// rings come first; then the fused RNNPool block lays out, in order: a ring of `kernel`
/// RNNPool output rows (Q12 int16), the block's rows, then (4-byte aligned) the RNNPool's own
/// scratch; `c/src/rp_rnnpool_inverted_residual_s8.c` uses the same layout.
pub fn scratch_bytes(q: &QGraph, layer: usize, entry: Entry) -> usize {
    let l = &q.layers[layer];
    let [_, w, _] = q.tensors[l.input];
    let [_, ow, _] = q.tensors[l.output];
    let own = match &l.op {
        QOp::InvertedResidual(b) => block_scratch(b, w, ow),
        QOp::RnnPool(p) => rnnpool_scratch(p, w),
        QOp::RnnPoolInvertedResidual { pool, block, .. } => {
            let shapes = stage_shapes(q, layer);
            let [_, pw, pc] = pool.out_shape(shapes[shapes.len() - 1]);
            let (k, ce) = (block.depthwise.kernel, block.depthwise.cout);
            let pool_in_w = shapes[shapes.len() - 1][1];
            align(2 * k * pw * pc + k * pw * ce + ow * ce) + rnnpool_scratch(pool, pool_in_w)
        }
        _ => 0,
    };
    rings_bytes(&rings(q, layer, entry)) + own
}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// How far a fused RNNPool layer has read its input, mirroring the C's order of work: for
/// each output row, the first input row that is still to be read once that row is written
/// (the input's height when none is). `None` for other layers.
pub fn input_rows_live_after(q: &QGraph, layer: usize) -> Option<Vec<usize>> {
    let l = &q.layers[layer];
    let QOp::RnnPoolInvertedResidual { stem, pool, block, .. } = &l.op else { return None };
    let shapes = stage_shapes(q, layer);
    let last = stem.len();
    // next[s]: the next row stage s computes (stage 0, the input, is read, never computed)
    let mut next = vec![0usize; last + 1];
    fn pull(stem: &[QConv], shapes: &[Shape], next: &mut [usize], s: usize, y: usize) {
        while s > 0 && next[s] <= y {
            let c = &stem[s - 1];
            for ky in 0..c.kernel {
                let iy = (next[s] * c.stride + ky).checked_sub(c.pad);
                if let Some(iy) = iy.filter(|&iy| iy < shapes[s - 1][0]) {
                    pull(stem, shapes, next, s - 1, iy);
                }
            }
            next[s] += 1;
        }
    }
    let ps = pool.out_shape(shapes[last]);
    let real_h = ps[0] - usize::from(pool.replicate);
    let dw = &block.depthwise;
    let (in_h, mut computed) = (shapes[0][0], 0);
    let mut live = Vec::new();
    for oy in 0..q.tensors[l.output][0] {
        for ky in 0..dw.kernel {
            let Some(iy) = (oy * dw.stride + ky).checked_sub(dw.pad).filter(|&iy| iy < ps[0]) else { continue };
            while computed <= iy {
                // the replicated last row copies the one before: it reads nothing
                if computed < real_h {
                    for y in 0..pool.patch {
                        pull(stem, &shapes, &mut next, last, computed * pool.stride + y);
                    }
                }
                computed += 1;
            }
        }
        live.push(match stem.first() {
            Some(c) if next[1] < shapes[1][0] => (next[1] * c.stride).saturating_sub(c.pad),
            None if computed < real_h => computed * pool.stride,
            _ => in_h,
        });
    }
    Some(live)
}

/// Whether layer `layer`, writing its output `delta` bytes after the start of its input,
/// overwrites only input bytes it has finished reading, at every output row.
pub fn writes_only_dead_rows(q: &QGraph, layer: usize, delta: isize) -> bool {
    let Some(live) = input_rows_live_after(q, layer) else { return false };
    let l = &q.layers[layer];
    let ([_, w, c], [_, ow, oc]) = (q.tensors[l.input], q.tensors[l.output]);
    let in_bytes = q.tensors[l.input].iter().product::<usize>() as isize;
    let (in_row, out_row) = ((w * c) as isize, (ow * oc) as isize);
    live.iter().enumerate().all(|(oy, &first_live)| {
        let (start, end) = (delta + oy as isize * out_row, delta + (oy as isize + 1) * out_row);
        end <= first_live as isize * in_row || start >= in_bytes || end <= 0
    })
}

/// Layers whose output can be written over their input (an input only they read, which is no
/// model output, finished with early enough): `(input, output)` pairs.
fn in_place_pairs(q: &QGraph, entry: Entry) -> Vec<(TensorId, TensorId)> {
    (0..q.layers.len())
        .filter(|&i| entry == Entry::Frame || i > 0 || !streams_input(q))
        .filter(|&i| readers(q, q.layers[i].input) == 1 && writes_only_dead_rows(q, i, 0))
        .map(|i| (q.layers[i].input, q.layers[i].output))
        .collect()
}

fn tensor_buffers(q: &QGraph, entry: Entry) -> Vec<Buffer> {
    let n = q.layers.len() as isize;
    let mut buffers = Vec::new();
    for (id, shape) in q.tensors.iter().enumerate() {
        let producer = q.layers.iter().position(|l| l.output == id);
        // A map inside a fused layer is never stored, nor a frame that arrives row by row.
        if (producer.is_none() && id != q.input) || (id == q.input && entry == Entry::Rows && streams_input(q)) {
            continue;
        }
        let first = producer.map_or(-1, |i| i as isize);
        let mut last = q.layers.iter().rposition(|l| reads(l, id)).map_or(first, |i| i as isize);
        if q.outputs.iter().any(|(o, _)| *o == id) {
            last = n;
        }
        let name = if id == q.input { "input".to_string() } else { q.layers[first as usize].name.clone() };
        let bytes = shape.iter().product();
        buffers.push(Buffer {
            name,
            kind: BufferKind::Tensor { id },
            bytes,
            first,
            last,
            offset: 0,
            in_place_of: None,
        });
    }
    buffers
}

/// The plans of both entry points.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plans {
    /// For `model_run()`.
    pub frame: Plan,
    /// For `model_run_rows()`.
    pub rows: Plan,
}

impl Plans {
    /// Plans `q` for both entry points.
    pub fn new(q: &QGraph) -> Self {
        Self { frame: plan(q, Entry::Frame), rows: plan(q, Entry::Rows) }
    }
}

/// Places every buffer of `q` for `entry`: greedily by size, first fit, reusing dead ones; an
/// in-place output shares its input's place.
pub fn plan(q: &QGraph, entry: Entry) -> Plan {
    let mut buffers = tensor_buffers(q, entry);
    for i in 0..q.layers.len() {
        let bytes = scratch_bytes(q, i, entry);
        if bytes > 0 {
            let name = format!("{}.scratch", q.layers[i].name);
            let kind = BufferKind::Scratch { layer: i };
            buffers.push(Buffer {
                name,
                kind,
                bytes,
                first: i as isize,
                last: i as isize,
                offset: 0,
                in_place_of: None,
            });
        }
    }
    // Groups placed as one: a buffer alone, or an input with the output written over it.
    let index = |id: TensorId, b: &[Buffer]| b.iter().position(|x| x.kind == BufferKind::Tensor { id });
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let pairs = in_place_pairs(q, entry);
    for (i, b) in buffers.iter().enumerate() {
        let BufferKind::Tensor { id } = b.kind else {
            groups.push(vec![i]);
            continue;
        };
        if pairs.iter().any(|(_, out)| *out == id) {
            continue;
        }
        let mut group = vec![i];
        group.extend(pairs.iter().filter(|(inp, _)| *inp == id).filter_map(|(_, out)| index(*out, &buffers)));
        groups.push(group);
    }
    for (inp, out) in &pairs {
        if let Some(o) = index(*out, &buffers) {
            buffers[o].in_place_of = Some(*inp);
        }
    }
    place(&mut buffers, &groups);
    let arena_bytes = buffers.iter().map(|b| b.offset + align(b.bytes)).max().unwrap_or(0);
    Plan { entry, buffers, arena_bytes }
}

/// First fit, largest group first: each group at the lowest offset where none of its buffers
/// overlaps a placed buffer that is live at the same time (each buffer with its own size and
/// lifetime, so an in-place output holds only its own bytes once its input is dead).
fn place(buffers: &mut [Buffer], groups: &[Vec<usize>]) {
    let largest = |g: &Vec<usize>| g.iter().map(|&i| align(buffers[i].bytes)).max().unwrap_or(0);
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&g| (std::cmp::Reverse(largest(&groups[g])), g));
    let mut placed: Vec<usize> = Vec::new();
    for g in order {
        let fits = |offset: usize, buffers: &[Buffer]| {
            groups[g].iter().all(|&i| {
                let b = &buffers[i];
                placed.iter().map(|&j| &buffers[j]).all(|o| {
                    let together = o.first <= b.last && b.first <= o.last;
                    !together || offset + align(b.bytes) <= o.offset || o.offset + align(o.bytes) <= offset
                })
            })
        };
        let mut candidates: Vec<usize> =
            std::iter::once(0).chain(placed.iter().map(|&j| buffers[j].offset + align(buffers[j].bytes))).collect();
        candidates.sort();
        // The last candidate lies past every placed buffer, so one always fits.
        let end = candidates.last().copied().unwrap_or(0);
        let offset = candidates.into_iter().find(|&o| fits(o, buffers)).unwrap_or(end);
        for &i in &groups[g] {
            buffers[i].offset = offset;
            placed.push(i);
        }
    }
}
