//! Pooling a conv feature map `[C, H, W]` into one vector per image.

use serde::{Deserialize, Serialize};

use crate::engine::error::{Error, Result};

/// How conv5_3 (or the fc layers) become a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Pooling {
    /// Generalised mean, p = 3 (Radenović et al. 2018).
    Gem,
    /// Global max (MAC).
    Max,
    /// Global average (SPoC).
    Avg,
    /// Regional max over 3 scales, regions L2-normalised and summed (Tolias et al. 2016).
    Rmac,
    /// The study's original descriptor: fc2 after ReLU (needs full weights).
    Fc2,
    /// Max and GeM side by side, each L2-normalised (twice the channels): the default, the
    /// one that holds on both CaCO3 and EMPS (docs/quality.md).
    #[default]
    MaxGem,
}

impl Pooling {
    /// All choices, for help texts.
    pub const ALL: [Pooling; 6] = [
        Self::Gem,
        Self::Max,
        Self::Avg,
        Self::Rmac,
        Self::Fc2,
        Self::MaxGem,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gem => "gem",
            Self::Max => "max",
            Self::Avg => "avg",
            Self::Rmac => "rmac",
            Self::Fc2 => "fc2",
            Self::MaxGem => "maxgem",
        }
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                Error::InvalidSetting(format!(
                    "pooling {s:?}: use gem, max, avg, rmac, maxgem or fc2"
                ))
            })
    }
}

const GEM_P: f32 = 3.0;

/// Pools one `[c, h, w]` map (channel-major) with a conv pooling (not `Fc2`).
pub fn pool(map: &[f32], c: usize, h: usize, w: usize, pooling: Pooling) -> Vec<f32> {
    let hw = h * w;
    let channel = |k: usize| &map[k * hw..(k + 1) * hw];
    match pooling {
        Pooling::Max | Pooling::Fc2 => (0..c)
            .map(|k| channel(k).iter().copied().fold(0.0, f32::max))
            .collect(),
        Pooling::Avg => (0..c)
            .map(|k| channel(k).iter().sum::<f32>() / hw as f32)
            .collect(),
        Pooling::Gem => (0..c)
            .map(|k| {
                let m = channel(k)
                    .iter()
                    .map(|&v| v.max(1e-6).powf(GEM_P))
                    .sum::<f32>()
                    / hw as f32;
                m.powf(1.0 / GEM_P)
            })
            .collect(),
        Pooling::Rmac => rmac(map, c, h, w),
        Pooling::MaxGem => {
            let mut max = pool(map, c, h, w, Pooling::Max);
            let mut gem = pool(map, c, h, w, Pooling::Gem);
            l2_normalise(&mut max);
            l2_normalise(&mut gem);
            max.extend(gem);
            max
        }
    }
}

/// Square regions at scales l = 1..=3: side 2*min(h,w)/(l+1), l positions along each axis.
pub fn rmac_regions(h: usize, w: usize) -> Vec<(usize, usize, usize)> {
    let side_min = h.min(w);
    let mut out = Vec::new();
    for l in 1..=3usize {
        let side = if l == 1 {
            side_min
        } else {
            (2 * side_min / (l + 1)).max(1)
        };
        let starts = |dim: usize| -> Vec<usize> {
            let n = if l == 1 {
                1 + usize::from(dim > side)
            } else {
                l
            };
            let span = dim - side;
            if n == 1 {
                vec![span / 2]
            } else {
                (0..n).map(|i| i * span / (n - 1)).collect()
            }
        };
        for &y in &starts(h) {
            for &x in &starts(w) {
                out.push((y, x, side));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn rmac(map: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut total = vec![0f32; c];
    for (y0, x0, side) in rmac_regions(h, w) {
        let mut region: Vec<f32> = (0..c)
            .map(|k| {
                let mut m = 0f32;
                for y in y0..y0 + side {
                    for x in x0..x0 + side {
                        m = m.max(map[k * h * w + y * w + x]);
                    }
                }
                m
            })
            .collect();
        l2_normalise(&mut region);
        for (t, r) in total.iter_mut().zip(&region) {
            *t += r;
        }
    }
    total
}

/// Scales `v` to unit length (leaves a zero vector alone).
pub fn l2_normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 1e-12 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poolings_on_a_known_map() {
        // 2 channels, 2x2: channel 0 = [0, 1, 2, 3], channel 1 = all 2.
        let map = [0.0, 1.0, 2.0, 3.0, 2.0, 2.0, 2.0, 2.0];
        assert_eq!(pool(&map, 2, 2, 2, Pooling::Max), vec![3.0, 2.0]);
        assert_eq!(pool(&map, 2, 2, 2, Pooling::Avg), vec![1.5, 2.0]);
        let gem = pool(&map, 2, 2, 2, Pooling::Gem);
        // (0 + 1 + 8 + 27) / 4 = 9, cube root = 2.0801
        assert!(
            (gem[0] - 9f32.cbrt()).abs() < 1e-4 && (gem[1] - 2.0).abs() < 1e-4,
            "{gem:?}"
        );
        // Both halves unit length: max [3, 2] / sqrt(13), then GeM.
        let both = pool(&map, 2, 2, 2, Pooling::MaxGem);
        assert_eq!(both.len(), 4);
        assert!((both[0] - 3.0 / 13f32.sqrt()).abs() < 1e-5, "{both:?}");
        let half_norm = |h: &[f32]| h.iter().map(|x| x * x).sum::<f32>();
        assert!((half_norm(&both[..2]) - 1.0).abs() < 1e-5);
        assert!((half_norm(&both[2..]) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn rmac_regions_cover_the_map() {
        let r = rmac_regions(14, 14);
        assert_eq!(r.len(), 1 + 4 + 9);
        assert!(r.iter().all(|&(y, x, s)| y + s <= 14 && x + s <= 14));
        let r = rmac_regions(1, 1);
        assert!(r.iter().all(|&(y, x, s)| y + s <= 1 && x + s <= 1));
    }

    #[test]
    fn names_round_trip() {
        for p in Pooling::ALL {
            assert_eq!(p.name().parse::<Pooling>().expect("parse"), p);
        }
    }
}
