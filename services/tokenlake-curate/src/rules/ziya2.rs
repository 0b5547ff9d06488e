//! Ziya2's classes (§2, rule-based filtering): personal data, HTML remnants, advertising and
//! toxic words, each counted by our own detectors (`crate::detect`, `toxic.rs`).

use super::document::Document;
use super::toxic::ToxicWords;
use super::{RuleSettings, Sig, Signals, Values, bit, flag};

pub(super) fn measure(doc: &Document, toxic: &ToxicWords, values: &mut Values) {
    let text = doc.text;
    values.set(
        Sig::ZiyaPrivacy,
        crate::detect::privacy_matches(text) as f64,
    );
    values.set(Sig::ZiyaHtml, crate::detect::html_matches(text) as f64);
    values.set(
        Sig::ZiyaAds,
        crate::detect::advertising_matches(text) as f64,
    );
    values.set(
        Sig::ZiyaToxic,
        (doc.words.toxic + toxic.cjk_matches(text)) as f64,
    );
}

pub(super) fn flags(s: &Signals, t: &RuleSettings) -> u64 {
    flag(
        s.get(Sig::ZiyaPrivacy) > t.ziya2_max_privacy,
        const { bit("ziya2_privacy") },
    ) | flag(
        s.get(Sig::ZiyaHtml) > t.ziya2_max_html,
        const { bit("ziya2_html") },
    ) | flag(
        s.get(Sig::ZiyaAds) > t.ziya2_max_ads,
        const { bit("ziya2_advertising") },
    ) | flag(
        s.get(Sig::ZiyaToxic) > t.ziya2_max_toxic,
        const { bit("ziya2_toxic") },
    )
}
