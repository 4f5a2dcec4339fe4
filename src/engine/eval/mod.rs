//! Leave-one-out retrieval quality on a labelled database: mAP and precision@k, with each
//! query's identical twins (same pixels) removed from its ranking.

use std::collections::BTreeMap;

use crate::engine::library::index::{Index, Space};

pub mod crops;
pub mod sketches;

/// Retrieval figures over all queries.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    pub queries: usize,
    /// Images in the evaluation (labelled ones).
    pub labelled: usize,
    pub map: f64,
    /// (k, precision@k)
    pub precision: Vec<(usize, f64)>,
    /// The same figures for a random ranking (expected values).
    pub chance_map: f64,
    pub chance_precision: Vec<(usize, f64)>,
}

/// Cut-offs reported by default.
pub const CUTOFFS: [usize; 3] = [1, 3, 10];

/// Average precision of a ranking given as relevance flags, best first.
pub fn average_precision(relevant: &[bool]) -> f64 {
    let total = relevant.iter().filter(|&&r| r).count();
    if total == 0 {
        return 0.0;
    }
    let mut hits = 0;
    let mut sum = 0.0;
    for (i, &r) in relevant.iter().enumerate() {
        if r {
            hits += 1;
            sum += f64::from(hits) / (i + 1) as f64;
        }
    }
    sum / total as f64
}

/// Expected average precision of a random ranking of `n` items of which `r` are relevant.
fn chance_ap(n: usize, r: usize) -> f64 {
    if r == 0 || n == 0 {
        return 0.0;
    }
    // E[AP] = 1/n * sum_{k=1..n} ... closed form (Bestgen 2015): ((r - 1) / (n - 1)) * (1 - H_n / n) + H_n / n
    // with H_n the n-th harmonic number; for n = 1 it is 1.
    if n == 1 {
        return 1.0;
    }
    let h: f64 = (1..=n).map(|i| 1.0 / i as f64).sum();
    let (n, r) = (n as f64, r as f64);
    (r - 1.0) / (n - 1.0) * (1.0 - h / n) + h / n
}

/// Leave-one-out evaluation. `labels` maps image paths to a label; unlabelled images take no
/// part. Queries are labelled images whose label occurs at least twice; each is the stored
/// descriptor of the image.
pub fn leave_one_out(
    index: &Index,
    labels: &BTreeMap<String, String>,
    space: Space,
    cutoffs: &[usize],
) -> EvalReport {
    let s = index.space(space);
    evaluate_rankings(index, labels, cutoffs, s.len(), &mut |q| {
        Ok((0..s.len())
            .map(|i| (i, crate::engine::library::index::dot(s.row(q), s.row(i))))
            .collect())
    })
    .unwrap_or_else(|_| empty_report())
}

/// [`leave_one_out`] with query expansion (alpha-QE): each query vector is replaced by the
/// normalised sum of itself and its `n` nearest other entries, each weighted by its similarity
/// to the power `alpha`, and searched again. The query's identical twins are not used (they
/// are left out of the ranking too), so the expansion sees only what a user's query would.
pub fn leave_one_out_expanded(
    index: &Index,
    labels: &BTreeMap<String, String>,
    space: Space,
    cutoffs: &[usize],
    n: usize,
    alpha: f32,
) -> EvalReport {
    use crate::engine::library::index::dot;
    let s = index.space(space);
    evaluate_rankings(index, labels, cutoffs, s.len(), &mut |q| {
        let twin = &index.entries[q].pixel_hash;
        let mut first: Vec<(usize, f32)> = (0..s.len())
            .filter(|&i| &index.entries[i].pixel_hash != twin)
            .map(|i| (i, dot(s.row(q), s.row(i))))
            .collect();
        first.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut expanded = s.row(q).to_vec();
        for &(i, score) in first.iter().take(n) {
            let w = score.max(0.0).powf(alpha);
            for (e, x) in expanded.iter_mut().zip(s.row(i)) {
                *e += w * x;
            }
        }
        crate::engine::descriptor::pooling::l2_normalise(&mut expanded);
        Ok((0..s.len())
            .map(|i| (i, dot(&expanded, s.row(i))))
            .collect())
    })
    .unwrap_or_else(|_| empty_report())
}

/// [`leave_one_out`] with each query image read from its file and searched as a user's query
/// is (at the index's query sizes), rather than taken from the stored descriptors.
pub fn leave_one_out_from_files(
    engine: &crate::engine::Engine,
    index: &Index,
    labels: &BTreeMap<String, String>,
    cutoffs: &[usize],
) -> crate::engine::Result<EvalReport> {
    evaluate_rankings(index, labels, cutoffs, index.len(), &mut |q| {
        let e = &index.entries[q];
        let img = crate::engine::imaging::preprocess::load_image(
            &crate::engine::library::database::resolve(&index.db_dir, &e.path),
        )?;
        Ok(engine
            .search_image(index, &img, index.len())?
            .into_iter()
            .map(|h| (h.entry, h.score))
            .collect())
    })
}

fn empty_report() -> EvalReport {
    EvalReport {
        queries: 0,
        labelled: 0,
        map: 0.0,
        precision: Vec::new(),
        chance_map: 0.0,
        chance_precision: Vec::new(),
    }
}

/// The figures over every labelled query whose label occurs twice, from `rank(q)`: scores of
/// entries for query entry `q` (the query itself and its identical twins are left out).
fn evaluate_rankings(
    index: &Index,
    labels: &BTreeMap<String, String>,
    cutoffs: &[usize],
    searchable: usize,
    rank: &mut dyn FnMut(usize) -> crate::engine::Result<Vec<(usize, f32)>>,
) -> crate::engine::Result<EvalReport> {
    let labelled: Vec<(usize, &str)> = index
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| labels.get(&e.path).map(|l| (i, l.as_str())))
        .filter(|&(i, _)| i < searchable)
        .collect();
    let label_of: BTreeMap<usize, &str> = labelled.iter().copied().collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for &(_, l) in &labelled {
        *count.entry(l).or_default() += 1;
    }
    let mut aps = Vec::new();
    let mut precisions = vec![0.0; cutoffs.len()];
    let mut chance_aps = Vec::new();
    let mut chance_p = vec![0.0; cutoffs.len()];
    for &(q, label) in &labelled {
        if count[label] < 2 {
            continue;
        }
        let twin = &index.entries[q].pixel_hash;
        let mut ranked: Vec<(f32, bool)> = rank(q)?
            .into_iter()
            .filter(|&(i, _)| i != q && &index.entries[i].pixel_hash != twin)
            .filter_map(|(i, score)| label_of.get(&i).map(|l| (score, *l == label)))
            .collect();
        let relevant_total = ranked.iter().filter(|r| r.1).count();
        if relevant_total == 0 {
            continue;
        }
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        let flags: Vec<bool> = ranked.iter().map(|r| r.1).collect();
        aps.push(average_precision(&flags));
        chance_aps.push(chance_ap(flags.len(), relevant_total));
        for (j, &k) in cutoffs.iter().enumerate() {
            let top = k.min(flags.len());
            precisions[j] += flags[..top].iter().filter(|&&r| r).count() as f64 / k as f64;
            chance_p[j] += relevant_total as f64 / flags.len() as f64;
        }
    }
    let n = aps.len().max(1) as f64;
    Ok(EvalReport {
        queries: aps.len(),
        labelled: labelled.len(),
        map: aps.iter().sum::<f64>() / n,
        precision: cutoffs
            .iter()
            .zip(&precisions)
            .map(|(&k, &p)| (k, p / n))
            .collect(),
        chance_map: chance_aps.iter().sum::<f64>() / n,
        chance_precision: cutoffs
            .iter()
            .zip(&chance_p)
            .map(|(&k, &p)| (k, p / n))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_precision_by_hand() {
        assert!((average_precision(&[true, false, true]) - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!(average_precision(&[false, false]), 0.0);
        assert_eq!(average_precision(&[true]), 1.0);
    }

    /// Without neighbours the expansion is the plain leave-one-out; with them every labelled
    /// query is still evaluated, over the same entries.
    #[test]
    fn query_expansion_of_nothing_is_the_plain_search() {
        let index = crate::engine::library::index::tests::toy_index(12);
        let labels: BTreeMap<String, String> = index
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.path.clone(), format!("c{}", i % 3)))
            .collect();
        let plain = leave_one_out(&index, &labels, Space::Image, &CUTOFFS);
        let none = leave_one_out_expanded(&index, &labels, Space::Image, &CUTOFFS, 0, 3.0);
        assert!(plain.queries > 0);
        assert_eq!(plain.queries, none.queries);
        assert!((plain.map - none.map).abs() < 1e-9);
        let two = leave_one_out_expanded(&index, &labels, Space::Image, &CUTOFFS, 2, 3.0);
        assert_eq!(two.queries, plain.queries);
        assert!((0.0..=1.0).contains(&two.map));
    }

    #[test]
    fn chance_ap_matches_brute_force() {
        // All orderings of 4 items with 2 relevant: 6 placements of the relevant pair.
        let mut sum = 0.0;
        let mut count = 0;
        for a in 0..4 {
            for b in a + 1..4 {
                let flags: Vec<bool> = (0..4).map(|i| i == a || i == b).collect();
                sum += average_precision(&flags);
                count += 1;
            }
        }
        assert!((chance_ap(4, 2) - sum / f64::from(count)).abs() < 1e-12);
    }
}
