//! A forest per family of features, combined so that one family's strong evidence counts.
//!
//! One forest over many features splits on features chosen at random, so a row extreme in
//! one feature of sixteen is isolated hardly sooner than a normal one (EVALUATION.md: an
//! attack hidden in a group its host runs every day differs only in its lineage). Here each
//! family (say rarity, command-line novelty, lineage, first seen) gets its own forest, fitted
//! on the same rows with the same parameters. A row's score in a family becomes an empirical
//! p-value against the training rows' scores in that family,
//! `p = (1 + #{training scores ≤ s}) / (N + 1)`, and the row's score is
//!
//! `ln p_min + w · Σ ln p_other`, with `w` = [`REST_WEIGHT`],
//!
//! the strongest family's evidence, with the other families' as a lesser weight, which
//! orders rows extreme in several families before rows extreme in one. Lower is more
//! abnormal, as with a single forest; the threshold (`offset`) is the training rows' score
//! at the contamination percentile.

use crate::{
    Error, IsolationForest, IsolationForestParams, Result, fit::percentile, params::Contamination,
};

/// The weight of the families other than the strongest in a row's score (see the module
/// documentation). Chosen among 0, ¼, ½ and 1 on replayed attacks (EVALUATION.md).
pub const REST_WEIGHT: f64 = 0.25;

/// One family: its features (indices into the model's columns), its forest over them, and
/// its training rows' scores, sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub(crate) features: Vec<usize>,
    pub(crate) forest: IsolationForest,
    pub(crate) training: Vec<f64>,
}

impl Family {
    /// The family's features, as indices into the model's columns.
    pub fn features(&self) -> &[usize] {
        &self.features
    }

    /// The family's forest.
    pub fn forest(&self) -> &IsolationForest {
        &self.forest
    }

    /// The empirical p-value of a score in this family: the share of training scores at
    /// or below it, counting the row itself (never 0).
    pub fn p_value(&self, score: f64) -> f64 {
        let at_or_below = self.training.partition_point(|&t| t <= score);
        (1 + at_or_below) as f64 / (1 + self.training.len()) as f64
    }

    fn columns<'a, C: AsRef<[f64]>>(&self, columns: &'a [C]) -> Vec<&'a [f64]> {
        self.features.iter().map(|&f| columns[f].as_ref()).collect()
    }
}

/// Forests over families of features; see the module documentation.
#[derive(Debug, Clone)]
pub struct FamilyForest {
    pub(crate) n_features: usize,
    pub(crate) families: Vec<Family>,
    pub(crate) offset: f64,
    pub(crate) warnings: Vec<String>,
}

/// Equal families and threshold (fitting's warnings aside, which a decoded model lacks).
impl PartialEq for FamilyForest {
    fn eq(&self, other: &Self) -> bool {
        self.n_features == other.n_features
            && self.families == other.families
            && self.offset.to_bits() == other.offset.to_bits()
    }
}

impl FamilyForest {
    /// Fits one forest per family of `columns` (each family a list of column indices; each
    /// column in at most one family) with `params`, whose contamination must be a fraction:
    /// the threshold is the training rows' combined score at that percentile.
    pub fn fit<C: AsRef<[f64]>>(
        params: &IsolationForestParams,
        columns: &[C],
        families: &[Vec<usize>],
    ) -> Result<Self> {
        let Contamination::Fraction(contamination) = params.contamination else {
            return Err(Error::InvalidParameter {
                name: "contamination",
                reason: "a forest per family of features needs a fraction, not auto".into(),
            });
        };
        check_families(families, columns.len())?;
        let per_family = params.clone().contamination(Contamination::Auto);
        let mut fitted = Vec::with_capacity(families.len());
        let mut warnings = Vec::new();
        for features in families {
            let cols: Vec<&[f64]> = features.iter().map(|&f| columns[f].as_ref()).collect();
            // A family constant over the training rows cannot isolate anything: every row
            // would get its p-value 1 (ln 1 = 0), so it is left out.
            let forest = match per_family.fit(&cols) {
                Err(Error::AllFeaturesConstant { rows }) => {
                    warnings.push(format!(
                        "the family of features {features:?} is constant over the {rows} \
                         training rows and takes no part in the scores"
                    ));
                    continue;
                }
                other => other?,
            };
            let mut training = forest.score_samples(&cols)?;
            training.sort_by(f64::total_cmp);
            fitted.push(Family {
                features: features.clone(),
                forest,
                training,
            });
        }
        if fitted.is_empty() {
            return Err(Error::AllFeaturesConstant {
                rows: columns.first().map_or(0, |c| c.as_ref().len()),
            });
        }
        let mut model = FamilyForest {
            n_features: columns.len(),
            families: fitted,
            offset: 0.0,
            warnings,
        };
        let mut combined = model.score_samples(columns)?;
        combined.sort_by(f64::total_cmp);
        model.offset = percentile(&combined, 100.0 * contamination);
        Ok(model)
    }

    /// A model from its parts (as read back from its bytes or JSON), checked.
    pub fn from_parts(n_features: usize, families: Vec<Family>, offset: f64) -> Result<Self> {
        let features: Vec<Vec<usize>> = families.iter().map(|f| f.features.clone()).collect();
        check_families(&features, n_features).map_err(|e| Error::BadModel(e.to_string()))?;
        for family in &families {
            if family.forest.n_features() != family.features.len() {
                return Err(Error::BadModel(format!(
                    "a family of {} features has a forest of {}",
                    family.features.len(),
                    family.forest.n_features()
                )));
            }
            if family.training.is_empty()
                || !family.training.is_sorted_by(|a, b| a.total_cmp(b).is_le())
            {
                return Err(Error::BadModel(
                    "a family's training scores are empty or unsorted".into(),
                ));
            }
        }
        if !offset.is_finite() {
            return Err(Error::BadModel(format!("offset {offset} is not finite")));
        }
        Ok(FamilyForest {
            n_features,
            families,
            offset,
            warnings: Vec::new(),
        })
    }

    /// Scores `columns` into `out` (one per row); lower is more abnormal.
    pub fn score_into<C: AsRef<[f64]>>(&self, columns: &[C], out: &mut [f64]) {
        let mut family_scores = vec![0.0; out.len()];
        let mut p: Vec<Vec<f64>> = Vec::with_capacity(self.families.len());
        for family in &self.families {
            family
                .forest
                .flat()
                .score_into(&family.columns(columns), &mut family_scores);
            p.push(family_scores.iter().map(|&s| family.p_value(s)).collect());
        }
        for (r, score) in out.iter_mut().enumerate() {
            *score = combine(p.iter().map(|family| family[r]));
        }
    }

    /// Number of input columns.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// The families, in the order given to [`FamilyForest::fit`].
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// What fitting noticed (families left out).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The threshold: a score below it is an anomaly.
    pub fn offset(&self) -> f64 {
        self.offset
    }

    /// Each row's family p-values, one vector per family.
    pub fn p_values<C: AsRef<[f64]>>(&self, columns: &[C]) -> Result<Vec<Vec<f64>>> {
        self.check_input(columns)?;
        self.families
            .iter()
            .map(|family| {
                let mut scores = family.forest.score_samples(&family.columns(columns))?;
                scores.iter_mut().for_each(|s| *s = family.p_value(*s));
                Ok(scores)
            })
            .collect()
    }

    /// One score per row (see the module documentation); lower is more abnormal.
    pub fn score_samples<C: AsRef<[f64]>>(&self, columns: &[C]) -> Result<Vec<f64>> {
        let p = self.p_values(columns)?;
        let rows = columns.first().map_or(0, |c| c.as_ref().len());
        Ok((0..rows)
            .map(|r| combine(p.iter().map(|family| family[r])))
            .collect())
    }

    /// Which features isolated each row, in the family with the row's smallest p-value
    /// (the first such family on a tie): that forest's explanation, the other features 0.
    pub fn explain<C: AsRef<[f64]>>(&self, columns: &[C]) -> Result<Vec<Vec<f64>>> {
        let p = self.p_values(columns)?;
        let rows = columns.first().map_or(0, |c| c.as_ref().len());
        let mut shares = vec![vec![0.0; self.n_features]; rows];
        for (f, family) in self.families.iter().enumerate() {
            let decided: Vec<usize> = (0..rows)
                .filter(|&r| strongest(p.iter().map(|family| family[r])) == f)
                .collect();
            if decided.is_empty() {
                continue;
            }
            let cols: Vec<Vec<f64>> = family
                .features
                .iter()
                .map(|&c| decided.iter().map(|&r| columns[c].as_ref()[r]).collect())
                .collect();
            let explained = family.forest.explain(&cols)?;
            for (&r, row) in decided.iter().zip(explained) {
                for (&c, share) in family.features.iter().zip(row) {
                    shares[r][c] = share;
                }
            }
        }
        Ok(shares)
    }

    /// The prediction for one score: −1 when `score − offset < 0`.
    pub fn predict_score(&self, score: f64) -> i8 {
        if score - self.offset < 0.0 { -1 } else { 1 }
    }

    fn check_input<C: AsRef<[f64]>>(&self, columns: &[C]) -> Result<()> {
        if columns.len() != self.n_features {
            return Err(Error::WrongFeatureCount {
                expected: self.n_features,
                got: columns.len(),
            });
        }
        Ok(())
    }
}

/// A row's score from its family p-values: `ln p_min + w · Σ ln p_other`.
pub fn combine(p_values: impl Iterator<Item = f64> + Clone) -> f64 {
    let strongest = strongest(p_values.clone());
    p_values
        .enumerate()
        .map(|(f, p)| match f == strongest {
            true => p.ln(),
            false => REST_WEIGHT * p.ln(),
        })
        .sum()
}

/// The index of the smallest p-value (the first on a tie).
fn strongest(p_values: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::INFINITY);
    for (f, p) in p_values.enumerate() {
        if p < best.1 {
            best = (f, p);
        }
    }
    best.0
}

/// Families must be non-empty lists of distinct, existing columns, none in two families.
pub(crate) fn check_families(families: &[Vec<usize>], n_features: usize) -> Result<()> {
    let bad = |reason: String| Error::InvalidParameter {
        name: "families",
        reason,
    };
    if families.is_empty() {
        return Err(bad("no family of features".into()));
    }
    let mut seen = vec![false; n_features];
    for family in families {
        if family.is_empty() {
            return Err(bad("a family without features".into()));
        }
        for &f in family {
            match seen.get_mut(f) {
                None => return Err(bad(format!("feature {f} of {n_features} does not exist"))),
                Some(true) => return Err(bad(format!("feature {f} is in two families"))),
                Some(s) => *s = true,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2,000 rows of four features: 0 and 1 correlated, 2 a rare flag (4 rows), 3 a
    /// small cycle.
    fn columns() -> Vec<Vec<f64>> {
        let rows = 2000;
        let a: Vec<f64> = (0..rows).map(|r| ((r * 37) % 101) as f64).collect();
        let b: Vec<f64> = a.iter().map(|v| v * 2.0 + 1.0).collect();
        let c: Vec<f64> = (0..rows).map(|r| (r % 500 == 7) as u8 as f64).collect();
        let d: Vec<f64> = (0..rows).map(|r| (r % 3) as f64).collect();
        vec![a, b, c, d]
    }

    fn params() -> IsolationForestParams {
        IsolationForestParams::default()
            .n_estimators(50)
            .seed(3)
            .contamination(Contamination::Fraction(0.01))
    }

    #[test]
    fn p_values_are_shares_of_the_training_scores_counting_the_row() {
        let family = Family {
            features: vec![0],
            forest: params()
                .contamination(Contamination::Auto)
                .fit(&[vec![1.0, 2.0, 3.0]])
                .unwrap(),
            training: vec![-0.7, -0.5, -0.5, -0.3],
        };
        assert_eq!(family.p_value(-0.9), 1.0 / 5.0);
        assert_eq!(family.p_value(-0.7), 2.0 / 5.0);
        assert_eq!(family.p_value(-0.5), 4.0 / 5.0);
        assert_eq!(family.p_value(0.0), 5.0 / 5.0);
    }

    #[test]
    fn the_score_is_the_strongest_family_and_a_quarter_of_the_rest() {
        let score = combine([0.5, 0.01, 0.2].into_iter());
        let expected = 0.01f64.ln() + REST_WEIGHT * (0.5f64.ln() + 0.2f64.ln());
        assert!((score - expected).abs() < 1e-12);
        // Extreme in two families beats extreme in one.
        assert!(combine([0.01, 0.01].into_iter()) < combine([0.01, 1.0].into_iter()));
    }

    #[test]
    fn fits_each_family_as_its_own_forest() {
        let x = columns();
        let families = vec![vec![0, 1], vec![2, 3]];
        let model = FamilyForest::fit(&params(), &x, &families).unwrap();
        // Each family's forest is the forest of its columns alone.
        let alone = params()
            .contamination(Contamination::Auto)
            .fit(&[&x[2], &x[3]])
            .unwrap();
        assert_eq!(model.families()[1].forest(), &alone);
        // About 1 % of the training rows fall below the threshold.
        let scores = model.score_samples(&x).unwrap();
        let flagged = scores
            .iter()
            .filter(|&&s| model.predict_score(s) == -1)
            .count();
        assert!((5..=40).contains(&flagged), "{flagged} flagged");
        // A row extreme in one family only is flagged, explained by that family.
        let odd: Vec<Vec<f64>> = vec![vec![50.0], vec![101.0], vec![1.0], vec![0.0]];
        let score = model.score_samples(&odd).unwrap()[0];
        assert_eq!(model.predict_score(score), -1);
        let shares = &model.explain(&odd).unwrap()[0];
        assert_eq!((shares[0], shares[1]), (0.0, 0.0));
        assert!((shares[2] + shares[3] - 1.0).abs() < 1e-9, "{shares:?}");
    }

    #[test]
    fn round_trips_through_bytes_and_json_and_scores_alike() {
        let x = columns();
        let model = FamilyForest::fit(&params(), &x, &[vec![0, 1], vec![2, 3]]).unwrap();
        let from_bytes = FamilyForest::from_bytes(&model.to_bytes()).unwrap();
        let from_json = FamilyForest::from_json(&model.to_json()).unwrap();
        assert_eq!(from_bytes, model);
        assert_eq!(from_json, model);
        let scores = model.score_samples(&x).unwrap();
        let mut fast = vec![0.0; scores.len()];
        from_bytes.score_into(&x, &mut fast);
        assert_eq!(fast, scores);
        // The enum tells the two kinds apart by their bytes and JSON.
        let as_model = crate::Model::Families(model.clone());
        assert_eq!(
            crate::Model::from_bytes(&as_model.to_bytes()).unwrap(),
            as_model
        );
        assert_eq!(
            crate::Model::from_json(&as_model.to_json()).unwrap(),
            as_model
        );
        let mut truncated = model.to_bytes();
        truncated.pop();
        assert!(FamilyForest::from_bytes(&truncated).is_err());
    }

    #[test]
    fn a_constant_family_is_left_out_with_a_warning() {
        let mut x = columns();
        x[3] = vec![1.0; x[0].len()];
        x[2] = vec![0.0; x[0].len()];
        let model = FamilyForest::fit(&params(), &x, &[vec![0, 1], vec![2, 3]]).unwrap();
        assert_eq!(model.families().len(), 1);
        assert_eq!(model.warnings().len(), 1);
    }

    #[test]
    fn refuses_auto_contamination_and_bad_families() {
        let x = columns();
        let auto = params().contamination(Contamination::Auto);
        assert!(FamilyForest::fit(&auto, &x, &[vec![0]]).is_err());
        for families in [
            vec![],
            vec![vec![]],
            vec![vec![4]],
            vec![vec![0], vec![0, 1]],
        ] {
            assert!(
                FamilyForest::fit(&params(), &x, &families).is_err(),
                "{families:?}"
            );
        }
    }
}
