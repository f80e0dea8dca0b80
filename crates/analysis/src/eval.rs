//! Grouping accuracy (GA), as the log-parsing literature defines it: a
//! line is parsed correctly when the set of lines sharing its predicted
//! group equals the set of lines sharing its true group; GA is the share of
//! lines parsed correctly.
//!
//! Not for: template-level accuracy (whether the printed template equals
//! the labelled one); only groupings are compared.

use foldhash::HashMap;
use std::hash::Hash;

/// GA of `predicted` against `truth` (same length; one label per line).
pub fn grouping_accuracy<T: Eq + Hash, P: Eq + Hash>(truth: &[T], predicted: &[P]) -> f64 {
    assert_eq!(truth.len(), predicted.len(), "one label per line");
    if truth.is_empty() {
        return 1.0;
    }
    // A predicted group is correct iff all its lines share one true group
    // and that true group has no lines elsewhere: the two sizes agree.
    let mut true_size: HashMap<&T, usize> = HashMap::default();
    for t in truth {
        *true_size.entry(t).or_default() += 1;
    }
    let mut groups: HashMap<&P, (Option<&T>, bool, usize)> = HashMap::default();
    for (t, p) in truth.iter().zip(predicted) {
        let g = groups.entry(p).or_insert((Some(t), true, 0));
        g.1 &= g.0 == Some(t);
        g.2 += 1;
    }
    let correct: usize = groups
        .values()
        .filter_map(|&(t, pure, size)| (pure && true_size[t?] == size).then_some(size))
        .sum();
    correct as f64 / truth.len() as f64
}

/// The 16 systems of Loghub-2k (`logpai/loghub`), as its folders name them.
pub const LOGHUB_SYSTEMS: [&str; 16] = [
    "Android",
    "Apache",
    "BGL",
    "HDFS",
    "HPC",
    "Hadoop",
    "HealthApp",
    "Linux",
    "Mac",
    "OpenSSH",
    "OpenStack",
    "Proxifier",
    "Spark",
    "Thunderbird",
    "Windows",
    "Zookeeper",
];

#[cfg(test)]
mod tests {
    use super::grouping_accuracy;

    #[test]
    fn exact_split_and_merge() {
        assert_eq!(grouping_accuracy(&[1, 1, 2], &["a", "a", "b"]), 1.0);
        // Splitting a true group loses all its lines.
        assert_eq!(grouping_accuracy(&[1, 1, 2], &["a", "c", "b"]), 1.0 / 3.0);
        // Merging two true groups loses both.
        assert_eq!(grouping_accuracy(&[1, 1, 2], &["a", "a", "a"]), 0.0);
    }
}
