//! Behaviour of the isolation forest: scikit-learn parity on exported forests, the fast
//! scorer against the recursive walk, determinism, persistence, and bad input.

use iforest::{
    Contamination, Error, IsolationForest, IsolationForestParams, MODEL_FORMAT_VERSION,
    MaxFeatures, MaxSamples, sklearn::SklearnForest,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(serde::Deserialize)]
struct Fixture {
    columns: Vec<Vec<Option<f64>>>,
    score_samples: Vec<f64>,
    decision_function: Vec<f64>,
    predict: Vec<i8>,
}

fn load_fixture(name: &str) -> (IsolationForest, Vec<Vec<f64>>, Fixture) {
    // Read at run time: a build cache shared between checkouts must not point elsewhere.
    let path = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join(format!("tests/fixtures/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    let model = SklearnForest::from_json(&text).unwrap().to_model().unwrap();
    let fixture: Fixture = serde_json::from_str(&text).unwrap();
    let columns = fixture
        .columns
        .iter()
        .map(|c| c.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        .collect();
    (model, columns, fixture)
}

#[test]
fn reproduces_scikit_learn_forests() {
    for name in ["sklearn_job_features", "sklearn_nan_bootstrap_subset"] {
        let (model, columns, fx) = load_fixture(name);
        let fast = model.score_samples(&columns).unwrap();
        let reference = model.score_samples_reference(&columns).unwrap();
        for (r, ((f, w), s)) in fast
            .iter()
            .zip(&reference)
            .zip(&fx.score_samples)
            .enumerate()
        {
            assert!(
                (f - s).abs() <= 1e-12,
                "{name} row {r}: {f} vs scikit-learn {s}"
            );
            assert_eq!(
                f.to_bits(),
                w.to_bits(),
                "{name} row {r}: fast vs recursive"
            );
        }
        let decision = model.decision_function(&columns).unwrap();
        for (d, s) in decision.iter().zip(&fx.decision_function) {
            assert!((d - s).abs() <= 1e-12);
        }
        assert_eq!(
            model.predict(&columns).unwrap(),
            fx.predict,
            "{name} predict"
        );
        assert!(
            fx.predict.contains(&-1) && fx.predict.contains(&1),
            "{name}: both classes"
        );
    }
}

/// Random columns with a few outliers; `nan_rate` of the values missing.
fn data(rows: usize, features: usize, seed: u64, nan_rate: f64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..features)
        .map(|f| {
            (0..rows)
                .map(|r| {
                    if rng.random::<f64>() < nan_rate {
                        f64::NAN
                    } else if r % 97 == 0 {
                        50.0 + rng.random::<f64>() * 10.0
                    } else if f % 2 == 0 {
                        (rng.random::<f64>() * 20.0).floor()
                    } else {
                        rng.random::<f64>()
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn fast_scorer_equals_recursive_walk_bit_for_bit() {
    let cases = [
        (500, 6, MaxSamples::Count(100), 0.0),
        (500, 3, MaxSamples::Auto, 0.05),
        (3, 2, MaxSamples::Auto, 0.0),
        (2000, 4, MaxSamples::Count(2000), 0.0),
        (70_000, 2, MaxSamples::Count(70_000), 0.0), // deeper than the padded layout allows
    ];
    for (i, (rows, features, max_samples, nan_rate)) in cases.into_iter().enumerate() {
        let x = data(rows, features, i as u64, nan_rate);
        let model = IsolationForestParams::default()
            .n_estimators(if rows > 10_000 { 3 } else { 30 })
            .max_samples(max_samples)
            .seed(i as u64)
            .fit(&x)
            .unwrap();
        let probe = data(rows.min(3000), features, 100 + i as u64, 0.1);
        let fast = model.score_samples(&probe).unwrap();
        let reference = model.score_samples_reference(&probe).unwrap();
        let mut parallel = vec![0.0; fast.len()];
        model.flat().score_parallel(&probe, &mut parallel, 3);
        for r in 0..fast.len() {
            assert_eq!(
                fast[r].to_bits(),
                reference[r].to_bits(),
                "case {i} row {r}"
            );
            assert_eq!(fast[r].to_bits(), parallel[r].to_bits(), "case {i} row {r}");
        }
        // Explanations: the flat forest's leaf positions against the walk of every tree,
        // with the explanation tables built on first use and built ahead.
        let prepared = model.clone();
        prepared.prepare();
        let explained = model.explain(&probe).unwrap();
        let explained_prepared = prepared.explain(&probe).unwrap();
        let walked = model.explain_reference(&probe).unwrap();
        assert_eq!(explained.len(), probe[0].len());
        for (r, (e, w)) in explained.iter().zip(&walked).enumerate() {
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(e), bits(w), "case {i} row {r} explanation");
            assert_eq!(
                bits(&explained_prepared[r]),
                bits(w),
                "case {i} row {r} prepared explanation"
            );
        }
        assert!(
            walked.iter().any(|w| w.iter().sum::<f64>() > 0.99),
            "case {i}: explanations are not all empty"
        );
    }
}

#[test]
fn deterministic_per_seed_and_independent_of_threads() {
    let x = data(1000, 5, 1, 0.0);
    let fit = |seed, threads| {
        IsolationForestParams::default()
            .seed(seed)
            .threads(threads)
            .fit(&x)
            .unwrap()
    };
    let a = fit(42, 1);
    let b = fit(42, 4);
    let c = fit(43, 1);
    assert_eq!(a.trees(), b.trees());
    assert_eq!(a.score_samples(&x).unwrap(), b.score_samples(&x).unwrap());
    assert_ne!(a.trees(), c.trees());
}

#[test]
fn scores_in_range_and_predict_agrees_with_decision_function() {
    let x = data(800, 4, 2, 0.0);
    for contamination in [Contamination::Auto, Contamination::Fraction(0.1)] {
        let model = IsolationForestParams::default()
            .contamination(contamination)
            .seed(5)
            .fit(&x)
            .unwrap();
        let scores = model.score_samples(&x).unwrap();
        let decision = model.decision_function(&x).unwrap();
        let predict = model.predict(&x).unwrap();
        for ((s, d), p) in scores.iter().zip(&decision).zip(&predict) {
            let anomaly_score = -s;
            assert!(
                anomaly_score > 0.0 && anomaly_score <= 1.0,
                "{anomaly_score}"
            );
            assert_eq!(*p == -1, *d < 0.0);
            assert_eq!(*p, model.predict_score(*s));
        }
        if contamination == Contamination::Fraction(0.1) {
            let flagged = predict.iter().filter(|&&p| p == -1).count();
            // The offset is the 10th percentile of the training scores.
            assert!((70..=90).contains(&flagged), "{flagged} flagged");
        } else {
            assert_eq!(model.offset(), -0.5);
        }
        // The planted outliers (every 97th row) score lowest on average.
        let outlier_mean: f64 = (0..800).step_by(97).map(|r| scores[r]).sum::<f64>() / 9.0;
        let mean: f64 = scores.iter().sum::<f64>() / 800.0;
        assert!(outlier_mean < mean - 0.05, "{outlier_mean} vs {mean}");
    }
}

#[test]
fn persistence_round_trips_bit_identically() {
    let x = data(600, 6, 3, 0.02);
    let model = IsolationForestParams::default()
        .max_samples(MaxSamples::Count(100))
        .contamination(Contamination::Fraction(0.05))
        .seed(42)
        .fit(&x)
        .unwrap();
    let scores = model.score_samples(&x).unwrap();
    let from_json = IsolationForest::from_json(&model.to_json()).unwrap();
    let from_bytes = IsolationForest::from_bytes(&model.to_bytes()).unwrap();
    for other in [&from_json, &from_bytes] {
        assert_eq!(other, &model);
        let s = other.score_samples(&x).unwrap();
        assert!(
            s.iter()
                .zip(&scores)
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        assert_eq!(other.content_hash(), model.content_hash());
    }
    let json = model.to_json().replace(
        &format!("\"format_version\": {MODEL_FORMAT_VERSION}"),
        "\"format_version\": 99",
    );
    assert_eq!(
        IsolationForest::from_json(&json).unwrap_err(),
        Error::UnsupportedVersion {
            found: 99,
            supported: MODEL_FORMAT_VERSION
        }
    );
    let mut bytes = model.to_bytes();
    bytes[4] = 7;
    assert!(matches!(
        IsolationForest::from_bytes(&bytes),
        Err(Error::UnsupportedVersion { found: 7, .. })
    ));
    let bytes = model.to_bytes();
    assert!(matches!(
        IsolationForest::from_bytes(&bytes[..bytes.len() - 3]),
        Err(Error::BadModel(_))
    ));
    assert!(IsolationForest::from_json("{\"format\": \"something else\"}").is_err());
}

#[test]
fn bad_input_is_a_typed_error() {
    let ok = vec![vec![1.0, 2.0, 3.0], vec![0.0, 1.0, 0.0]];
    let p = IsolationForestParams::default();
    let empty: Vec<Vec<f64>> = vec![vec![], vec![]];
    assert_eq!(p.fit(&empty).unwrap_err(), Error::NoRows);
    let none: Vec<Vec<f64>> = vec![];
    assert_eq!(p.fit(&none).unwrap_err(), Error::NoFeatures);
    assert_eq!(
        p.fit(&[vec![1.0, 2.0], vec![1.0]]).unwrap_err(),
        Error::MismatchedColumns {
            feature: 1,
            len: 1,
            expected: 2
        }
    );
    assert_eq!(
        p.fit(&[vec![4.0; 10], vec![1.0; 10]]).unwrap_err(),
        Error::AllFeaturesConstant { rows: 10 }
    );
    assert!(matches!(
        p.fit(&[vec![1.0, f64::INFINITY, 2.0]]).unwrap_err(),
        Error::NonFinite {
            feature: 0,
            row: 1,
            ..
        }
    ));
    assert!(matches!(
        p.fit(&[vec![1.0, 2.0], vec![1e300, 0.0]]).unwrap_err(),
        Error::NonFinite {
            feature: 1,
            row: 0,
            ..
        }
    ));
    for bad in [
        p.clone().max_samples(MaxSamples::Count(0)),
        p.clone().max_samples(MaxSamples::Fraction(0.0)),
        p.clone().max_samples(MaxSamples::Fraction(1.5)),
        p.clone().max_samples(MaxSamples::Fraction(f64::NAN)),
        p.clone().max_features(MaxFeatures::Fraction(-0.1)),
        p.clone().max_features(MaxFeatures::Count(3)),
        p.clone().contamination(Contamination::Fraction(0.6)),
        p.clone().n_estimators(0),
    ] {
        assert!(
            matches!(bad.fit(&ok), Err(Error::InvalidParameter { .. })),
            "{bad:?}"
        );
    }
    // NaN is a missing value, as in scikit-learn: fitting and scoring work.
    let with_nan = vec![vec![1.0, f64::NAN, 3.0, 4.0], vec![0.0, 1.0, f64::NAN, 0.5]];
    let model = p.fit(&with_nan).unwrap();
    assert!(
        model
            .score_samples(&with_nan)
            .unwrap()
            .iter()
            .all(|s| s.is_finite())
    );
    assert_eq!(
        model.score_samples(&[vec![1.0]]).unwrap_err(),
        Error::WrongFeatureCount {
            expected: 2,
            got: 1
        }
    );
    assert!(matches!(
        model.score_samples(&[vec![1.0], vec![]]).unwrap_err(),
        Error::MismatchedColumns { .. }
    ));
}

#[test]
fn max_samples_above_rows_is_capped_with_a_warning() {
    let x = data(50, 3, 4, 0.0);
    let model = IsolationForestParams::default()
        .max_samples(MaxSamples::Count(100))
        .fit(&x)
        .unwrap();
    assert_eq!(model.max_samples(), 50);
    assert_eq!(model.warnings().len(), 1);
    let auto = IsolationForestParams::default().fit(&x).unwrap();
    assert_eq!(auto.max_samples(), 50);
    assert!(auto.warnings().is_empty());
    let fraction = IsolationForestParams::default()
        .max_samples(MaxSamples::Fraction(0.5))
        .fit(&x)
        .unwrap();
    assert_eq!(fraction.max_samples(), 25);
    // Depth limit ceil(log2(25)) = 5.
    assert!(fraction.trees().iter().all(|t| t.depth() <= 5));
    assert!(fraction.trees().iter().any(|t| t.depth() == 5));
}

#[test]
fn single_row_scores_minus_one_half_like_scikit_learn() {
    let model = IsolationForestParams::default()
        .fit(&[vec![1.0, 2.0, 3.0], vec![5.0, 5.0, 5.0]])
        .unwrap();
    assert_eq!(model.max_samples(), 3);
    let one = IsolationForestParams::default().max_samples(MaxSamples::Count(1));
    let m = one.fit(&[vec![1.0, 2.0, 3.0]]).unwrap();
    // c(1) = 0: scikit-learn sets the ratio to 1, so every score is -0.5.
    assert!(
        m.score_samples(&[vec![7.0, 1.0]])
            .unwrap()
            .iter()
            .all(|&s| s == -0.5)
    );
}

#[test]
fn explanations_name_the_feature_that_isolates_a_row() {
    // Feature 1 is the same for every row but one: that row is isolated by feature 1.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let n = 500;
    let x0: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
    let mut x1 = vec![5.0; n];
    x1[7] = 50.0;
    let model = IsolationForestParams::default()
        .seed(1)
        .fit(&[&x0[..], &x1[..]])
        .unwrap();
    let shares = model.explain(&[&x0[..], &x1[..]]).unwrap();
    for s in &shares {
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
    assert!(shares[7][1] > 0.3, "{:?}", shares[7]);
    assert!(shares[0][1] < shares[7][1]);
}
