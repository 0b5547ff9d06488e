//! What each check compares, as data: the signal column it reads, the side on which a document
//! fails, and the threshold under given settings. The rule modules decide in code; this table
//! says the same for people (the explorer shows "gopher_word_count 15 < 50"), and a test holds
//! the two together: crossing each threshold flips exactly that check's bit.

use super::{RuleSettings, SIGNALS, Sig};

/// The side of the threshold on which a document fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fails {
    /// The signal is below the threshold.
    Below,
    /// The signal is above the threshold.
    Above,
}

/// One check's comparison.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CheckRule {
    /// The signal column the check reads.
    pub signal: &'static str,
    pub fails: Fails,
    pub threshold: f64,
}

/// The comparison of check `name` under `t`; None for checks that compare nothing (an empty
/// text) or an unknown name.
pub fn check_rule(name: &str, t: &RuleSettings) -> Option<CheckRule> {
    use Fails::{Above, Below};
    let top = t.repetition_max_top_ngram_chars;
    let dup = t.repetition_max_dup_ngram_chars;
    let (sig, fails, threshold) = match name {
        "gopher_too_few_words" => (Sig::GopherWords, Below, t.gopher_min_words),
        "gopher_too_many_words" => (Sig::GopherWords, Above, t.gopher_max_words),
        "gopher_mean_word_too_short" => (
            Sig::GopherMeanWordLength,
            Below,
            t.gopher_min_mean_word_length,
        ),
        "gopher_mean_word_too_long" => (
            Sig::GopherMeanWordLength,
            Above,
            t.gopher_max_mean_word_length,
        ),
        "gopher_too_many_hashes" => (Sig::GopherHashRatio, Above, t.gopher_max_symbol_ratio),
        "gopher_too_many_ellipses" => (Sig::GopherEllipsisRatio, Above, t.gopher_max_symbol_ratio),
        "gopher_too_many_bullet_lines" => {
            (Sig::GopherBulletLines, Above, t.gopher_max_bullet_lines)
        }
        "gopher_too_many_ellipsis_lines" => {
            (Sig::GopherEllipsisLines, Above, t.gopher_max_ellipsis_lines)
        }
        "gopher_too_few_alpha_words" => (Sig::GopherAlphaWords, Below, t.gopher_min_alpha_words),
        "gopher_too_few_stop_words" => (Sig::GopherStopWords, Below, t.gopher_min_stop_words),
        "repetition_dup_para_frac" => (Sig::RepDupParaFrac, Above, t.repetition_max_dup_para_frac),
        "repetition_dup_para_chars" => {
            (Sig::RepDupParaChars, Above, t.repetition_max_dup_para_chars)
        }
        "repetition_dup_line_frac" => (Sig::RepDupLineFrac, Above, t.repetition_max_dup_line_frac),
        "repetition_dup_line_chars" => {
            (Sig::RepDupLineChars, Above, t.repetition_max_dup_line_chars)
        }
        "repetition_top_2gram" => (Sig::RepTop2, Above, top[0]),
        "repetition_top_3gram" => (Sig::RepTop3, Above, top[1]),
        "repetition_top_4gram" => (Sig::RepTop4, Above, top[2]),
        "repetition_dup_5gram" => (Sig::RepDup5, Above, dup[0]),
        "repetition_dup_6gram" => (Sig::RepDup6, Above, dup[1]),
        "repetition_dup_7gram" => (Sig::RepDup7, Above, dup[2]),
        "repetition_dup_8gram" => (Sig::RepDup8, Above, dup[3]),
        "repetition_dup_9gram" => (Sig::RepDup9, Above, dup[4]),
        "repetition_dup_10gram" => (Sig::RepDup10, Above, dup[5]),
        "c4_lorem_ipsum" => (Sig::C4LoremIpsum, Above, 0.0),
        "c4_curly_bracket" => (Sig::C4CurlyBracket, Above, 0.0),
        "c4_too_few_sentences" => (Sig::C4Sentences, Below, t.c4_min_sentences),
        "fineweb_line_punct" => (Sig::FwLinePunct, Below, t.fineweb_min_line_punct),
        "fineweb_short_lines" => (Sig::FwShortLines, Above, t.fineweb_max_short_lines),
        "fineweb_dup_line_chars" => (Sig::FwDupLineChars, Above, t.fineweb_max_dup_line_chars),
        "fineweb_list_ratio" => (Sig::FwNewlineWords, Above, t.fineweb_max_newline_words),
        "ziya2_privacy" => (Sig::ZiyaPrivacy, Above, t.ziya2_max_privacy),
        "ziya2_html" => (Sig::ZiyaHtml, Above, t.ziya2_max_html),
        "ziya2_advertising" => (Sig::ZiyaAds, Above, t.ziya2_max_ads),
        "ziya2_toxic" => (Sig::ZiyaToxic, Above, t.ziya2_max_toxic),
        _ => return None,
    };
    Some(CheckRule {
        signal: SIGNALS[sig as usize].column,
        fails,
        threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{CHECKS, Signals};
    use super::*;

    /// Signals at which the Gopher checks that need words have some, and nothing else is set.
    fn base() -> Signals {
        let mut values = [0.0; SIGNALS.len()];
        values[Sig::GopherWords as usize] = 100.0;
        Signals {
            values,
            empty: false,
            blank: false,
        }
    }

    #[test]
    fn crossing_each_threshold_flips_exactly_its_checks_bit() {
        let t = RuleSettings::default();
        let mut described = 0;
        for (bit, check) in CHECKS.iter().enumerate() {
            let Some(rule) = check_rule(check.name, &t) else {
                assert!(
                    check.name.ends_with("_empty"),
                    "{} has no comparison",
                    check.name
                );
                continue;
            };
            described += 1;
            let at = SIGNALS
                .iter()
                .position(|s| s.column == rule.signal)
                .unwrap();
            let step = (rule.threshold.abs() * 0.01).max(0.01);
            let beyond = match rule.fails {
                Fails::Below => rule.threshold - step,
                Fails::Above => rule.threshold + step,
            };
            let (mut on, mut off) = (base(), base());
            on.values[at] = beyond;
            off.values[at] = rule.threshold;
            let mask = 1u64 << bit;
            assert_ne!(on.flags(&t) & mask, 0, "{} at {beyond}", check.name);
            assert_eq!(
                off.flags(&t) & mask,
                0,
                "{} at {}",
                check.name,
                rule.threshold
            );
        }
        assert_eq!(described, CHECKS.len() - 2);
    }
}
