//! Tests of the parent module.

use super::*;
use proptest::prelude::*;

pub(crate) fn toy_index(n: usize) -> Index {
    let config = IndexConfig {
        weights_sha256: "w".into(),
        features: FeatureConfig::default(),
        pca_dims: MAX_PCA_DIMS,
        whiten: false,
        sketch: SketchConfig::default(),
        query_sizes: Vec::new(),
        query_size_margin: 0.0,
        rescale_small_queries: false,
    };
    let mut idx = Index::new(config, PathBuf::from("/db"));
    for i in 0..n {
        let mut raw: Vec<f32> = (0..8).map(|k| ((i * 7 + k * 3) % 11) as f32).collect();
        l2_normalise(&mut raw);
        idx.entries.push(Entry {
            path: format!("{i}.png"),
            size_bytes: 1,
            modified_ns: 1,
            pixel_hash: format!("h{}", i % (n - 1).max(1)),
            width: 1,
            height: 1,
            data_bar_rows: 0,
            sketch_raw: raw.iter().rev().copied().collect(),
            edge_raw: raw.iter().map(|x| x * x).collect(),
            particles: None,
            raw,
        });
        idx.params.push(Vec::new());
    }
    idx.refit();
    idx
}

#[test]
fn near_duplicates_are_found_above_the_threshold_only() {
    let mut idx = toy_index(12);
    // Entry 5 becomes a slightly changed copy of entry 3 (other pixels, same look).
    let mut near = idx.entries[3].raw.clone();
    near[0] += 0.02;
    l2_normalise(&mut near);
    idx.entries[5].raw = near;
    idx.entries[5].pixel_hash = "unique".into();
    idx.refit();
    let dups = idx.duplicates(NEAR_DUPLICATE_THRESHOLD);
    let pair = dups
        .iter()
        .find(|d| (d.a, d.b) == (3, 5))
        .expect("the near copy");
    assert!(
        !pair.exact && pair.score >= NEAR_DUPLICATE_THRESHOLD,
        "{pair:?}"
    );
    assert!(dups
        .iter()
        .all(|d| d.exact || d.score >= NEAR_DUPLICATE_THRESHOLD));
    let strict = idx.duplicates(pair.score + 1e-4);
    assert!(!strict.iter().any(|d| (d.a, d.b) == (3, 5)));
}

/// More than two chunks of rows: the parallel path (rayon over 4,096-row chunks) gives the
/// same ranking as a full sort.
#[test]
fn parallel_top_k_over_many_rows_equals_a_full_sort() {
    let (n, dims) = (20_000usize, 16usize);
    let mut s = 7u64;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as f32 / (1u64 << 31) as f32 - 0.5
    };
    let vectors: Vec<f32> = (0..n * dims).map(|_| next()).collect();
    let query: Vec<f32> = (0..dims).map(|_| next()).collect();
    for k in [1usize, 10, 5000] {
        let got = top_k(&vectors, dims, &query, k, &|i| i % 7 == 0);
        let mut all: Vec<Hit> = (0..n)
            .filter(|i| i % 7 != 0)
            .map(|i| Hit {
                entry: i,
                score: dot(&vectors[i * dims..(i + 1) * dims], &query),
            })
            .collect();
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.entry.cmp(&b.entry)));
        all.truncate(k);
        assert_eq!(got, all, "k = {k}");
    }
}

proptest! {
    /// Arbitrary bytes, and every truncation of a valid library file, are refused with a
    /// message (and a file that is not a library is never written over).
    #[test]
    fn damaged_index_files_give_errors_not_panics(garbage in proptest::collection::vec(any::<u8>(), 0..400), cut in 0usize..10_000) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("x.msidx");
        std::fs::write(&path, &garbage).expect("write");
        prop_assert!(Index::load(&path).is_err());
        let good = toy_index(4);
        if !garbage.is_empty() {
            prop_assert!(good.save(&path).is_err(), "saved over a file that is not a library");
            prop_assert_eq!(std::fs::read(&path).expect("read"), garbage.clone());
        }
        std::fs::remove_file(&path).expect("remove");
        good.save(&path).expect("save");
        let bytes = std::fs::read(&path).expect("read");
        let cut = cut % bytes.len();
        std::fs::write(&path, &bytes[..cut]).expect("write");
        prop_assert!(Index::load(&path).is_err());
        let mut header_ok = bytes[..24.min(bytes.len())].to_vec();
        header_ok.extend_from_slice(&garbage);
        std::fs::write(&path, &header_ok).expect("write");
        prop_assert!(Index::load(&path).is_err());
    }
}

#[test]
fn finds_itself_first_and_exact_duplicates() {
    let idx = toy_index(12);
    for i in 0..12 {
        let hits = idx.search(&idx.entries[i].raw, Space::Image, 3);
        assert!((hits[0].score - 1.0).abs() < 1e-4);
        // Entries 0 and 11 have the same descriptor pattern; otherwise it is itself.
        assert!(hits[0].entry == i || idx.entries[hits[0].entry].raw == idx.entries[i].raw);
    }
    let dups = idx.duplicates(2.0);
    assert_eq!(dups.len(), 1, "pixel hashes h0 repeat once: {dups:?}");
    assert!(dups[0].exact);
}

#[test]
fn dot_equals_a_double_precision_sum_for_every_length() {
    for len in 0..70usize {
        let a: Vec<f32> = (0..len)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0)
            .collect();
        let b: Vec<f32> = (0..len)
            .map(|i| ((i * 13 % 17) as f32 - 8.0) / 9.0)
            .collect();
        let want: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let got = f64::from(dot(&a, &b));
        assert!(
            (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "len {len}: {got} vs {want}"
        );
    }
}

proptest! {
    #[test]
    fn top_k_matches_a_full_sort(n in 1usize..300, k in 0usize..400, seed in 0u32..100) {
        let dims = 5;
        let vectors: Vec<f32> = (0..n * dims).map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 1000.0).collect();
        let q = [0.3, -0.2, 0.5, 0.1, 0.7];
        let hits = top_k(&vectors, dims, &q, k, &|_| false);
        let mut all: Vec<(f32, usize)> = vectors.chunks(dims).enumerate()
            .map(|(i, r)| (r.iter().zip(&q).map(|(a, b)| a * b).sum(), i)).collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        prop_assert_eq!(hits.len(), k.min(n));
        for (h, a) in hits.iter().zip(&all) {
            prop_assert_eq!(h.entry, a.1);
        }
    }
}

#[test]
fn only_markedly_smaller_queries_are_described_at_their_own_scale() {
    // Same size or a little smaller: a whole micrograph, no extra size.
    assert_eq!(rescaled_query_size(1024, 1024, 224), None);
    assert_eq!(rescaled_query_size(800, 1024, 224), None);
    // A 30 % crop: described at 30 % of the input size too.
    assert_eq!(rescaled_query_size(307, 1024, 224), Some(67));
    // Tiny crops stop at 64 px; a half-size one is just under the input.
    assert_eq!(rescaled_query_size(50, 1024, 224), Some(64));
    assert_eq!(rescaled_query_size(700, 1000, 224), Some(157));
    let idx = toy_index(5);
    assert_eq!(idx.typical_side(), 1);
}

mod conditions {
    use super::*;
    use crate::engine::library::database::parse_value;
    use crate::engine::library::index::conditions::{Condition, Conditions};

    /// Four samples: polymer PEG / PVP, temperatures 20, 35, 50 and one left empty.
    fn recipes() -> Index {
        let mut idx = toy_index(4);
        idx.columns = vec!["Polymer type".into(), "Temperature, C".into()];
        let rows = [("PEG", "20"), ("PEG", "35"), ("PVP", "50"), ("peg 400", "")];
        idx.params = rows
            .iter()
            .map(|(p, t)| vec![parse_value(p), parse_value(t)])
            .collect();
        idx
    }

    fn passing(idx: &Index, text: &str) -> Vec<usize> {
        let c = Conditions::parse_list(idx, text).expect("parses");
        (0..idx.len()).filter(|&i| c.admits(idx, i)).collect()
    }

    #[test]
    fn conditions_select_by_text_and_number() {
        let idx = recipes();
        assert_eq!(passing(&idx, "Polymer type=PEG"), vec![0, 1]);
        assert_eq!(passing(&idx, "polymer type = peg"), vec![0, 1], "any case");
        assert_eq!(passing(&idx, "Polymer type~peg"), vec![0, 1, 3]);
        assert_eq!(passing(&idx, "Polymer type!=PEG"), vec![2, 3]);
        assert_eq!(passing(&idx, "Temperature, C<40"), vec![0, 1]);
        assert_eq!(passing(&idx, "Temperature, C<=35"), vec![0, 1]);
        assert_eq!(passing(&idx, "Temperature, C>=35"), vec![1, 2]);
        assert_eq!(
            passing(&idx, "Polymer type=PEG; Temperature, C<30"),
            vec![0],
            "all conditions hold"
        );
        assert_eq!(
            passing(&idx, "Temperature (C) > 20"),
            vec![1, 2],
            "loose name"
        );
        assert_eq!(
            passing(&idx, "Temperature, C=35.0"),
            vec![1],
            "numbers compare as numbers"
        );
    }

    #[test]
    fn malformed_conditions_say_what_is_wrong() {
        let idx = recipes();
        let err = |t: &str| Condition::parse(&idx, t).expect_err(t).to_string();
        let unknown = err("Temp<40");
        assert!(
            unknown.contains("no column \"Temp\"") && unknown.contains("Polymer type"),
            "{unknown}"
        );
        assert!(err("Polymer type PEG").contains("no comparison"));
        assert!(err("Temperature, C<warm").contains("is not one"));
        assert!(err("=PEG").contains("no column name"));
        assert!(err("Polymer type=").contains("no value"));
    }

    #[test]
    fn particle_statistics_are_columns_too() {
        let idx = recipes();
        let c = Condition::parse(&idx, "main particle shape=cube").expect("parses");
        assert_eq!(c.name, "Main particle shape");
        assert!(
            (0..idx.len()).all(|i| !c.admits(&idx, i)),
            "no sample was measured"
        );
    }
}
