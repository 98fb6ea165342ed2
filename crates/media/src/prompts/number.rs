//! Numbers as prompt ids, for message counts and queue positions.

const DIGITS: [&str; 10] = [
    "digit-0", "digit-1", "digit-2", "digit-3", "digit-4", "digit-5", "digit-6", "digit-7",
    "digit-8", "digit-9",
];
const TEENS: [&str; 10] = [
    "num-10", "num-11", "num-12", "num-13", "num-14", "num-15", "num-16", "num-17", "num-18",
    "num-19",
];
/// Index `t` is the id for `t * 10`; 0 and 1 are covered by digits and teens.
const TENS: [&str; 10] = [
    "", "", "num-20", "num-30", "num-40", "num-50", "num-60", "num-70", "num-80", "num-90",
];
const HUNDRED: &str = "num-hundred";

/// The prompt ids that speak `n` in American English style: 0 is
/// `digit-0`, 45 is `num-40 digit-5`, 234 is `digit-2 num-hundred num-30
/// digit-4` ("two hundred thirty four"), 100 is `digit-1 num-hundred`.
///
/// Counts and positions above 999 have no natural reading with this
/// vocabulary and are spoken digit by digit ("one two three four").
pub fn say_number(n: u32) -> Vec<&'static str> {
    if n > 999 {
        return n
            .to_string()
            .bytes()
            .map(|b| DIGITS[usize::from(b - b'0')])
            .collect();
    }
    if n == 0 {
        return vec![DIGITS[0]];
    }
    let n = n as usize;
    let mut ids = Vec::with_capacity(4);
    let (hundreds, rest) = (n / 100, n % 100);
    if hundreds > 0 {
        ids.push(DIGITS[hundreds]);
        ids.push(HUNDRED);
    }
    match rest {
        0 => {}
        1..=9 => ids.push(DIGITS[rest]),
        10..=19 => ids.push(TEENS[rest - 10]),
        _ => {
            ids.push(TENS[rest / 10]);
            if rest % 10 > 0 {
                ids.push(DIGITS[rest % 10]);
            }
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoken_forms() {
        let cases: &[(u32, &[&str])] = &[
            (0, &["digit-0"]),
            (7, &["digit-7"]),
            (13, &["num-13"]),
            (20, &["num-20"]),
            (45, &["num-40", "digit-5"]),
            (100, &["digit-1", "num-hundred"]),
            (105, &["digit-1", "num-hundred", "digit-5"]),
            (110, &["digit-1", "num-hundred", "num-10"]),
            (234, &["digit-2", "num-hundred", "num-30", "digit-4"]),
            (999, &["digit-9", "num-hundred", "num-90", "digit-9"]),
            (1024, &["digit-1", "digit-0", "digit-2", "digit-4"]),
        ];
        for (n, want) in cases {
            assert_eq!(say_number(*n), *want, "{n}");
        }
    }

    #[test]
    fn every_number_uses_known_ids_only() {
        for n in (0..=1000).chain([u32::MAX]) {
            let ids = say_number(n);
            assert!(!ids.is_empty(), "{n}");
            assert!(ids.iter().all(|id| !id.is_empty()), "{n}: {ids:?}");
        }
    }
}
