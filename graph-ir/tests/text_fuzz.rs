//! The parser never panics: arbitrary text and random mutations of valid
//! files give a graph or positioned errors, and error positions are inside
//! the file.

use kiln_ir::text::{parse, print};
use kiln_ir::IrError;
use proptest::prelude::*;

const VALID: &str = "%0 = input \"x\" : f32[2,4]
%1 = input \"y\" : i64[2]
%2 = param \"w\" : f32[4,3]
%3 = matmul %0, %2 trans_a=false trans_b=false : f32[2,3]
%4 = const [1.0, -2.5, nan] : f32[3]
%5 = add %3, %4 : f32[2,3]
%6 = softmax_cross_entropy %5, %1 : f32[2]
%7 = reduce_mean %6 axes=[0] keepdims=false : f32[]
output \"loss\" = %7
update \"w\" = %2
grad %7 wrt %2
";

fn check_positions(src: &str, errs: &[IrError]) {
    assert!(!errs.is_empty());
    let lines = src.lines().count().max(1);
    for e in errs {
        match e {
            IrError::Parse { file, line, col, message } => {
                assert_eq!(file, "f.kir");
                assert!(*line >= 1 && *line <= lines, "line {line} of {lines}: {message}");
                let len = src.lines().nth(line - 1).map_or(0, |l| l.chars().count());
                assert!(*col >= 1 && *col <= len + 1, "col {col} on a line of {len} chars: {message}");
                assert!(!message.is_empty());
            }
            other => panic!("not a parse error: {other:?}"),
        }
    }
}

fn exercise(src: &str) {
    match parse(src, "f.kir") {
        Ok(g) => {
            let p = print(&g);
            assert_eq!(print(&parse(&p, "f.kir").unwrap()), p);
        }
        Err(errs) => check_positions(src, &errs),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(src in "(%[0-9]{1,3}|[ a-z_=,:\\[\\]\"#.0-9\n-]){0,200}") {
        exercise(&src);
    }

    #[test]
    fn mutated_valid_files_never_panic(edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 1..6)) {
        let mut chars: Vec<char> = VALID.chars().collect();
        for (at, kind, c) in edits {
            let i = at.index(chars.len().max(1));
            match kind {
                0 if !chars.is_empty() => { chars.remove(i.min(chars.len() - 1)); }
                1 => chars.insert(i.min(chars.len()), c),
                _ if !chars.is_empty() => { let j = i.min(chars.len() - 1); chars[j] = c; }
                _ => {}
            }
        }
        exercise(&chars.into_iter().collect::<String>());
    }
}
