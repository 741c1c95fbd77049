//! HTML character references: numeric ones, and the named ones that occur in real pages (all of
//! HTML 4's, which cover Latin-1, typography, Greek and common symbols). An unknown name is left
//! as written.

use std::borrow::Cow;

/// Names of U+00A0 to U+00FF, in code point order.
const LATIN_1: [&str; 96] = [
    "nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect", "uml", "copy", "ordf", "laquo", "not", "shy",
    "reg", "macr", "deg", "plusmn", "sup2", "sup3", "acute", "micro", "para", "middot", "cedil", "sup1", "ordm",
    "raquo", "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig",
    "Ccedil", "Egrave", "Eacute", "Ecirc", "Euml", "Igrave", "Iacute", "Icirc", "Iuml", "ETH", "Ntilde", "Ograve",
    "Oacute", "Ocirc", "Otilde", "Ouml", "times", "Oslash", "Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute", "THORN",
    "szlig", "agrave", "aacute", "acirc", "atilde", "auml", "aring", "aelig", "ccedil", "egrave", "eacute", "ecirc",
    "euml", "igrave", "iacute", "icirc", "iuml", "eth", "ntilde", "ograve", "oacute", "ocirc", "otilde", "ouml",
    "divide", "oslash", "ugrave", "uacute", "ucirc", "uuml", "yacute", "thorn", "yuml",
];

/// Greek capitals from U+0391 (U+03A2 is unassigned) and small letters from U+03B1.
const GREEK: [&str; 25] = [
    "Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta", "Eta", "Theta", "Iota", "Kappa", "Lambda", "Mu", "Nu", "Xi",
    "Omicron", "Pi", "Rho", "", "Sigma", "Tau", "Upsilon", "Phi", "Chi", "Psi", "Omega",
];

const OTHERS: &[(&str, u32)] = &[
    ("quot", 0x22),
    ("amp", 0x26),
    ("apos", 0x27),
    ("lt", 0x3c),
    ("gt", 0x3e),
    ("OElig", 0x152),
    ("oelig", 0x153),
    ("Scaron", 0x160),
    ("scaron", 0x161),
    ("Yuml", 0x178),
    ("fnof", 0x192),
    ("circ", 0x2c6),
    ("tilde", 0x2dc),
    ("thetasym", 0x3d1),
    ("upsih", 0x3d2),
    ("piv", 0x3d6),
    ("ensp", 0x2002),
    ("emsp", 0x2003),
    ("thinsp", 0x2009),
    ("zwnj", 0x200c),
    ("zwj", 0x200d),
    ("lrm", 0x200e),
    ("rlm", 0x200f),
    ("hyphen", 0x2010),
    ("ndash", 0x2013),
    ("mdash", 0x2014),
    ("lsquo", 0x2018),
    ("rsquo", 0x2019),
    ("sbquo", 0x201a),
    ("ldquo", 0x201c),
    ("rdquo", 0x201d),
    ("bdquo", 0x201e),
    ("dagger", 0x2020),
    ("Dagger", 0x2021),
    ("bull", 0x2022),
    ("hellip", 0x2026),
    ("permil", 0x2030),
    ("prime", 0x2032),
    ("Prime", 0x2033),
    ("lsaquo", 0x2039),
    ("rsaquo", 0x203a),
    ("oline", 0x203e),
    ("frasl", 0x2044),
    ("euro", 0x20ac),
    ("image", 0x2111),
    ("weierp", 0x2118),
    ("real", 0x211c),
    ("trade", 0x2122),
    ("alefsym", 0x2135),
    ("larr", 0x2190),
    ("uarr", 0x2191),
    ("rarr", 0x2192),
    ("darr", 0x2193),
    ("harr", 0x2194),
    ("crarr", 0x21b5),
    ("lArr", 0x21d0),
    ("uArr", 0x21d1),
    ("rArr", 0x21d2),
    ("dArr", 0x21d3),
    ("hArr", 0x21d4),
    ("forall", 0x2200),
    ("part", 0x2202),
    ("exist", 0x2203),
    ("empty", 0x2205),
    ("nabla", 0x2207),
    ("isin", 0x2208),
    ("notin", 0x2209),
    ("ni", 0x220b),
    ("prod", 0x220f),
    ("sum", 0x2211),
    ("minus", 0x2212),
    ("lowast", 0x2217),
    ("radic", 0x221a),
    ("prop", 0x221d),
    ("infin", 0x221e),
    ("ang", 0x2220),
    ("and", 0x2227),
    ("or", 0x2228),
    ("cap", 0x2229),
    ("cup", 0x222a),
    ("int", 0x222b),
    ("there4", 0x2234),
    ("sim", 0x223c),
    ("cong", 0x2245),
    ("asymp", 0x2248),
    ("ne", 0x2260),
    ("equiv", 0x2261),
    ("le", 0x2264),
    ("ge", 0x2265),
    ("sub", 0x2282),
    ("sup", 0x2283),
    ("nsub", 0x2284),
    ("sube", 0x2286),
    ("supe", 0x2287),
    ("oplus", 0x2295),
    ("otimes", 0x2297),
    ("perp", 0x22a5),
    ("sdot", 0x22c5),
    ("lceil", 0x2308),
    ("rceil", 0x2309),
    ("lfloor", 0x230a),
    ("rfloor", 0x230b),
    ("lang", 0x2329),
    ("rang", 0x232a),
    ("loz", 0x25ca),
    ("spades", 0x2660),
    ("clubs", 0x2663),
    ("hearts", 0x2665),
    ("diams", 0x2666),
    ("sigmaf", 0x3c2),
];

/// The character a named reference stands for.
fn named(name: &str) -> Option<char> {
    if let Some(i) = LATIN_1.iter().position(|n| *n == name) {
        return char::from_u32(0xa0 + i as u32);
    }
    let greek = GREEK.iter().enumerate().filter(|(_, n)| !n.is_empty());
    for (i, capital) in greek {
        if *capital == name {
            return char::from_u32(0x391 + i as u32);
        }
        // The small letters sit 0x20 above their capitals and are named in lowercase.
        if capital.eq_ignore_ascii_case(name) && name.bytes().all(|b| b.is_ascii_lowercase()) {
            return char::from_u32(0x3b1 + i as u32);
        }
    }
    OTHERS.iter().find(|(n, _)| *n == name).and_then(|(_, code)| char::from_u32(*code))
}

/// The character a numeric reference stands for, with the HTML rules for bad numbers: zero,
/// surrogates and numbers past U+10FFFF become U+FFFD, and 0x80–0x9F are read as Windows-1252
/// (`&#150;` is an en dash).
fn numeric(code: u32) -> char {
    if (0x80..=0x9f).contains(&code) {
        let byte = [code as u8];
        let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(&byte);
        return text.chars().next().unwrap_or('\u{fffd}');
    }
    match code {
        0 => '\u{fffd}',
        code => char::from_u32(code).unwrap_or('\u{fffd}'),
    }
}

/// Replaces character references in `text`. A reference needs its `;`, except the few that pages
/// commonly write without (`&amp`, `&lt`, `&gt`, `&quot`, `&nbsp`, `&copy`).
pub(crate) fn decode(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match reference(rest) {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The reference at the start of `text` (which starts with `&`) and its length in bytes.
fn reference(text: &str) -> Option<(char, usize)> {
    let body = &text[1..];
    if let Some(number) = body.strip_prefix('#') {
        let (digits, radix, skip) = match number.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 3),
            None => (number, 10, 2),
        };
        let len = digits.find(|c: char| !c.is_digit(radix)).unwrap_or(digits.len());
        if len == 0 {
            return None;
        }
        // Saturate rather than overflow: a long number is simply out of range.
        let code = u32::from_str_radix(&digits[..len.min(8)], radix).unwrap_or(u32::MAX);
        let code = if len > 8 { u32::MAX } else { code };
        let semicolon = usize::from(digits[len..].starts_with(';'));
        return Some((numeric(code), skip + len + semicolon));
    }
    let len = body.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(body.len());
    let name = &body[..len];
    if body[len..].starts_with(';') {
        return named(name).map(|c| (c, len + 2));
    }
    matches!(name, "amp" | "lt" | "gt" | "quot" | "nbsp" | "copy").then(|| named(name).map(|c| (c, len + 1))).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_numeric_and_broken_references() {
        assert_eq!(
            decode("caf&eacute; &amp; cr&egrave;me &lt;b&gt; &#8364;5 &#x41;&#150;&ALPHA;&Omega;&omega;&sigmaf;"),
            "café & crème <b> €5 A–&ALPHA;Ωως"
        );
        assert_eq!(decode("AT&T &unknown; &#;&#xZZ; &amp"), "AT&T &unknown; &#;&#xZZ; &");
        assert_eq!(decode("&#0;&#99999999999;&nbsp"), "\u{fffd}\u{fffd}\u{a0}");
        assert_eq!(named("yuml"), Some('ÿ'));
        assert_eq!(named("alpha"), Some('α'));
    }
}
