//! The average path length `c(n)` of an unsuccessful search in a binary search tree.

/// Euler–Mascheroni constant, as `numpy.euler_gamma`.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// `c(n)`: the average path length of an isolation tree built on `n` samples,
/// as scikit-learn's `_average_path_length`: 0 for n ≤ 1, 1 for n = 2, else
/// `2 (ln(n − 1) + γ) − 2 (n − 1) / n`.
pub fn average_path_length(n: f64) -> f64 {
    if n <= 1.0 {
        0.0
    } else if n == 2.0 {
        1.0
    } else {
        2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(average_path_length(0.0), 0.0);
        assert_eq!(average_path_length(1.0), 0.0);
        assert_eq!(average_path_length(2.0), 1.0);
        // c(256) from the Liu et al. paper's formula.
        let c256 = 2.0 * (255f64.ln() + EULER_GAMMA) - 2.0 * 255.0 / 256.0;
        assert_eq!(average_path_length(256.0), c256);
        // scikit-learn 1.9.1: _average_path_length([100])[0]
        assert_eq!(average_path_length(100.0), 8.364_671_030_072_245);
    }
}
