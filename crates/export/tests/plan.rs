//! The arena plan: buffers that are live at the same time never share a byte (except a fused
//! layer's output written over input rows it has finished with, checked row step by row step),
//! and dead ones are reused (the arena is far smaller than all buffers laid end to end).

mod common;

use export::plan::{Buffer, BufferKind, Entry, Plan, writes_only_dead_rows};
use export::{QGraph, plan, quantize};

fn quantized(f: &common::Fixture) -> QGraph {
    let ranges = export::calibrate(&f.graph, f.inputs.iter().map(|v| v.as_slice())).unwrap();
    quantize::quantize(&f.graph, &ranges).unwrap()
}

/// When `out` is written over `inp` by a layer: that layer, and `out`'s offset minus `inp`'s.
fn in_place(q: &QGraph, out: &Buffer, inp: &Buffer) -> Option<(usize, isize)> {
    let (BufferKind::Tensor { id: o }, BufferKind::Tensor { id: i }) = (&out.kind, &inp.kind) else { return None };
    if out.in_place_of != Some(*i) {
        return None;
    }
    let layer = q.layers.iter().position(|l| l.output == *o && l.input == *i)?;
    Some((layer, out.offset as isize - inp.offset as isize))
}

/// Checks `p`; returns how many outputs are written over their inputs.
fn check(name: &str, q: &QGraph, p: &Plan) -> usize {
    let mut in_place_outputs = 0;
    for (i, a) in p.buffers.iter().enumerate() {
        assert!(a.offset % 4 == 0 && a.offset + a.bytes <= p.arena_bytes, "{name}: {} out of the arena", a.name);
        for b in &p.buffers[i + 1..] {
            if let Some((layer, delta)) = in_place(q, a, b).or_else(|| in_place(q, b, a)) {
                assert!(writes_only_dead_rows(q, layer, delta), "{name}: {} over {} too early", a.name, b.name);
                in_place_outputs += 1;
                continue;
            }
            let live_together = a.first <= b.last && b.first <= a.last;
            let share = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
            assert!(!(live_together && share), "{name}: {} and {} overlap while both live", a.name, b.name);
        }
    }
    let total: usize = p.buffers.iter().map(|b| b.bytes).sum();
    eprintln!("{name} {:?}: arena {} B, all buffers {total} B", p.entry, p.arena_bytes);
    assert!(p.arena_bytes < total, "{name}: no reuse");
    in_place_outputs
}

#[test]
fn live_buffers_never_overlap_and_dead_ones_are_reused() {
    let mut in_place_outputs = 0;
    for f in common::fixtures() {
        let q = quantized(&f);
        let frame = plan::plan(&q, Entry::Frame);
        let rows = plan::plan(&q, Entry::Rows);
        in_place_outputs += check(&f.name, &q, &frame) + check(&f.name, &q, &rows);
        assert!(rows.arena_bytes <= frame.arena_bytes, "{}: rows need more than the frame", f.name);
        if plan::streams_input(&q) {
            assert!(!rows.stores(q.input), "{}: the streamed frame is stored", f.name);
        }
    }
    assert!(in_place_outputs > 0, "no fused layer writes over its input");
}

#[test]
fn the_row_check_refuses_an_output_over_rows_still_to_be_read() {
    let f = common::fixtures().into_iter().find(|f| f.name == "RPool_Face_M4").unwrap();
    let q = quantized(&f);
    let layer = (0..q.layers.len()).find(|&i| plan::input_rows_live_after(&q, i).is_some()).unwrap();
    let in_bytes = q.tensors[q.layers[layer].input].iter().product::<usize>() as isize;
    assert!(writes_only_dead_rows(&q, layer, 0));
    assert!(!writes_only_dead_rows(&q, layer, in_bytes / 2), "an output over the input's second half");
    assert!(writes_only_dead_rows(&q, layer, in_bytes), "an output after the input");
    assert!(!writes_only_dead_rows(&q, layer + 1, 0), "a layer that is not streamed");
}
