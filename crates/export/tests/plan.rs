//! The arena plan: buffers that are live at the same time never share a byte, and dead ones
//! are reused (the arena is far smaller than all buffers laid end to end).

mod common;

use export::{plan, quantize};

#[test]
fn live_buffers_never_overlap_and_dead_ones_are_reused() {
    for f in common::fixtures() {
        let ranges = export::calibrate(&f.graph, f.inputs.iter().map(|v| v.as_slice())).unwrap();
        let q = quantize::quantize(&f.graph, &ranges).unwrap();
        let p = plan::plan(&q);
        for (i, a) in p.buffers.iter().enumerate() {
            assert!(
                a.offset % 4 == 0 && a.offset + a.bytes <= p.arena_bytes,
                "{}: {} out of the arena",
                f.name,
                a.name
            );
            for b in &p.buffers[i + 1..] {
                let live_together = a.first <= b.last && b.first <= a.last;
                let share = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
                assert!(!(live_together && share), "{}: {} and {} overlap while both live", f.name, a.name, b.name);
            }
        }
        let total: usize = p.buffers.iter().map(|b| b.bytes).sum();
        let largest_pair = q
            .layers
            .iter()
            .map(|l| q.tensors[l.input].iter().product::<usize>() + q.tensors[l.output].iter().product::<usize>())
            .max()
            .unwrap();
        eprintln!(
            "{}: arena {} B, all buffers {} B, largest layer in+out {} B",
            f.name, p.arena_bytes, total, largest_pair
        );
        assert!(p.arena_bytes >= largest_pair);
        assert!(p.arena_bytes < total, "{}: no reuse", f.name);
    }
}
