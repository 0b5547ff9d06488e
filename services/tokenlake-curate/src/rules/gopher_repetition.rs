//! Gopher repetition (datatrove's `GopherRepetitionFilter`): repeated paragraphs and lines, the
//! most frequent word 2- to 4-grams, and characters in repeated word 5- to 10-grams.

use super::document::{Document, WordIndex};
use super::text::{find_duplicates, py_strip, split_runs};
use super::{RuleSettings, Sig, Signals, Values, bit, flag};

pub(super) fn measure(doc: &Document, index: &mut WordIndex, values: &mut Values) {
    let text = doc.text;
    if text.is_empty() {
        return;
    }
    let per_char = |x: usize| x as f64 / doc.n_chars as f64;
    let paragraphs = split_runs(py_strip(text), 2);
    let (dups, chars) = find_duplicates(paragraphs.iter().copied());
    values.set(Sig::RepDupParaFrac, dups as f64 / paragraphs.len() as f64);
    values.set(Sig::RepDupParaChars, per_char(chars));
    let line_runs = split_runs(text, 1);
    let (dups, chars) = find_duplicates(line_runs.iter().copied());
    values.set(Sig::RepDupLineFrac, dups as f64 / line_runs.len() as f64);
    values.set(Sig::RepDupLineChars, per_char(chars));
    for (n, s) in [(2, Sig::RepTop2), (3, Sig::RepTop3), (4, Sig::RepTop4)] {
        values.set(s, per_char(index.top_ngram_chars(n)));
    }
    for (n, s) in [
        (5, Sig::RepDup5),
        (6, Sig::RepDup6),
        (7, Sig::RepDup7),
        (8, Sig::RepDup8),
        (9, Sig::RepDup9),
        (10, Sig::RepDup10),
    ] {
        values.set(s, per_char(index.duplicated_ngram_chars(n)));
    }
}

pub(super) fn flags(s: &Signals, t: &RuleSettings) -> u64 {
    if s.empty {
        return const { bit("repetition_empty") };
    }
    let v = |x: Sig| s.get(x);
    let mut f = flag(
        v(Sig::RepDupParaFrac) > t.repetition_max_dup_para_frac,
        const { bit("repetition_dup_para_frac") },
    ) | flag(
        v(Sig::RepDupParaChars) > t.repetition_max_dup_para_chars,
        const { bit("repetition_dup_para_chars") },
    ) | flag(
        v(Sig::RepDupLineFrac) > t.repetition_max_dup_line_frac,
        const { bit("repetition_dup_line_frac") },
    ) | flag(
        v(Sig::RepDupLineChars) > t.repetition_max_dup_line_chars,
        const { bit("repetition_dup_line_chars") },
    );
    let top = [Sig::RepTop2, Sig::RepTop3, Sig::RepTop4];
    let top_bits: [u64; 3] = const {
        [
            bit("repetition_top_2gram"),
            bit("repetition_top_3gram"),
            bit("repetition_top_4gram"),
        ]
    };
    for ((s, max), name) in top
        .iter()
        .zip(t.repetition_max_top_ngram_chars)
        .zip(top_bits)
    {
        f |= flag(v(*s) > max, name);
    }
    let dup = [
        Sig::RepDup5,
        Sig::RepDup6,
        Sig::RepDup7,
        Sig::RepDup8,
        Sig::RepDup9,
        Sig::RepDup10,
    ];
    let dup_bits: [u64; 6] = const {
        [
            bit("repetition_dup_5gram"),
            bit("repetition_dup_6gram"),
            bit("repetition_dup_7gram"),
            bit("repetition_dup_8gram"),
            bit("repetition_dup_9gram"),
            bit("repetition_dup_10gram"),
        ]
    };
    for ((s, max), name) in dup
        .iter()
        .zip(t.repetition_max_dup_ngram_chars)
        .zip(dup_bits)
    {
        f |= flag(v(*s) > max, name);
    }
    f
}
