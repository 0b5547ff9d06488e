//! Gopher quality (datatrove's `GopherQualityFilter`): word counts and lengths, symbol ratios,
//! bullet and ellipsis lines, alphabetic words and stop words.

use crate::rule_words::is_space;

use super::document::Document;
use super::{RuleSettings, Sig, Signals, Values, bit, flag};

pub(super) fn measure(doc: &Document, values: &mut Values) {
    let w = &doc.words;
    values.set(Sig::GopherWords, w.non_symbol as f64);
    values.set(
        Sig::GopherMeanWordLength,
        if w.non_symbol == 0 {
            0.0
        } else {
            w.non_symbol_chars as f64 / w.non_symbol as f64
        },
    );
    let text = doc.text;
    values.set(
        Sig::GopherHashRatio,
        doc.per_word(text.matches('#').count()),
    );
    values.set(
        Sig::GopherEllipsisRatio,
        doc.per_word(text.matches("...").count() + text.matches('…').count()),
    );
    let lines = &doc.lines;
    let per_line = |x: usize| {
        if lines.is_empty() {
            0.0
        } else {
            x as f64 / lines.len() as f64
        }
    };
    let bullets = lines
        .iter()
        .filter(|l| {
            let l = l.trim_start_matches(is_space);
            l.starts_with('•') || l.starts_with('-')
        })
        .count();
    values.set(Sig::GopherBulletLines, per_line(bullets));
    let ellipsis_lines = lines
        .iter()
        .filter(|l| {
            let l = l.trim_end_matches(is_space);
            l.ends_with("...") || l.ends_with('…')
        })
        .count();
    values.set(Sig::GopherEllipsisLines, per_line(ellipsis_lines));
    values.set(Sig::GopherAlphaWords, doc.per_word(w.alpha_words));
    values.set(Sig::GopherStopWords, w.stop_words as f64);
}

pub(super) fn flags(s: &Signals, t: &RuleSettings) -> u64 {
    let v = |x: Sig| s.get(x);
    let words = v(Sig::GopherWords);
    let mut f = flag(
        words < t.gopher_min_words,
        const { bit("gopher_too_few_words") },
    ) | flag(
        words > t.gopher_max_words,
        const { bit("gopher_too_many_words") },
    );
    // With no words the remaining Gopher checks have nothing to measure.
    if words > 0.0 {
        let mean = v(Sig::GopherMeanWordLength);
        f |= flag(
            mean < t.gopher_min_mean_word_length,
            const { bit("gopher_mean_word_too_short") },
        ) | flag(
            mean > t.gopher_max_mean_word_length,
            const { bit("gopher_mean_word_too_long") },
        ) | flag(
            v(Sig::GopherHashRatio) > t.gopher_max_symbol_ratio,
            const { bit("gopher_too_many_hashes") },
        ) | flag(
            v(Sig::GopherEllipsisRatio) > t.gopher_max_symbol_ratio,
            const { bit("gopher_too_many_ellipses") },
        ) | flag(
            v(Sig::GopherBulletLines) > t.gopher_max_bullet_lines,
            const { bit("gopher_too_many_bullet_lines") },
        ) | flag(
            v(Sig::GopherEllipsisLines) > t.gopher_max_ellipsis_lines,
            const { bit("gopher_too_many_ellipsis_lines") },
        ) | flag(
            v(Sig::GopherAlphaWords) < t.gopher_min_alpha_words,
            const { bit("gopher_too_few_alpha_words") },
        );
    }
    f | flag(
        v(Sig::GopherStopWords) < t.gopher_min_stop_words,
        const { bit("gopher_too_few_stop_words") },
    )
}
