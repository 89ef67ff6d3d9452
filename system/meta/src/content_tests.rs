//! [`FileContent`] against a naive model: one value per byte of the file.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

/// What one byte of a file reads as: a data byte (holes are `Data(0)`), or byte `offset` of a stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Byte {
    Data(u8),
    Stripe(u128, u64),
}

#[derive(Debug, Clone)]
enum Step {
    Inline { offset: u64, bytes: Vec<u8> },
    Overlay(Vec<NewExtent>),
    Truncate(u64),
}

fn stripe(id: u128) -> StripeRef {
    StripeRef {
        id: StripeId(id),
        layout: StripeLayout::Replicated { copies: 2 },
        chunk_len_bytes: 1000,
        data_len_bytes: 1000,
        nodes: vec![NodeId(1), NodeId(2)],
    }
}

fn extents() -> impl Strategy<Value = Vec<NewExtent>> {
    prop::collection::vec((0u64..40, 1u64..60, 0u128..5, 0u64..500), 1..6).prop_map(|raw| {
        let mut at = 0;
        raw.into_iter()
            .map(|(gap, len, id, stripe_offset_bytes)| {
                at += gap;
                let e = NewExtent { file_offset: at, len_bytes: len, stripe: stripe(id), stripe_offset_bytes };
                at += len;
                e
            })
            .collect()
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u64..120, prop::collection::vec(1u8..=255, 0..40)).prop_map(|(offset, bytes)| Step::Inline { offset, bytes }),
        extents().prop_map(Step::Overlay),
        (0u64..300).prop_map(Step::Truncate),
    ]
}

/// The model after `step`.
fn model_apply(model: &mut Vec<Byte>, step: &Step) {
    let grow = |model: &mut Vec<Byte>, end: u64| {
        if (model.len() as u64) < end {
            model.resize(end as usize, Byte::Data(0));
        }
    };
    match step {
        Step::Inline { offset, bytes } => {
            if bytes.is_empty() {
                return;
            }
            grow(model, offset + bytes.len() as u64);
            for (i, b) in bytes.iter().enumerate() {
                model[*offset as usize + i] = Byte::Data(*b);
            }
        }
        Step::Overlay(extents) => {
            for e in extents {
                grow(model, e.file_offset + e.len_bytes);
                for i in 0..e.len_bytes {
                    model[(e.file_offset + i) as usize] = Byte::Stripe(e.stripe.id.0, e.stripe_offset_bytes + i);
                }
            }
        }
        Step::Truncate(size) => model.resize(*size as usize, Byte::Data(0)),
    }
}

fn content_apply(content: &mut FileContent, size: &mut u64, step: &Step) {
    match step {
        Step::Inline { offset, bytes } => {
            content.write_inline(*offset, bytes);
            if !bytes.is_empty() {
                *size = (*size).max(offset + bytes.len() as u64);
            }
        }
        Step::Overlay(extents) => {
            check_new_extents(extents[0].file_offset, extents).expect("generated extents are valid");
            content.overlay(extents);
            let last = extents.last().unwrap();
            *size = (*size).max(last.file_offset + last.len_bytes);
        }
        Step::Truncate(new) => {
            content.truncate(*new);
            *size = *new;
        }
    }
}

/// A mapped range laid out as a reader does: zeros, then inline, then pieces.
fn render(map: &FileMap, offset: u64, len: u64) -> Vec<Byte> {
    let end = offset.saturating_add(len).min(map.size);
    let mut out = vec![Byte::Data(0); end.saturating_sub(offset) as usize];
    assert!(map.inline.len() <= out.len());
    for (i, b) in map.inline.iter().enumerate() {
        out[i] = Byte::Data(*b);
    }
    let mut last_end = offset;
    for p in &map.pieces {
        assert!(p.len_bytes > 0 && p.file_offset >= last_end && p.file_offset + p.len_bytes <= end);
        last_end = p.file_offset + p.len_bytes;
        for i in 0..p.len_bytes {
            out[(p.file_offset - offset + i) as usize] = Byte::Stripe(p.stripe.id.0, p.stripe_offset_bytes + i);
        }
    }
    out
}

fn model_ids(model: &[Byte]) -> BTreeSet<StripeId> {
    model
        .iter()
        .filter_map(|b| match b {
            Byte::Stripe(id, _) => Some(StripeId(*id)),
            Byte::Data(_) => None,
        })
        .collect()
}

proptest! {
    #[test]
    fn content_agrees_with_the_byte_model(
        steps in prop::collection::vec(step(), 1..12),
        ranges in prop::collection::vec((0u64..320, 0u64..200), 4),
    ) {
        let mut model: Vec<Byte> = Vec::new();
        let mut content = FileContent::default();
        let mut size = 0u64;
        for step in &steps {
            let before = content.clone();
            let before_ids = model_ids(&model);
            model_apply(&mut model, step);
            content_apply(&mut content, &mut size, step);
            prop_assert_eq!(size, model.len() as u64);
            content.check(size).map_err(TestCaseError::fail)?;
            prop_assert_eq!(render(&content.map(size, 0, u64::MAX), 0, u64::MAX), model.clone());
            let after_ids = model_ids(&model);
            prop_assert_eq!(content.stripe_ids(), after_ids.clone());
            let dropped: BTreeSet<StripeId> = before.stripes_dropped(&content).iter().map(|s| s.id).collect();
            prop_assert_eq!(dropped, before_ids.difference(&after_ids).copied().collect::<BTreeSet<_>>());
        }
        for &(offset, len) in &ranges {
            let want: Vec<Byte> = model.iter().skip(offset as usize).take(len as usize).copied().collect();
            prop_assert_eq!(render(&content.map(size, offset, len), offset, len), want);
        }
    }
}

#[test]
fn overwrite_splits_an_extent() {
    let mut c = FileContent::default();
    c.overlay(&[NewExtent { file_offset: 0, len_bytes: 100, stripe: stripe(1), stripe_offset_bytes: 0 }]);
    c.overlay(&[NewExtent { file_offset: 40, len_bytes: 10, stripe: stripe(2), stripe_offset_bytes: 5 }]);
    let got: Vec<(u64, u64, u128, u64)> =
        c.extents.iter().map(|(&at, e)| (at, e.len_bytes, e.stripe.id.0, e.stripe_offset_bytes)).collect();
    assert_eq!(got, vec![(0, 40, 1, 0), (40, 10, 2, 5), (50, 50, 1, 50)]);
    let before = c.clone();
    c.truncate(45);
    assert_eq!(before.stripes_dropped(&c), vec![]);
    c.truncate(30);
    assert_eq!(before.stripes_dropped(&c).iter().map(|s| s.id).collect::<Vec<_>>(), vec![StripeId(2)]);
}

#[test]
fn write_checks_in_order() {
    let one =
        |offset, len| NewExtent { file_offset: offset, len_bytes: len, stripe: stripe(1), stripe_offset_bytes: 0 };
    let empty = FileContent::default();
    assert_eq!(check_write(&empty, 0, &WriteData::Extents(vec![])), Err(Errno::EINVAL));
    assert_eq!(check_write(&empty, 5, &WriteData::Extents(vec![one(0, 10)])), Err(Errno::EINVAL));
    assert_eq!(check_write(&empty, 0, &WriteData::Extents(vec![one(0, 10), one(5, 10)])), Err(Errno::EINVAL));
    assert_eq!(check_write(&empty, 0, &WriteData::Extents(vec![one(0, 0)])), Err(Errno::EINVAL));
    assert_eq!(check_write(&empty, 0, &WriteData::Extents(vec![one(0, 1001)])), Err(Errno::EINVAL));
    let mut bad_nodes = one(0, 10);
    bad_nodes.stripe.nodes.pop();
    assert_eq!(check_write(&empty, 0, &WriteData::Extents(vec![bad_nodes])), Err(Errno::EINVAL));
    let many: Vec<NewExtent> = (0..=WRITE_EXTENTS_MAX as u64).map(|i| one(i * 10, 10)).collect();
    assert_eq!(check_write(&empty, 0, &WriteData::Extents(many)), Err(Errno::EINVAL));
    assert_eq!(
        check_write(&empty, FILE_SIZE_MAX_BYTES, &WriteData::Extents(vec![one(FILE_SIZE_MAX_BYTES, 1)])),
        Err(Errno::EFBIG)
    );
    assert_eq!(check_write(&empty, 0, &WriteData::Extents(vec![one(0, 10), one(10, 10)])), Ok(20));
    assert_eq!(check_write(&empty, INLINE_LEN_MAX_BYTES - 1, &WriteData::Inline(vec![1])), Ok(INLINE_LEN_MAX_BYTES));
    assert_eq!(check_write(&empty, INLINE_LEN_MAX_BYTES, &WriteData::Inline(vec![1])), Err(Errno::EFBIG));
    let mut with_extent = FileContent::default();
    with_extent.overlay(&[one(100, 10)]);
    assert_eq!(check_write(&with_extent, 0, &WriteData::Inline(vec![1])), Err(Errno::EFBIG));
}

#[test]
fn move_chunk_checks_the_source() {
    let mut c = FileContent::default();
    c.overlay(&[
        NewExtent { file_offset: 0, len_bytes: 10, stripe: stripe(1), stripe_offset_bytes: 0 },
        NewExtent { file_offset: 20, len_bytes: 10, stripe: stripe(1), stripe_offset_bytes: 10 },
    ]);
    assert_eq!(c.move_chunk(StripeId(9), 0, NodeId(1), NodeId(7)), Err(Errno::ENOENT));
    assert_eq!(c.move_chunk(StripeId(1), 2, NodeId(1), NodeId(7)), Err(Errno::EINVAL));
    assert_eq!(c.move_chunk(StripeId(1), 1, NodeId(1), NodeId(7)), Err(Errno::EAGAIN));
    assert_eq!(c.move_chunk(StripeId(1), 1, NodeId(2), NodeId(7)), Ok(()));
    assert!(c.extents.values().all(|e| e.stripe.nodes == vec![NodeId(1), NodeId(7)]));
}
