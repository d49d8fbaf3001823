//! "Did you mean" hints for misspelled op and attribute names: people
//! writing `.kir` by hand reach for PyTorch/NumPy names (`sum`, `transpose`,
//! `padding`) or make typos.

/// Names from other frameworks that have a different keyword here.
const ALIASES: &[(&str, &str)] = &[
    ("sum", "reduce_sum"),
    ("mean", "reduce_mean"),
    ("amax", "reduce_max"),
    ("amin", "reduce_min"),
    ("transpose", "permute"),
    ("linear", "fused_dense"),
    ("dense", "fused_dense"),
    ("conv", "conv2d"),
    ("maxpool", "max_pool2d"),
    ("avgpool", "avg_pool2d"),
    ("cross_entropy", "softmax_cross_entropy"),
    ("where", "select"),
    ("take", "gather"),
    ("constant", "const"),
    ("parameter", "param"),
    ("padding", "pad"),
    ("strides", "stride"),
    ("kernel_size", "kernel"),
    ("dim", "axis"),
    ("dims", "axes"),
    ("keepdim", "keepdims"),
    ("dtype", "to"),
];

/// Edit distance counting a swap of two neighbours as one edit (optimal
/// string alignment), the commonest typo.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = (a[i - 1] != b[j - 1]) as usize;
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// The candidate `name` most likely meant, if any is close enough.
pub(crate) fn closest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let alias = ALIASES.iter().find(|(from, _)| *from == name).map(|&(_, to)| to);
    if let Some(c) = alias.and_then(|to| candidates.iter().find(|c| **c == to)) {
        return Some(c);
    }
    let n = name.chars().count();
    let limit = (n / 3).max(1);
    candidates
        .iter()
        // The distance is at least the difference in length: skipping those
        // changes no answer, and spares a table of len(name) rows for a
        // megabyte-long word in a hostile file.
        .filter(|c| c.chars().count().abs_diff(n) <= limit)
        .map(|c| (distance(name, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// ` (did you mean `x`?)` or nothing.
pub(crate) fn hint(name: &str, candidates: &[&str]) -> String {
    closest(name, candidates).map_or(String::new(), |c| format!(" (did you mean `{c}`?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_aliases() {
        let ops = ["reduce_sum", "relu", "permute", "matmul", "max_pool2d"];
        assert_eq!(closest("matmull", &ops), Some("matmul"));
        assert_eq!(closest("rleu", &ops), Some("relu"));
        assert_eq!(closest("sum", &ops), Some("reduce_sum"));
        assert_eq!(closest("transpose", &ops), Some("permute"));
        assert_eq!(closest("frobnicate", &ops), None);
        assert_eq!(hint("padding", &["stride", "pad"]), " (did you mean `pad`?)");
        assert_eq!(hint("zzz", &["stride", "pad"]), "");
    }
}
