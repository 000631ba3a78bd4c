use super::*;

fn rows(indexes: &[u64]) -> RoaringTreemap {
    indexes.iter().copied().collect()
}

/// The rows a selection keeps, by walking its selectors.
fn kept(selection: &RowSelection) -> Vec<u64> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for s in selection.iter() {
        if !s.skip {
            out.extend(at..at + s.row_count as u64);
        }
        at += s.row_count as u64;
    }
    out
}

#[test]
fn the_row_selection_keeps_exactly_the_rows_not_deleted() {
    for (file_rows, deleted) in [
        (10u64, vec![]),
        (10, vec![0]),
        (10, vec![9]),
        (10, vec![0, 1, 2, 5, 9]),
        (10, (0..10).collect::<Vec<_>>()),
        (5_000_000, vec![3, 4_294_967_295 % 5_000_000, 4_999_999]),
    ] {
        let d = DeletedRows::new(file_rows, rows(&deleted)).unwrap();
        let expected: Vec<u64> = (0..file_rows).filter(|r| !deleted.contains(r)).collect();
        let selection = d.row_selection();
        assert_eq!(kept(&selection), expected, "{deleted:?}");
        let total: usize = selection.iter().map(|s| s.row_count).sum();
        assert_eq!(
            total as u64, file_rows,
            "the selection covers the whole file"
        );
        assert_eq!(d.live_rows(), expected.len() as u64);
    }
}

#[test]
fn a_deleted_row_beyond_the_file_is_refused() {
    let err = DeletedRows::new(3, rows(&[1, 3])).unwrap_err();
    assert!(err.to_string().contains("row 3"), "{err}");
}

#[test]
fn deleted_rows_survive_the_plan_encoding() {
    let d = DeletedRows::new(1 << 33, rows(&[0, 7, (1 << 32) + 5])).unwrap();
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(serde_json::from_str::<DeletedRows>(&json).unwrap(), d);
}

#[test]
fn inline_and_stored_vectors_round_trip_and_bad_bytes_are_named() {
    let deleted = rows(&[1, 2, 3, 1000, (1 << 32) + 1]);
    let (text, size) = encode_inline(&deleted);
    assert_eq!(text.len() % 5, 0);
    assert_eq!(decode_inline(&text, size).unwrap(), deleted);

    let framed = encode_stored(&deleted);
    assert_eq!(decode_stored(&framed, size).unwrap(), deleted);
    let mut corrupt = framed.clone();
    corrupt[10] ^= 1;
    assert!(matches!(
        decode_stored(&corrupt, size),
        Err(FormatError::Checksum { .. })
    ));
    assert!(matches!(
        decode_stored(&framed, size + 1),
        Err(FormatError::Size { .. })
    ));
    assert!(matches!(
        decode_stored(&framed[..framed.len() - 1], size),
        Err(FormatError::Truncated(_))
    ));
    let mut native = encode_bitmap(&deleted);
    native[..4].copy_from_slice(&NATIVE_MAGIC.to_le_bytes());
    assert!(matches!(
        decode_bitmap(&native),
        Err(FormatError::Bitmap(_))
    ));
    assert!(matches!(
        decode_bitmap(&[1, 2, 3, 4]),
        Err(FormatError::Magic(_))
    ));
}

#[test]
fn a_relative_file_name_follows_the_protocol_example() {
    // The example in the Delta protocol's "Deletion Vector Descriptor Schema".
    assert_eq!(
        relative_file_name("ab^-aqEH.-t@S}K{vb[*k^").unwrap(),
        "ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin"
    );
    let uuid = [
        0xd2, 0xc6, 0x39, 0xaa, 0x88, 0x16, 0x43, 0x1a, 0xaa, 0xf6, 0xd3, 0xfe, 0x25, 0x12, 0xff,
        0x61,
    ];
    assert_eq!(encode_file_name("ab", uuid), "ab^-aqEH.-t@S}K{vb[*k^");
    assert!(relative_file_name("short").is_err());
}

#[test]
fn an_upstream_inline_vector_decodes_to_its_documented_rows() {
    // delta-kernel-rs's inline test vector (`dv_inline`): rows 3, 4, 7, 11, 18 and 29.
    let rows = decode_inline(
        "^Bg9^0rr910000000000iXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L",
        44,
    )
    .unwrap();
    assert_eq!(rows.iter().collect::<Vec<_>>(), vec![3, 4, 7, 11, 18, 29]);
}
